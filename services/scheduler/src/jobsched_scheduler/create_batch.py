"""Concurrent CreateJob calls share one insert and one commit: a commit waits for the
disk, and one per job caps how many jobs a second the API takes. Each caller still gets
its own job or its own error."""

import logging
from collections.abc import Awaitable, Callable

from jobsched_common.batches import FLIGHTS, Batcher
from jobsched_common.limits import MAX_JOBS_PER_BATCH

from .audit import Caller
from .errors import Conflict, DomainError, Unavailable
from .model import JobRow, NewJob

log = logging.getLogger(__name__)

# Inserts jobs of their callers in one statement; a job whose name is taken comes back
# as None.
Insert = Callable[[list[NewJob], list[Caller]], Awaitable[list[JobRow | None]]]
Outcome = JobRow | BaseException


class CreateBatcher:
    """Concurrent creates in one insert and one commit (`jobsched_common.batches`)."""

    def __init__(self, insert: Insert, most: int = MAX_JOBS_PER_BATCH, flights: int = FLIGHTS):
        self.insert = insert
        self._batches: Batcher[tuple[NewJob, Caller], JobRow] = Batcher(self._insert, most, flights)

    async def create(self, job: NewJob, caller: Caller) -> JobRow:
        return await self._batches.submit((job, caller))

    async def _insert(self, batch: list[tuple[NewJob, Caller]]) -> list[Outcome]:
        try:
            rows = await self.insert([job for job, _ in batch], [c for _, c in batch])
        except DomainError as exc:
            if isinstance(exc, Unavailable) or len(batch) == 1:
                return [exc] * len(batch)
            # One job's bad value fails the statement: find whose, one by one.
            return [outcome for item in batch for outcome in await self._insert([item])]
        except Exception:
            log.exception("Inserting %d jobs failed", len(batch))
            raise
        return [
            Conflict(f"job name '{job.name}' already exists") if row is None else row
            for (job, _), row in zip(batch, rows, strict=True)
        ]
