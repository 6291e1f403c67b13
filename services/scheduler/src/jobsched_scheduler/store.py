"""The PostgreSQL adapter: every read and write of jobs, attempts and config."""

from collections.abc import Iterable
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from .model import (
    STATUSES,
    AttemptKey,
    AttemptReport,
    Claimed,
    ClaimResult,
    Ended,
    StoredReports,
    plan_claims,
)
from .queries import q

Row = dict[str, Any]
DEFAULT_LIMIT = 2
_NO_CURSOR = 2**31 - 1  # ids are SERIAL (int4)


class DuplicateName(Exception):
    pass


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

    async def _one(self, query: str, params: dict[str, Any] | None = None) -> Row | None:
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(q(query), params)
            row: Row | None = await cur.fetchone()
            return row

    async def _all(self, query: str, params: dict[str, Any] | None = None) -> list[Row]:
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(q(query), params)
            rows: list[Row] = await cur.fetchall()
            return rows

    # --- public API -------------------------------------------------------------

    async def create_job(
        self, name: str, command: str, max_attempts: int, timeout_seconds: int | None
    ) -> Row:
        params = {
            "name": name,
            "command": command,
            "max_attempts": max_attempts,
            "timeout_seconds": timeout_seconds,
        }
        try:
            row = await self._one("create_job", params)
        except psycopg.errors.UniqueViolation as exc:
            raise DuplicateName(name) from exc
        assert row is not None
        return row

    async def get_job(self, job_id: int) -> Row | None:
        return await self._one("get_job", {"id": job_id})

    async def list_jobs(self, status: str | None, limit: int, before_id: int) -> list[Row]:
        cursor = min(before_id, _NO_CURSOR) if before_id else _NO_CURSOR
        params = {"status": status, "limit": limit, "before_id": cursor}
        return await self._all("list_jobs_by_status" if status else "list_jobs", params)

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
        """One short transaction, serialised across schedulers: read the limit, count
        running, and claim up to min(limit - running, free runner capacity)."""
        async with self.pool.connection() as conn, conn.transaction():
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(q("lock_dispatch"))
            await cur.execute(q("get_max_concurrent"))
            row = await cur.fetchone()
            limit = int(row["value"]) if row else DEFAULT_LIMIT
            await cur.execute(q("count_running_and_queued"))
            counts = await cur.fetchone() or {"running": 0, "queued": 0}
            running, queued = int(counts["running"]), int(counts["queued"])
            result = ClaimResult(limit=limit, running=running, queued=queued)
            plan = plan_claims(min(result.available, queued), free_by_runner)
            for runner_id, n in plan.items():
                params = {
                    "n": n,
                    "runner_id": runner_id,
                    "lease_seconds": self.lease_seconds,
                    "default_timeout": self.default_timeout,
                }
                await cur.execute(q("claim"), params)
                claimed = [
                    Claimed(AttemptKey(r["id"], r["attempt"]), r["command"], r["timeout_seconds"])
                    for r in await cur.fetchall()
                ]
                if claimed:
                    result.by_runner[runner_id] = claimed
            if result.claimed < sum(plan.values()):
                # Some queued jobs are waiting out a retry backoff: note when one is due.
                await cur.execute(q("next_retry"))
                result.next_retry_at = (await cur.fetchone() or {}).get("at")
            return result

    # --- runner reports -------------------------------------------------------------

    async def apply_reports(self, reports: Iterable[AttemptReport]) -> StoredReports:
        """Writes one batch of runner reports in one transaction."""
        started = [r for r in reports if r.started_at and not r.finished]
        output = [r for r in reports if r.output and not r.finished]
        finished = [r for r in reports if r.finished]
        async with self.pool.connection() as conn, conn.transaction():
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
                cur = conn.cursor(row_factory=dict_row)
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

    async def cancel(self, job_id: int) -> tuple[Row | None, bool]:
        """Ends a queued job, or asks for a running one to be stopped. Returns the job
        as it now is (None when it does not exist) and whether this call changed it."""
        async with self.pool.connection() as conn, conn.transaction():
            cur = conn.cursor(row_factory=dict_row)
            for query in ("cancel_queued", "request_cancel", "get_job"):
                await cur.execute(q(query), {"id": job_id})
                row: Row | None = await cur.fetchone()
                if row is not None:
                    return row, query != "get_job"
            return None, False

    async def retry(self, job_id: int) -> tuple[Row | None, bool]:
        """Queues a finished job again. Returns the job as it now is (None when it does
        not exist) and whether this call queued it."""
        row = await self._one("retry_job", {"id": job_id})
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


def _finish_params(finished: list[AttemptReport], output_limit: int) -> dict[str, Any]:
    ends = [r.finished for r in finished if r.finished]
    return {
        "job_ids": [r.key.job_id for r in finished],
        "attempts": [r.key.attempt for r in finished],
        "exit_codes": [f.exit_code for f in ends],
        "reasons": [f.reason for f in ends],
        "started_ats": [f.started_at or r.started_at for f, r in zip(ends, finished, strict=True)],
        "finished_ats": [f.finished_at for f in ends],
        "outputs": ["".join(r.output) for r in finished],
        "truncated": [r.truncated for r in finished],
        "output_limit": output_limit,
    }
