"""The runner's reaper on real processes: what it is told survives its own death, since
the runner starts another and tells it everything again."""

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import Callable

import pytest
from jobsched_runner.reaper import Reaper

pytestmark = pytest.mark.timeout(60)


async def until(condition: Callable[[], bool], timeout: float = 10) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


def test_a_reaper_killed_is_replaced_and_the_new_one_kills_what_the_old_one_knew() -> None:
    async def scenario() -> None:
        job = subprocess.Popen(["sleep", "60"], start_new_session=True)
        reaper = Reaper(asyncio.get_running_loop())
        try:
            reaper.watch(f"g{job.pid}")
            first = reaper.pid
            os.kill(first, signal.SIGKILL)
            await until(lambda: reaper.pid != first)
        finally:
            reaper.close()  # end of input, as when the runner dies: it kills what it knows
        await until(lambda: job.poll() is not None)
        assert job.returncode == -signal.SIGKILL

    asyncio.run(scenario())


def test_a_reaper_kills_what_it_watches_at_the_time_it_was_told_and_keeps_watching() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        spared = subprocess.Popen(["sleep", "60"], start_new_session=True)
        doomed = subprocess.Popen(["sleep", "60"], start_new_session=True)
        later = subprocess.Popen(["sleep", "60"], start_new_session=True)
        reaper = Reaper(loop)
        try:
            reaper.watch(f"g{spared.pid}")
            first = time.monotonic() + 0.3
            reaper.kill_at(first)
            reaper.kill_at(first + 60)  # a renewal came first: the earlier time is void
            await until(lambda: time.monotonic() > first + 1)
            assert spared.poll() is None
            reaper.forget(f"g{spared.pid}")
            reaper.watch(f"g{doomed.pid}")
            reaper.kill_at(time.monotonic() + 0.3)  # then the runner fell silent
            await until(lambda: doomed.poll() is not None)
            assert doomed.returncode == -signal.SIGKILL
            reaper.watch(f"g{later.pid}")  # and came back: the reaper still listens
        finally:
            reaper.close()
        await until(lambda: later.poll() is not None)
        assert spared.poll() is None
        spared.kill()
        spared.wait()

    asyncio.run(scenario())
