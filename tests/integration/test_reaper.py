"""The runner's reaper on real processes: what it is told survives its own death, since
the runner starts another and tells it everything again."""

import asyncio
import os
import signal
import subprocess
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
