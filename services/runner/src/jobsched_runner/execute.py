"""Runs one command in its own process group, within its attempt's boundary (a cgroup,
or the runner as subreaper), capturing capped output."""

import asyncio
import codecs
import contextlib
import os
import resource
import signal
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from .containment import Boundary
from .orphans import read_processes
from .users import JobUser

READ_SIZE = 64 * 1024
SHELL = "/bin/sh"


@dataclass(frozen=True)
class Limits:
    """Bounds for each job, set on its shell and inherited by all it starts."""

    memory_bytes: int = 0  # address space per process; 0 means no limit
    max_processes: int = 0  # processes in the job's group; 0 means no limit


class ProcessGroups(Protocol):
    """Told of every job process group (`g<pgid>`), to kill them if the runner dies, or
    at a time given (`kill_at`) if the runner stops answering."""

    def watch(self, entry: str) -> None: ...

    def forget(self, entry: str) -> None: ...

    def kill_at(self, deadline: float | None) -> None: ...


@dataclass
class Outcome:
    exit_code: int
    reason: str
    started_at: datetime
    finished_at: datetime


@dataclass
class CapturedOutput:
    """Output kept up to a byte limit; what is past it is read and dropped, so that the
    command never blocks on a full pipe."""

    limit: int
    pending: list[str] = field(default_factory=list)
    kept: int = 0
    truncated: bool = False
    _decoder: codecs.IncrementalDecoder = field(
        default_factory=lambda: codecs.getincrementaldecoder("utf-8")("replace")
    )

    def feed(self, data: bytes, final: bool = False) -> None:
        room = self.limit - self.kept
        if len(data) > room:
            data = data[:room]
            self.truncated = True
        self.kept += len(data)
        text = self._decoder.decode(data, final)
        if text:
            self.pending.append(text)

    def take(self) -> str:
        text, self.pending = "".join(self.pending), []
        return text


class Execution:
    """One attempt's process. `stop(reason)` ends it early (cancel, timeout, drain)."""

    def __init__(
        self,
        command: str,
        timeout: float | None,
        kill_grace: float,
        output_limit: int,
        groups: ProcessGroups | None = None,
        limits: Limits = Limits(),
        env: dict[bytes, bytes] | None = None,
        boundary: Boundary | None = None,
        user: JobUser | None = None,
    ):
        self.command = command
        self.env = env
        self.boundary = boundary
        self.user = user
        self.groups = groups
        self.limits = limits
        self.pgid: int | None = None
        self.timeout = timeout
        self.kill_grace = kill_grace
        self.output = CapturedOutput(output_limit)
        self._stop_reason: str | None = None
        self._loop = asyncio.get_running_loop()
        self._exited: asyncio.Future[int] | None = None  # while the command runs
        self._kill_timer: asyncio.TimerHandle | None = None
        self.started_at = datetime.now(UTC)

    @property
    def stopping(self) -> bool:
        return self._stop_reason is not None

    def stop(self, reason: str) -> None:
        """SIGTERM to the process group now, SIGKILL after the grace period."""
        if self._stop_reason is None:
            self._stop_reason = reason
            if self._exited is not None:
                self._terminate()

    def _terminate(self) -> None:
        if self.pgid is None or self._exited is None or self._exited.done():
            return
        _signal_group(self.pgid, signal.SIGTERM)
        self._kill_timer = self._loop.call_later(self.kill_grace, self._kill_all)

    def _kill_all(self) -> None:
        """SIGKILL to the job's group and to all within its boundary."""
        if self.pgid is not None:
            _signal_group(self.pgid, signal.SIGKILL)
        if self.boundary is not None:
            with contextlib.suppress(OSError):
                self.boundary.kill()

    async def run(self, on_started: Callable[[datetime], None]) -> Outcome:
        loop = self._loop
        try:
            pid, output_fd = self._spawn()
        except OSError as exc:
            now = datetime.now(UTC)
            return Outcome(127, f"could not start: {exc}", self.started_at, now)
        self.started_at = datetime.now(UTC)
        self.pgid = pid
        self._enter_boundary(pid)
        self._apply_limits(pid)
        if self.groups is not None:
            self.groups.watch(f"g{pid}")
        on_started(self.started_at)
        output_done = _read_until_end(loop, output_fd, self.output)
        exited = self._exited = _wait_for_exit(loop, pid)
        timer = loop.call_later(self.timeout, self.stop, "timed out") if self.timeout else None
        if self._stop_reason is not None:  # asked to stop before it started
            self._terminate()
        code = await exited
        for handle in (timer, self._kill_timer):
            if handle is not None:
                handle.cancel()
        # The command is done: whatever it left behind, in its group or anywhere in its
        # boundary, goes too, and the pipe closes even if a grandchild held it open.
        self._kill_all()
        if self.boundary is not None:
            self.boundary.release()  # what is left in it is killed, now or at the next sweep
        if self.groups is not None:
            self.groups.forget(f"g{pid}")
        if not output_done.done():
            await asyncio.wait({output_done}, timeout=5)
        # Done, or a grandchild outside the boundary still holds the pipe: stop reading.
        loop.remove_reader(output_fd)
        os.close(output_fd)
        return Outcome(
            exit_code=code if code >= 0 else 128 - code,
            reason=self._stop_reason or ("" if code >= 0 else f"killed by signal {-code}"),
            started_at=self.started_at,
            finished_at=datetime.now(UTC),
        )

    def _spawn(self) -> tuple[int, int]:
        """Starts the shell in a session of its own (so in its own process group, killed
        as a whole), stdin from /dev/null, stdout and stderr into one pipe. Returns its
        pid and the pipe's reading end. posix_spawn does what subprocess.Popen would
        with a fraction of the Python; every other descriptor of ours is close-on-exec."""
        read_end, write_end = os.pipe()
        argv = [SHELL, "-c", self._script()]
        if self.user is not None:
            argv = self.user.command(argv)
        try:
            pid = os.posix_spawn(
                argv[0],
                argv,
                os.environb if self.env is None else self.env,
                file_actions=[
                    (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                    (os.POSIX_SPAWN_DUP2, write_end, 1),
                    (os.POSIX_SPAWN_DUP2, write_end, 2),
                ],
                setsid=True,
                setsigmask=(),
                # Python ignores these; a command expects the defaults.
                setsigdef=(signal.SIGPIPE, signal.SIGXFSZ),
            )
        except BaseException:
            os.close(read_end)
            raise
        finally:
            os.close(write_end)
        return pid, read_end

    def _script(self) -> str:
        """The command, after the shell has waited to be in its boundary and has set the
        memory limit on itself, so that every process it starts inherits both (a limit
        set from outside would come too late for what the shell forks at once)."""
        script = self.command
        if self.limits.memory_bytes:
            script = f"ulimit -v {self.limits.memory_bytes // 1024} 2>/dev/null\n{script}"
        if self.boundary is not None:
            script = self.boundary.script_prefix() + script
        return script

    def _enter_boundary(self, pid: int) -> None:
        if self.boundary is None:
            return
        try:
            self.boundary.enter(pid)
        except OSError as exc:
            # A shell that waits to be moved in, or that may not run at all, must not
            # run unbounded instead.
            self.kill_now(f"could not contain the job: {exc}")

    def _apply_limits(self, pid: int) -> None:
        # Per user, and not enforced for root: the runner's process census covers both.
        # Set from outside so that no preexec_fn slows every spawn.
        if self.limits.max_processes:
            nproc = (self.limits.max_processes, self.limits.max_processes)
            with contextlib.suppress(OSError, ValueError):
                resource.prlimit(pid, resource.RLIMIT_NPROC, nproc)

    def kill_now(self, reason: str) -> None:
        """No grace: for a job that is harming the machine."""
        self.stop(reason)
        self._kill_all()


def _read_until_end(
    loop: asyncio.AbstractEventLoop, fd: int, output: CapturedOutput
) -> asyncio.Future[None]:
    """Feeds what arrives on `fd` into `output`; the future is done at end of file."""
    done: asyncio.Future[None] = loop.create_future()
    os.set_blocking(fd, False)

    def readable() -> None:
        try:
            data = os.read(fd, READ_SIZE)
        except BlockingIOError:
            return
        if data:
            output.feed(data)
            return
        output.feed(b"", final=True)
        loop.remove_reader(fd)
        done.set_result(None)

    loop.add_reader(fd, readable)
    return done


def _wait_for_exit(loop: asyncio.AbstractEventLoop, pid: int) -> asyncio.Future[int]:
    """The command's exit code (negative: killed by that signal), from a pidfd in the
    event loop rather than a thread per child."""
    exited: asyncio.Future[int] = loop.create_future()
    pidfd = os.pidfd_open(pid)

    def ended() -> None:
        reaped, status = os.waitpid(pid, os.WNOHANG)
        if reaped == 0:
            return
        loop.remove_reader(pidfd)
        os.close(pidfd)
        exited.set_result(os.waitstatus_to_exitcode(status))

    loop.add_reader(pidfd, ended)
    return exited


def count_groups() -> dict[int, int]:
    """How many live processes each process group has, from /proc."""
    return Counter(proc.pgid for proc in read_processes().values() if proc.state != b"Z")


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
