"""The runner: its link to the scheduler and its jobs, run together until a stop, then
drained so that no result is left behind."""

import asyncio
import contextlib
import logging
from collections.abc import Callable

from jobsched.v1 import runner_pb2 as pb

from .containment import Containment
from .execute import ProcessGroups
from .jobs import Jobs, Launch
from .link import Link, Transport
from .settings import Settings
from .users import JobUser

log = logging.getLogger(__name__)

ACK_WAIT_SECONDS = 5.0
POLL_SECONDS = 0.05


class RunnerAgent:
    def __init__(
        self,
        settings: Settings,
        groups: ProcessGroups | None = None,
        transport: Transport | None = None,
        launch: Launch | None = None,
        containment: Containment | None = None,
        user: JobUser | None = None,
    ):
        self.settings = settings
        self.jobs = Jobs(settings, self._send, groups, launch, containment=containment, user=user)
        self.link = Link(settings, self.jobs, transport)

    def _send(self, message: pb.RunnerMessage) -> None:
        self.link.send(message)

    async def run(self, stop: asyncio.Event) -> None:
        tasks = [
            asyncio.create_task(self.link.run()),
            asyncio.create_task(self.jobs.watch_leases()),
            asyncio.create_task(self.jobs.watch_process_counts()),
        ]
        await stop.wait()
        await self._drain()
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _drain(self) -> None:
        """Takes no new work, lets running jobs finish within the grace, stops the rest,
        and waits a little for their results to be acknowledged."""
        jobs = self.jobs
        self.link.drain()
        log.info("Draining: %d job(s) running", len(jobs.running))
        await _wait_until(lambda: not jobs.running, self.settings.RUNNER_DRAIN_SECONDS)
        jobs.stop(jobs.running_keys(), "runner shut down")
        await _wait_until(lambda: not jobs.running, self.settings.KILL_GRACE_SECONDS + 5)
        await _wait_until(lambda: not jobs.unacked, ACK_WAIT_SECONDS)
        if jobs.unacked:
            log.warning("Stopping with %d unacknowledged result(s)", len(jobs.unacked))


async def _wait_until(condition: Callable[[], bool], timeout: float) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition() and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(POLL_SECONDS)
