"""A watchdog process beside the runner: if the runner dies (even by SIGKILL), every job
process it had running is killed, so that no orphaned command keeps a slot the scheduler
will soon give to another job. The same if the runner is alive but stuck (stopped by a
signal, or its event loop blocked) past its jobs' leases: the scheduler hands those jobs
to another runner, and a job must never run twice at once. The runner watches the
reaper in turn and starts another if it dies.

The runner writes lines to the reaper's stdin, `+` to watch and `-` to forget:
`g<pgid>` a job's process group, `c<path>` a job's cgroup (killed, then removed),
`p<pid>:<start time>` a process that left its job's group, `r<path>` the runner's cgroup
of jobs (removed last); and `@<time>`: kill what is watched at that time (on the
machine's monotonic clock) unless a later `@` comes first, `@` alone for no such time.
End of input means the runner is gone."""

import asyncio
import contextlib
import logging
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

log = logging.getLogger(__name__)

FORGET_WITHIN_SECONDS = 0.1
RESTART_DELAY_SECONDS = 1.0
CGROUP_EMPTY_WAIT_SECONDS = 5.0


def main() -> None:
    # Ctrl+C reaches the whole terminal group: the runner drains, the reaper waits for it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    entries: dict[str, None] = {}  # ordered: cgroups are removed in the order given
    deadline: float | None = None
    stdin, pending = sys.stdin.fileno(), b""
    while True:
        wait = None if deadline is None else max(0.0, deadline - time.monotonic())
        if not select.select([stdin], [], [], wait)[0]:
            sys.stderr.write(
                f"reaper: the runner (pid {os.getppid()}) kept its jobs past their leases "
                f"without a word: killing {len(entries)} watched\n"
            )
            kill(list(entries))
            deadline = None
            continue
        chunk = os.read(stdin, 65536)
        if not chunk:
            break
        *lines, pending = (pending + chunk).split(b"\n")
        for line in lines:
            deadline = _apply(line.decode(), entries, deadline)
    reap(list(entries))


def _apply(line: str, entries: dict[str, None], deadline: float | None) -> float | None:
    kind, entry = line[:1], line[1:]
    if kind == "@":
        return float(entry) if entry else None
    if kind == "+":
        entries[entry] = None
    else:
        entries.pop(entry, None)
    return deadline


def reap(entries: list[str]) -> None:
    """Kills everything `entries` name, then removes their cgroups."""
    kill(entries)
    cgroups = [Path(e[1:]) for e in entries if e.startswith("c")]
    deadline = time.monotonic() + CGROUP_EMPTY_WAIT_SECONDS
    for path in [*cgroups, *(Path(e[1:]) for e in entries if e.startswith("r"))]:
        remove_cgroup(path, deadline)


def kill(entries: list[str]) -> None:
    for entry in entries:
        kind, what = entry[:1], entry[1:]
        with contextlib.suppress(OSError, ValueError):
            if kind == "g":
                os.killpg(int(what), signal.SIGKILL)
            elif kind == "p":
                kill_process(*map(int, what.split(":")))
            elif kind == "c":
                (Path(what) / "cgroup.kill").write_text("1")


def kill_process(pid: int, start_time: int) -> None:
    """Kills `pid` if it is still the process that started then (not a reused pid)."""
    if process_start_time(pid) == start_time:
        os.kill(pid, signal.SIGKILL)


def process_start_time(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return int(stat.read().rsplit(b")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def remove_cgroup(path: Path, deadline: float) -> None:
    """A cgroup goes once its last process has gone: killed ones take a moment."""
    while True:
        try:
            path.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            if time.monotonic() >= deadline:
                return
            time.sleep(0.02)


class Reaper:
    """The runner's handle on its reaper process, restarted if it dies and told again
    all it was told. A new entry is sent at the end of this turn of the event loop,
    together with whatever else came up in it; an entry that ended can wait a little
    for the next write, since killing it would be a no-op."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._entries: dict[str, None] = {}
        self._deadline = ""
        self._flush_at: float | None = None  # when the next write is scheduled
        self._pidfd = -1
        self._closed = False
        self._proc = self._start()

    @property
    def pid(self) -> int:
        return self._proc.pid

    def _start(self) -> "subprocess.Popen[bytes]":
        proc = subprocess.Popen(
            [sys.executable, "-m", "jobsched_runner.reaper"],
            stdin=subprocess.PIPE,
            start_new_session=True,
        )
        self._pidfd = os.pidfd_open(proc.pid)
        self._loop.add_reader(self._pidfd, self._died, proc)
        return proc

    def _stop_watching(self) -> None:
        if self._pidfd >= 0:
            self._loop.remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = -1

    def _died(self, proc: "subprocess.Popen[bytes]") -> None:
        self._stop_watching()
        code = proc.wait()
        if proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()
        log.warning("Reaper (pid %d) died with code %d: starting another", proc.pid, code)
        self._restart()

    def _restart(self) -> None:
        if self._closed:
            return
        try:
            self._proc = self._start()
        except OSError:
            log.exception("Could not start a reaper: trying again")
            self._loop.call_later(RESTART_DELAY_SECONDS, self._restart)
            return
        told = "".join(f"+{entry}\n" for entry in self._entries)
        self._write(f"{told}@{self._deadline}\n", 0)
        log.info("Reaper restarted (pid %d), told %d entries", self._proc.pid, len(self._entries))

    def _write(self, lines: str, within: float) -> None:
        assert self._proc.stdin is not None
        try:
            self._proc.stdin.write(lines.encode())
        except (BrokenPipeError, ValueError):  # it died: the watcher starts another
            return
        due = self._loop.time() + within
        if self._flush_at is None or due < self._flush_at:
            self._flush_at = due
            self._loop.call_at(due, self._flush, due)

    def _flush(self, due: float) -> None:
        if self._flush_at != due:
            return  # an earlier write took it
        self._flush_at = None
        stdin = self._proc.stdin
        if stdin is None or stdin.closed:  # a write scheduled before close(): nothing left
            return
        with contextlib.suppress(BrokenPipeError):
            stdin.flush()

    def watch(self, entry: str) -> None:
        self._entries[entry] = None
        self._write(f"+{entry}\n", 0)

    def forget(self, entry: str) -> None:
        self._entries.pop(entry, None)
        self._write(f"-{entry}\n", FORGET_WITHIN_SECONDS)

    def kill_at(self, deadline: float | None) -> None:
        """Everything watched is killed at `deadline` (time.monotonic()) unless told a
        later one first; None: at no time."""
        self._deadline = "" if deadline is None else f"{deadline:.3f}"
        self._write(f"@{self._deadline}\n", 0)

    def close(self) -> None:
        self._closed = True
        self._stop_watching()
        if self._proc.stdin is not None:
            with contextlib.suppress(BrokenPipeError):
                self._proc.stdin.close()
        self._proc.wait(5 + CGROUP_EMPTY_WAIT_SECONDS)


if __name__ == "__main__":
    main()
