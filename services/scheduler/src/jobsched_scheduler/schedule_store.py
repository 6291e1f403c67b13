"""The PostgreSQL adapter for schedules: the API's reads and writes, and the fire loop's
batch. What the driver raises becomes a domain error here, as in store.py."""

import contextlib
import json
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import args_row, dict_row
from psycopg_pool import AsyncConnectionPool

from .audit import LOCAL, Caller, record_audit
from .errors import Conflict
from .fire_times import FireRule
from .model import JobRow
from .queries import q
from .schedule_model import DueSchedule, ScheduleRow, ScheduleSpec
from .store import JOB_ROWS, _domain_errors

SCHEDULE_ROWS = args_row(ScheduleRow)
# Given the row as stored, the next run it should get (None: paused).
NextRun = Callable[[ScheduleRow], datetime | None]


class PgSchedules:
    def __init__(self, pool: AsyncConnectionPool[Any]):
        self.pool = pool

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        with _domain_errors():
            async with self.pool.connection() as conn:
                yield conn

    async def _rows(self, query: str, params: dict[str, Any] | None = None) -> list[ScheduleRow]:
        async with self._connection() as conn:
            cur = conn.cursor(row_factory=SCHEDULE_ROWS)
            await cur.execute(q(query), params)
            return await cur.fetchall()

    async def _row(self, query: str, params: dict[str, Any]) -> ScheduleRow | None:
        rows = await self._rows(query, params)
        return rows[0] if rows else None

    # --- the API ----------------------------------------------------------------------

    async def create(
        self, spec: ScheduleSpec, next_run_at: datetime | None, caller: Caller = LOCAL
    ) -> ScheduleRow:
        try:
            async with self._connection() as conn, conn.transaction():
                cur = conn.cursor(row_factory=SCHEDULE_ROWS)
                await cur.execute(q("create_schedule"), _params(spec, next_run_at))
                row = await cur.fetchone()
                assert row is not None
                after = settings_of(row)
                await record_audit(conn, caller, "schedule.create", _target(spec.name), None, after)
        except Conflict as exc:
            raise Conflict(f"schedule '{spec.name}' already exists") from exc.__cause__
        return row

    async def update(
        self, spec: ScheduleSpec, next_run_at: datetime | None, caller: Caller = LOCAL
    ) -> ScheduleRow | None:
        async with self._connection() as conn, conn.transaction():
            cur = conn.cursor(row_factory=SCHEDULE_ROWS)
            await cur.execute(q("lock_schedule"), {"name": spec.name})
            before = await cur.fetchone()
            if before is None:
                return None
            await cur.execute(q("update_schedule"), _params(spec, next_run_at))
            row = await cur.fetchone()
            assert row is not None
            await record_audit(
                conn,
                caller,
                "schedule.update",
                _target(spec.name),
                settings_of(before),
                settings_of(row),
            )
            return row

    async def get(self, name: str) -> ScheduleRow | None:
        return await self._row("get_schedule", {"name": name})

    async def list_all(self) -> list[ScheduleRow]:
        return await self._rows("list_schedules")

    async def delete(self, name: str, caller: Caller = LOCAL) -> bool:
        async with self._connection() as conn, conn.transaction():
            cur = conn.cursor(row_factory=SCHEDULE_ROWS)
            await cur.execute(q("lock_schedule"), {"name": name})
            before = await cur.fetchone()
            if before is None:
                return False
            await conn.execute(q("delete_schedule"), {"name": name})
            target = _target(name)
            await record_audit(conn, caller, "schedule.delete", target, settings_of(before), None)
            return True

    async def set_paused(
        self, name: str, paused: bool, next_run: NextRun, caller: Caller = LOCAL
    ) -> ScheduleRow | None:
        """Pauses or resumes a schedule, its next run computed from the row as it is
        under a lock, so that a concurrent update cannot leave a stale one."""
        async with self._connection() as conn, conn.transaction():
            cur = conn.cursor(row_factory=SCHEDULE_ROWS)
            await cur.execute(q("lock_schedule"), {"name": name})
            row = await cur.fetchone()
            if row is None or row.paused == paused:
                return row
            params = {"name": name, "paused": paused, "next_run_at": next_run(row)}
            await cur.execute(q("set_schedule_paused"), params)
            action = "schedule.pause" if paused else "schedule.resume"
            before, after = {"paused": not paused}, {"paused": paused}
            await record_audit(conn, caller, action, _target(name), before, after)
            return await cur.fetchone()

    async def trigger(self, name: str, job_name: str, caller: Caller = LOCAL) -> JobRow | None:
        """Makes a job of the schedule now; None when there is no such schedule."""
        async with self._connection() as conn, conn.transaction():
            cur = await conn.execute(q("trigger_schedule"), {"name": name, "job_name": job_name})
            made = await cur.fetchone()
            if made is None:
                return None
            after = {"job_id": made[0], "job_name": job_name}
            await record_audit(conn, caller, "schedule.trigger", _target(name), None, after)
            jobs = conn.cursor(row_factory=JOB_ROWS)
            await jobs.execute(q("get_job"), {"id": made[0]})
            return await jobs.fetchone()

    # --- the fire loop ----------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def due(self, batch: int) -> AsyncIterator["DueBatch"]:
        """Up to `batch` due schedules, locked for one transaction: the caller hands
        back what to do with each through `DueBatch.fire` before it ends."""
        async with self._connection() as conn, conn.transaction():
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(q("due_schedules"), {"batch": batch})
            rows = await cur.fetchall()
            yield DueBatch(conn, rows)

    async def next_due(self) -> float | None:
        """In how many seconds the earliest live schedule is due; None when none is."""
        async with self._connection() as conn:
            cur = await conn.execute(q("next_schedule_due"))
            row = await cur.fetchone()
            return row[0] if row else None


class DueBatch:
    """The schedules of one pick, and the database's time at the pick."""

    def __init__(self, conn: psycopg.AsyncConnection[Any], rows: list[dict[str, Any]]):
        self._conn = conn
        self.now: datetime | None = rows[0]["now"] if rows else None
        self.schedules = [_due(row) for row in rows]

    async def fire(self, fires: Sequence[dict[str, Any]]) -> dict[str, int | None]:
        """Applies the fires (see `fire_schedules`) in the same transaction; returns the
        id of the job each schedule made (None: none, or its name existed)."""
        if not fires:
            return {}
        cur = await self._conn.execute(q("fire_schedules"), {"batch": json.dumps(fires)})
        return {name: job_id for name, job_id in await cur.fetchall()}


def _due(row: dict[str, Any]) -> DueSchedule:
    return DueSchedule(
        name=row["name"],
        command=row["command"],
        rule=FireRule(row["cron"], row["every_seconds"], row["timezone"]),
        overlap=row["overlap"],
        catchup_window_seconds=row["catchup_window_seconds"],
        priority=row["priority"],
        max_attempts=row["max_attempts"],
        timeout_seconds=row["timeout_seconds"],
        next_run_at=row["next_run_at"],
        previous_finished=row["previous_finished"],
        concurrency_key=row["concurrency_key"],
    )


def _target(name: str) -> str:
    return f"schedule/{name}"


def settings_of(row: ScheduleRow) -> dict[str, Any]:
    """What a client sets of a schedule, as the audit log records it."""
    return {field: getattr(row, field) for field in ScheduleSpec._fields if field != "name"}


def _params(spec: ScheduleSpec, next_run_at: datetime | None) -> dict[str, Any]:
    return {**spec._asdict(), "next_run_at": next_run_at}
