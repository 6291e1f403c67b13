"""Runs one command in its own process group, capturing capped output."""

import asyncio
import codecs
import contextlib
import os
import resource
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

READ_SIZE = 64 * 1024
SHELL = "/bin/sh"


@dataclass(frozen=True)
class Limits:
    """Bounds for each job, set on its shell and inherited by all it starts."""

    memory_bytes: int = 0  # address space per process; 0 means no limit
    max_processes: int = 0  # processes in the job's group; 0 means no limit


class ProcessGroups(Protocol):
    """Told of every job process group, to kill them if the runner dies."""

    def watch(self, pgid: int) -> None: ...

    def forget(self, pgid: int) -> None: ...


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
        env: dict[str, str] | None = None,
    ):
        self.command = command
        self.env = env
        self.groups = groups
        self.limits = limits
        self.pgid: int | None = None
        self.timeout = timeout
        self.kill_grace = kill_grace
        self.output = CapturedOutput(output_limit)
        self._stop_reason: str | None = None
        self._stop_requested = asyncio.Event()
        self.started_at = datetime.now(UTC)

    @property
    def stopping(self) -> bool:
        return self._stop_reason is not None

    def stop(self, reason: str) -> None:
        if self._stop_reason is None:
            self._stop_reason = reason
            self._stop_requested.set()

    async def run(self, on_started: Callable[[datetime], None]) -> Outcome:
        try:
            proc = await asyncio.create_subprocess_exec(
                SHELL,
                "-c",
                self._script(),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,  # its own process group, killed as a whole
                env=self.env,
            )
        except OSError as exc:
            now = datetime.now(UTC)
            return Outcome(127, f"could not start: {exc}", self.started_at, now)
        self.started_at = datetime.now(UTC)
        self.pgid = proc.pid
        self._apply_limits(proc.pid)
        if self.groups is not None:
            self.groups.watch(proc.pid)
        on_started(self.started_at)
        reader = asyncio.create_task(self._read(proc))
        waiter = asyncio.create_task(proc.wait())
        stopper = asyncio.create_task(self._stop_requested.wait())
        done, _ = await asyncio.wait(
            {waiter, stopper}, timeout=self.timeout, return_when=asyncio.FIRST_COMPLETED
        )
        if waiter not in done:
            self.stop("timed out")
            await self._terminate(proc, waiter)
        stopper.cancel()
        # The command is done: whatever it left behind in its group goes too, and the
        # pipe closes even if a grandchild held it open.
        _signal_group(proc.pid, signal.SIGKILL)
        if self.groups is not None:
            self.groups.forget(proc.pid)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(reader, 5)
        code = proc.returncode if proc.returncode is not None else -signal.SIGKILL
        return Outcome(
            exit_code=code if code >= 0 else 128 - code,
            reason=self._stop_reason or ("" if code >= 0 else f"killed by signal {-code}"),
            started_at=self.started_at,
            finished_at=datetime.now(UTC),
        )

    def _script(self) -> str:
        """The command, after the shell sets the memory limit on itself, so that every
        process it starts inherits it (a limit set from outside would come too late
        for what the shell forks at once)."""
        if not self.limits.memory_bytes:
            return self.command
        return f"ulimit -v {self.limits.memory_bytes // 1024} 2>/dev/null\n{self.command}"

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
        if self.pgid is not None:
            _signal_group(self.pgid, signal.SIGKILL)

    async def _terminate(self, proc: asyncio.subprocess.Process, waiter: asyncio.Task[int]) -> None:
        _signal_group(proc.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.shield(waiter), self.kill_grace)
        except TimeoutError:
            _signal_group(proc.pid, signal.SIGKILL)
            await waiter

    async def _read(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        while data := await proc.stdout.read(READ_SIZE):
            self.output.feed(data)
        self.output.feed(b"", final=True)


def count_groups() -> dict[int, int]:
    """How many live processes each process group has, from /proc."""
    counts: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != b"Z":  # state; the process group is two fields on
            pgid = int(fields[2])
            counts[pgid] = counts.get(pgid, 0) + 1
    return counts


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
