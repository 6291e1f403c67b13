"""A watchdog process beside the runner: if the runner dies (even by SIGKILL), every
job process group it had running is killed, so that no orphaned command keeps a slot
the scheduler will soon give to another job.

The runner writes `+PGID` and `-PGID` lines to the reaper's stdin; end of input means
the runner is gone."""

import asyncio
import contextlib
import os
import signal
import subprocess
import sys


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
    """The runner's handle on its reaper process. Lines written in one turn of the
    event loop go to the reaper in one write."""

    def __init__(self) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "jobsched_runner.reaper"],
            stdin=subprocess.PIPE,
            start_new_session=True,
        )
        self._flush_scheduled = False

    def _send(self, line: str) -> None:
        assert self._proc.stdin is not None
        try:
            self._proc.stdin.write(line.encode())
        except BrokenPipeError:  # the reaper died: jobs still run, only unguarded
            return
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        assert self._proc.stdin is not None
        with contextlib.suppress(BrokenPipeError):
            self._proc.stdin.flush()

    def watch(self, pgid: int) -> None:
        self._send(f"+{pgid}\n")

    def forget(self, pgid: int) -> None:
        self._send(f"-{pgid}\n")

    def close(self) -> None:
        if self._proc.stdin is not None:
            with contextlib.suppress(BrokenPipeError):
                self._proc.stdin.close()
        self._proc.wait(5)


if __name__ == "__main__":
    main()
