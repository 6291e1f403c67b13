"""The PostgreSQL adapter: every read and write of jobs, attempts and config."""

import contextlib
import functools
import json
import re
from collections.abc import Callable, Iterable
from operator import itemgetter
from typing import Any, TypeVar

import psycopg
from psycopg.rows import RowMaker, dict_row
from psycopg.types.numeric import Int8BinaryLoader
from psycopg_pool import AsyncConnectionPool

from .model import (
    STATUSES,
    AttemptKey,
    AttemptReport,
    Claimed,
    ClaimResult,
    Ended,
    JobRow,
    NewJob,
    StoredReports,
    slot_order,
)
from .queries import q

Row = dict[str, Any]
DEFAULT_LIMIT = 2
_NO_CURSOR = 2**31 - 1  # ids are SERIAL (int4)
MAX_SLOTS_PER_CLAIM = 10_000  # the highest limit there can be


class DuplicateName(Exception):
    """A job name that is taken: the name, when PostgreSQL says which."""

    def __init__(self, name: str):
        taken = f"job name '{name}'" if name else "a job name"
        super().__init__(f"{taken} already exists")


def _taken_name(exc: psycopg.errors.UniqueViolation) -> str:
    found = re.search(r"\(name\)=\((.*)\) already exists", exc.diag.message_detail or "")
    return found.group(1) if found else ""


def new_pool(
    url: str, max_size: int, min_size: int = 1, **options: Any
) -> AsyncConnectionPool[Any]:
    """The pool the store expects, not yet open. Its connections are in autocommit: a
    single statement is one round trip, and `conn.transaction()` makes the rest atomic."""
    return AsyncConnectionPool(
        url,
        min_size=min_size,
        max_size=max_size,
        open=False,
        kwargs={"autocommit": True},
        configure=_in_utc,
        **options,
    )


async def _in_utc(conn: psycopg.AsyncConnection[Any]) -> None:
    """Times then come back with `datetime.UTC`, not a ZoneInfo such as `Etc/UTC`:
    arithmetic on those is several times slower, and attempts and runner reports still
    read times as datetimes (jobs read them as integers, see `_job_cursor`)."""
    await conn.execute("SET TIME ZONE 'UTC'")


def _cursor(conn: psycopg.AsyncConnection[Any]) -> psycopg.AsyncCursor[Row]:
    """Rows as dicts, sent by PostgreSQL in binary: no text to format and parse again."""
    return conn.cursor(row_factory=dict_row, binary=True)


def _job_rows(cursor: psycopg.AsyncCursor[Any]) -> RowMaker[JobRow]:
    """Each row as a JobRow, its columns picked by name from what the query returns; a
    query that selects JobRow's columns in order (a page of jobs) needs no picking. The
    names come raw from the result (`cursor.description` builds an object per column,
    70 µs for a `RETURNING *`), and each query's row maker is made once."""
    result = cursor.pgresult
    names = tuple(result.fname(i) or b"" for i in range(result.nfields)) if result else ()
    make = _JOB_ROW_MAKERS.get(names)
    if make is None:
        make = _JOB_ROW_MAKERS[names] = _job_row_maker([name.decode() for name in names])
    return make


def _job_row_maker(columns: list[str]) -> RowMaker[JobRow]:
    as_job_row = functools.partial(tuple.__new__, JobRow)  # C all through: no Python frame
    if tuple(columns) == JobRow._fields:
        return as_job_row
    pick = itemgetter(*(columns.index(f) for f in JobRow._fields))
    return lambda values: as_job_row(pick(values))


_JOB_ROW_MAKERS: dict[tuple[bytes, ...], RowMaker[JobRow]] = {}  # one for each query's columns


def _job_cursor(conn: psycopg.AsyncConnection[Any]) -> psycopg.AsyncCursor[JobRow]:
    """Jobs as JobRows in binary, a timestamptz read as the int8 it is on the wire
    (microseconds since 2000-01-01 UTC): a page of jobs is the API's hottest read, and
    building datetimes only to take them apart again cost it a third of its time."""
    cur = conn.cursor(row_factory=_job_rows, binary=True)
    cur.adapters.register_loader("timestamptz", Int8BinaryLoader)
    return cur


R = TypeVar("R")
CursorOf = Callable[[psycopg.AsyncConnection[Any]], psycopg.AsyncCursor[R]]


class PgStore:
    def __init__(
        self,
        pool: AsyncConnectionPool[Any],
        lease_seconds: float,
        output_limit: int,
        default_timeout: int = 0,
    ):
        self.pool = pool
        self.lease_seconds = lease_seconds
        self.output_limit = output_limit
        self.default_timeout = default_timeout

    async def _fetch(
        self,
        cursor: CursorOf[R],
        query: str,
        params: dict[str, Any] | None,
        prepare: bool | None = None,
    ) -> list[R]:
        async with self.pool.connection() as conn:
            cur = cursor(conn)
            await cur.execute(q(query), params, prepare=prepare)
            return await cur.fetchall()

    async def _all(
        self, query: str, params: dict[str, Any] | None = None, prepare: bool | None = None
    ) -> list[Row]:
        return await self._fetch(_cursor, query, params, prepare)

    async def _one(self, query: str, params: dict[str, Any] | None = None) -> Row | None:
        rows = await self._all(query, params)
        return rows[0] if rows else None

    async def _jobs(
        self, query: str, params: dict[str, Any], prepare: bool | None = None
    ) -> list[JobRow]:
        return await self._fetch(_job_cursor, query, params, prepare)

    async def _job(self, query: str, params: dict[str, Any]) -> JobRow | None:
        rows = await self._jobs(query, params)
        return rows[0] if rows else None

    # --- public API -------------------------------------------------------------

    async def create_job(
        self, name: str, command: str, max_attempts: int, timeout_seconds: int | None
    ) -> JobRow:
        params = {
            "name": name,
            "command": command,
            "max_attempts": max_attempts,
            "timeout_seconds": timeout_seconds,
        }
        try:
            row = await self._job("create_job", params)
        except psycopg.errors.UniqueViolation as exc:
            raise DuplicateName(name) from exc
        assert row is not None
        return row

    async def create_jobs(self, jobs: list[NewJob]) -> list[JobRow]:
        """Inserts every job or none, in one statement; rows in the order given."""
        batch = json.dumps([job._asdict() for job in jobs])
        try:
            rows = await self._jobs("create_jobs", {"batch": batch})
        except psycopg.errors.UniqueViolation as exc:
            raise DuplicateName(_taken_name(exc)) from exc
        return sorted(rows, key=lambda row: row.id)

    async def get_job(self, job_id: int) -> JobRow | None:
        return await self._job("get_job", {"id": job_id})

    async def list_jobs(self, status: str | None, limit: int, before_id: int) -> list[JobRow]:
        below = min(before_id, _NO_CURSOR) if before_id else _NO_CURSOR
        params = {"status": status, "limit": limit, "before_id": below}
        if not status:
            return await self._jobs("list_jobs", params)
        # Never prepared: a generic plan cannot know how rare a status is, and may scan
        # the whole table by id instead of using (status, id).
        return await self._jobs("list_jobs_by_status", params, prepare=False)

    async def get_output(self, job_id: int, attempt: int = 0) -> Row | None:
        return await self._one("get_output", {"id": job_id, "attempt": attempt})

    async def get_max_concurrent(self) -> int:
        row = await self._one("get_max_concurrent")
        return int(row["value"]) if row else DEFAULT_LIMIT

    async def set_max_concurrent(self, value: int) -> int:
        row = await self._one("set_max_concurrent", {"value": value})
        assert row is not None
        return int(row["value"])

    async def count_by_status(self) -> dict[str, int]:
        counts = dict.fromkeys(STATUSES, 0)
        for row in await self._all("count_by_status"):
            counts[row["status"]] = int(row["n"])
        return counts

    # --- dispatch -----------------------------------------------------------------

    async def claim(self, free_by_runner: dict[str, int]) -> ClaimResult:
        """One short transaction, serialised across schedulers, sent in one round trip:
        read the limit, count running, and claim up to min(limit - running, free runner
        capacity)."""
        slots = slot_order(free_by_runner, MAX_SLOTS_PER_CLAIM)
        params = {
            "slots": json.dumps(slots),
            "default_limit": DEFAULT_LIMIT,
            "lease_seconds": self.lease_seconds,
            "default_timeout": self.default_timeout,
        }
        async with self.pool.connection() as conn:
            cur = await _cursor(conn).execute(q("claim"), params)
            rows = await cur.fetchall()
            first = rows[0]
            result = ClaimResult(
                limit=first["max_concurrent"], running=first["running"], queued=first["queued"]
            )
            for r in rows:
                if r["id"] is not None:
                    claimed = Claimed(
                        AttemptKey(r["id"], r["attempt"]), r["command"], r["timeout_seconds"]
                    )
                    result.by_runner.setdefault(r["runner_id"], []).append(claimed)
            if result.claimed < min(result.available, result.queued, len(slots)):
                # Some queued jobs are waiting out a retry backoff: note when one is due.
                row = await (await conn.execute(q("next_retry"))).fetchone()
                result.next_retry_at = row[0] if row else None
            return result

    # --- runner reports -------------------------------------------------------------

    async def apply_reports(self, reports: Iterable[AttemptReport]) -> StoredReports:
        """Writes one batch of runner reports at once: a retry must not append output
        twice. Most batches are finishes alone, one statement and one round trip."""
        started = [r for r in reports if r.started_at and not r.finished]
        output = [r for r in reports if r.output and not r.finished]
        finished = [r for r in reports if r.finished]
        statements = sum(1 for kind in (started, output, finished) if kind)
        async with self.pool.connection() as conn, _atomic(conn, statements > 1):
            if started:
                await conn.execute(
                    q("record_started"),
                    {
                        "job_ids": [r.key.job_id for r in started],
                        "attempts": [r.key.attempt for r in started],
                        "started_ats": [r.started_at for r in started],
                    },
                )
            if output:
                await conn.execute(
                    q("append_output"),
                    {
                        "job_ids": [r.key.job_id for r in output],
                        "attempts": [r.key.attempt for r in output],
                        "outputs": ["".join(r.output) for r in output],
                        "truncated": [r.truncated for r in output],
                        "output_limit": self.output_limit,
                    },
                )
            ended: list[Ended] = []
            if finished:
                cur = _cursor(conn)
                await cur.execute(q("finish"), _finish_params(finished, self.output_limit))
                ended = [
                    Ended(
                        AttemptKey(r["job_id"], r["attempt"]),
                        r["status"],
                        r["waited"] if r["attempt"] == 1 else None,
                        r["ran"],
                    )
                    for r in await cur.fetchall()
                ]
        return StoredReports([r.key for r in finished], ended)

    async def cancel(self, job_id: int) -> tuple[JobRow | None, bool]:
        """Ends a queued job, or asks for a running one to be stopped. Returns the job
        as it now is (None when it does not exist) and whether this call changed it."""
        async with self.pool.connection() as conn, conn.transaction():
            cur = _job_cursor(conn)
            for query in ("cancel_queued", "request_cancel", "get_job"):
                await cur.execute(q(query), {"id": job_id})
                row = await cur.fetchone()
                if row is not None:
                    return row, query != "get_job"
            return None, False

    async def retry(self, job_id: int) -> tuple[JobRow | None, bool]:
        """Queues a finished job again. Returns the job as it now is (None when it does
        not exist) and whether this call queued it."""
        row = await self._job("retry_job", {"id": job_id})
        if row is not None:
            return row, True
        return await self.get_job(job_id), False

    async def list_attempts(self, job_id: int) -> list[Row]:
        return await self._all("list_attempts", {"id": job_id})

    async def renew_leases(
        self, runner_id: str, keys: list[AttemptKey]
    ) -> tuple[set[AttemptKey], set[AttemptKey]]:
        """Returns the attempts that are still current (and now renewed), and those of
        them that were asked to stop."""
        if not keys:
            return set(), set()
        rows = await self._all(
            "renew_leases",
            {
                "runner_id": runner_id,
                "job_ids": [k.job_id for k in keys],
                "attempts": [k.attempt for k in keys],
                "lease_seconds": self.lease_seconds,
            },
        )
        current = {AttemptKey(r["id"], r["attempt"]) for r in rows}
        cancelled = {AttemptKey(r["id"], r["attempt"]) for r in rows if r["cancel_requested"]}
        return current, cancelled

    async def expire_leases(self) -> list[AttemptKey]:
        rows = await self._all("expire_leases")
        return [AttemptKey(r["job_id"], r["attempt"]) for r in rows]


def _atomic(conn: Any, needed: bool) -> contextlib.AbstractAsyncContextManager[Any]:
    return conn.transaction() if needed else contextlib.nullcontext()


def _finish_params(finished: list[AttemptReport], output_limit: int) -> dict[str, Any]:
    batch = []
    for report in finished:
        assert report.finished is not None
        end = report.finished
        started_at = end.started_at or report.started_at
        batch.append(
            {
                "job_id": report.key.job_id,
                "attempt": report.key.attempt,
                "exit_code": end.exit_code,
                "reason": end.reason,
                "started_at": started_at.isoformat() if started_at else None,
                "finished_at": end.finished_at.isoformat(),
                "output": "".join(report.output),
                "truncated": report.truncated,
            }
        )
    return {"batch": json.dumps(batch), "output_limit": output_limit}
