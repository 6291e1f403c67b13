"""Search, deletes and actions on many jobs at once, in PostgreSQL: a job found by a piece
of its name or command, a finished job deleted, many jobs cancelled or retried by ids or
by a filter, and old finished jobs deleted by the retention sweep."""

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from jobsched_common.limits import TERMINAL_STATUSES
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from .audit import LOCAL, Caller, record_audit
from .errors import NotFound, WrongState
from .model import AttemptKey, JobFilter, JobRow
from .queries import q
from .store import _NO_CURSOR, JOB_ROWS, _cursor, _domain_errors

# A filter's jobs are changed this many at a time, each batch its own short transaction,
# so that the claim never waits long for a row.
FILTER_BATCH = 500
CANCELLABLE = ["queued", "scheduled", "running"]
RETRYABLE: list[str] = sorted(TERMINAL_STATUSES)
MIN_INDEXED_CHARS = 3  # shorter text has no trigram to look up
# A search reads this many of the newest jobs row by row before it turns to the index,
# and every job of a status that has at most FEW_JOBS.
RECENT_WINDOW = 5000
FEW_JOBS = 20_000
RETENTION = Caller("retention")  # the actor of the retention sweep's audit entries


@dataclass(frozen=True)
class Cancelled:
    """A job a bulk cancel changed: ended (`cancelled`), or asked to stop (`running`)."""

    key: AttemptKey
    status: str
    runner_id: str | None


@dataclass(frozen=True)
class Change:
    """Who acts on many jobs, and the action the audit log records."""

    caller: Caller
    action: str

    async def record(
        self, conn: psycopg.AsyncConnection[Any], target: dict[str, Any], changed: int
    ) -> None:
        await record_audit(conn, self.caller, self.action, "jobs", target, {"changed": changed})


def like_pattern(text: str) -> str:
    """ILIKE's pattern for `text` anywhere: its wildcards and escapes taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _text_params(text: str | None) -> dict[str, Any]:
    return {"text": text, "pattern": like_pattern(text) if text is not None else None}


def _indexed(text: str | None) -> bool:
    """Whether the text has a trigram to look up (the query differs, so that the
    planner sees the index's condition)."""
    return text is not None and len(text) >= MIN_INDEXED_CHARS


async def _few(conn: psycopg.AsyncConnection[Any], status: str | None) -> bool:
    """Whether the status has few enough jobs to read them all, from the counters."""
    if status is None:
        return False
    cur = await conn.execute(q("count_of_status"), {"status": status})
    row = await cur.fetchone()
    return bool(row and row[0] <= FEW_JOBS)


class PgBulk:
    def __init__(
        self,
        pool: AsyncConnectionPool[Any],
        batch: int = FILTER_BATCH,
        window: int = RECENT_WINDOW,
    ):
        self.pool = pool
        self.batch = batch
        self.window = window

    @contextlib.asynccontextmanager
    async def _transaction(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        with _domain_errors():
            async with self.pool.connection() as conn, conn.transaction():
                yield conn

    async def search(
        self, status: str | None, text: str, limit: int, before_id: int
    ) -> list[JobRow]:
        """A page of jobs whose name or command contains `text`, newest first: the newest
        `window` jobs are read row by row (where common text fills a page at once),
        the older ones found through the trigram index (which rare text needs). Text
        of 1 or 2 characters has no trigram, and a status with few jobs is read whole
        sooner than the index's candidates of every status: both are matched row by
        row all along."""
        below = min(before_id, _NO_CURSOR) if before_id else _NO_CURSOR
        params = {"status": status, "limit": limit, "before_id": below, **_text_params(text)}
        with _domain_errors():
            async with self.pool.connection() as conn:
                cur = _cursor(conn, JOB_ROWS)
                if not _indexed(text) or await _few(conn, status):
                    await cur.execute(q("search_jobs_short"), params, prepare=False)
                    return await cur.fetchall()
                params["window"] = self.window
                await cur.execute(q("search_recent"), params, prepare=False)
                found = await cur.fetchall()
                if len(found) == limit:
                    return found
                ends = await conn.execute(q("search_window_end"), params, prepare=False)
                seen, lowest = await ends.fetchone() or (0, None)
                if seen < self.window or lowest is None:
                    return found  # the window held every job there is
                params.update(before_id=lowest, limit=limit - len(found))
                await cur.execute(q("search_jobs"), params, prepare=False)
                return found + await cur.fetchall()

    async def delete(self, job_id: int, caller: Caller = LOCAL) -> None:
        """Deletes a finished job with its attempts and output."""
        async with self._transaction() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(q("delete_finished"), {"id": job_id})
            deleted = await cur.fetchone()
            if deleted is None:
                found = await (await conn.execute(q("job_status"), {"id": job_id})).fetchone()
                if found is None:
                    raise NotFound(f"job {job_id} not found")
                raise WrongState(f"job {job_id} is {found[0]}: only a finished job can be deleted")
            await record_audit(conn, caller, "job.delete", f"job/{job_id}", deleted, None)

    async def cancel(
        self, ids: list[int] | None, where: JobFilter | None, caller: Caller = LOCAL
    ) -> list[Cancelled]:
        """Cancels the listed jobs, or those matching the filter, that are not finished;
        returns each one changed."""
        changed: list[Cancelled] = []

        async def apply(conn: psycopg.AsyncConnection[Any], batch: list[int]) -> int:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(q("cancel_many"), {"ids": batch})
            rows = await cur.fetchall()
            changed.extend(
                Cancelled(AttemptKey(r["id"], r["attempt"]), r["status"], r["runner_id"])
                for r in rows
            )
            return len(rows)

        await self._each(ids, where, CANCELLABLE, apply, Change(caller, "jobs.cancel"))
        return changed

    async def retry(
        self, ids: list[int] | None, where: JobFilter | None, caller: Caller = LOCAL
    ) -> int:
        """Queues the listed finished jobs, or those matching the filter, again; returns
        how many."""

        async def apply(conn: psycopg.AsyncConnection[Any], batch: list[int]) -> int:
            cur = await conn.execute(q("retry_many"), {"ids": batch})
            return len(await cur.fetchall())

        return await self._each(ids, where, RETRYABLE, apply, Change(caller, "jobs.retry"))

    async def _each(
        self,
        ids: list[int] | None,
        where: JobFilter | None,
        applies_to: list[str],
        apply: Callable[[psycopg.AsyncConnection[Any], list[int]], Awaitable[int]],
        change: "Change",
    ) -> int:
        """Listed ids in one transaction; a filter's jobs in batches, newest first, each
        batch locked and changed in a transaction of its own. Jobs created meanwhile
        are left alone. The audit entry goes with the last transaction."""
        if ids is not None:
            async with self._transaction() as conn:
                count = await apply(conn, ids)
                await change.record(conn, {"ids": ids}, count)
                return count
        assert where is not None
        params = {
            "status": where.status,
            "applies_to": applies_to,
            "batch": self.batch,
            "before_id": _NO_CURSOR,
            **_text_params(where.text),
        }
        lock = "lock_matching_indexed" if _indexed(where.text) else "lock_matching"
        count = 0
        while True:
            async with self._transaction() as conn:
                cur = await conn.execute(q(lock), params, prepare=False)
                batch = [row[0] for row in await cur.fetchall()]
                if batch:
                    count += await apply(conn, batch)
                    params["before_id"] = batch[-1]
                if len(batch) < self.batch:
                    where_json = {"status": where.status, "q": where.text}
                    await change.record(conn, {"filter": where_json}, count)
            if len(batch) < self.batch:
                return count

    async def record_retention(self, deleted: dict[str, int], cutoffs: dict[str, str]) -> None:
        """The audit entry of one retention run: how many jobs of each status (and audit
        entries, as `audit`) it deleted, and the time each had to be from before."""
        after = {"deleted": deleted, "finished_before": cutoffs}
        async with self._transaction() as conn:
            await record_audit(conn, RETENTION, "retention.run", "jobs", None, after)

    async def delete_expired(self, status: str, cutoff: datetime, batch: int) -> int:
        """Deletes one batch of jobs in `status` that finished before `cutoff`, oldest
        first; returns how many."""
        params = {"status": status, "cutoff": cutoff, "batch": batch}
        async with self._transaction() as conn:
            cur = await conn.execute(q("delete_expired"), params)
            return len(await cur.fetchall())

    async def delete_expired_audit(self, cutoff: datetime, batch: int) -> int:
        """Deletes the entries written before `cutoff` among the `batch` oldest of the
        audit log; returns how many."""
        async with self._transaction() as conn:
            cur = await conn.execute(q("delete_expired_audit"), {"cutoff": cutoff, "batch": batch})
            return len(await cur.fetchall())
