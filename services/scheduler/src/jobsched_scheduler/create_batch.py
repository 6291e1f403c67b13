"""Concurrent CreateJob calls share one insert and one commit: a commit waits for the
disk, and one per job caps how many jobs a second the API takes. Each caller still gets
its own job or its own error."""

import asyncio
import logging
from collections.abc import Awaitable, Callable

from jobsched_common.limits import MAX_JOBS_PER_BATCH

from .audit import Caller
from .errors import Conflict, DomainError, Unavailable
from .model import JobRow, NewJob

log = logging.getLogger(__name__)

# Inserts jobs of their callers in one statement; a job whose name is taken comes back
# as None.
Insert = Callable[[list[NewJob], list[Caller]], Awaitable[list[JobRow | None]]]
Waiting = tuple[NewJob, Caller, "asyncio.Future[JobRow]"]
# Batches in flight at once: one forms while another waits for its commit.
FLIGHTS = 2


class CreateBatcher:
    """Whoever calls while no batch is free to start waits for the next one, which takes
    everyone waiting (up to MAX_JOBS_PER_BATCH). An idle API inserts a lone job at once:
    batching costs no wait, it only forms under load."""

    def __init__(self, insert: Insert, most: int = MAX_JOBS_PER_BATCH, flights: int = FLIGHTS):
        self.insert = insert
        self.most = most
        self.flights = flights
        self._waiting: list[Waiting] = []
        self._flying = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def create(self, job: NewJob, caller: Caller) -> JobRow:
        future: asyncio.Future[JobRow] = asyncio.get_running_loop().create_future()
        self._waiting.append((job, caller, future))
        if self._flying < self.flights:
            self._flying += 1
            task = asyncio.create_task(self._fly())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await future

    async def _fly(self) -> None:
        try:
            while self._waiting:
                batch, self._waiting = self._waiting[: self.most], self._waiting[self.most :]
                await self._insert(batch)
        finally:
            self._flying -= 1

    async def _insert(self, batch: list[Waiting]) -> None:
        try:
            rows = await self.insert([job for job, _, _ in batch], [c for _, c, _ in batch])
        except DomainError as exc:
            if isinstance(exc, Unavailable) or len(batch) == 1:
                _fail(batch, exc)
            else:  # one job's bad value fails the statement: find whose, one by one
                for item in batch:
                    await self._insert([item])
            return
        except BaseException as exc:
            _fail(batch, exc)
            if not isinstance(exc, Exception):
                raise
            log.exception("Inserting %d jobs failed", len(batch))
            return
        for (job, _, future), row in zip(batch, rows, strict=True):
            if future.done():  # its caller went away; the job exists all the same
                continue
            if row is None:
                future.set_exception(Conflict(f"job name '{job.name}' already exists"))
            else:
                future.set_result(row)


def _fail(batch: list[Waiting], exc: BaseException) -> None:
    for _, _, future in batch:
        if not future.done():
            future.set_exception(exc)
