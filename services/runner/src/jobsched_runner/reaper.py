"""A watchdog process beside the runner: if the runner dies (even by SIGKILL), every
job process group it had running is killed, so that no orphaned command keeps a slot
the scheduler will soon give to another job.

The runner writes `+PGID` and `-PGID` lines to the reaper's stdin; end of input means
the runner is gone."""

import contextlib
import os
import signal
import subprocess
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the reaper process itself has no event loop: it stays small
    import asyncio

FORGET_WITHIN_SECONDS = 0.1


def main() -> None:
    # Ctrl+C reaches the whole terminal group: the runner drains, the reaper waits for it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    groups: set[int] = set()
    for line in sys.stdin:
        sign, pgid = line[:1], int(line[1:])
        if sign == "+":
            groups.add(pgid)
        else:
            groups.discard(pgid)
    for pgid in groups:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


class Reaper:
    """The runner's handle on its reaper process. A new group is sent at the end of
    this turn of the event loop, together with whatever else came up in it; a group
    that ended can wait a little for the next write, since killing it would be a no-op."""

    def __init__(self, loop: "asyncio.AbstractEventLoop") -> None:
        self._loop = loop
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "jobsched_runner.reaper"],
            stdin=subprocess.PIPE,
            start_new_session=True,
        )
        self._flush_at: float | None = None  # when the next write is scheduled

    def _send(self, line: str, within: float) -> None:
        assert self._proc.stdin is not None
        try:
            self._proc.stdin.write(line.encode())
        except BrokenPipeError:  # the reaper died: jobs still run, only unguarded
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

    def watch(self, pgid: int) -> None:
        self._send(f"+{pgid}\n", 0)

    def forget(self, pgid: int) -> None:
        self._send(f"-{pgid}\n", FORGET_WITHIN_SECONDS)

    def close(self) -> None:
        if self._proc.stdin is not None:
            with contextlib.suppress(BrokenPipeError):
                self._proc.stdin.close()
        self._proc.wait(5)


if __name__ == "__main__":
    main()
