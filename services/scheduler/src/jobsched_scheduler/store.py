"""The PostgreSQL adapter: every read and write of jobs, attempts and config. What the
driver raises becomes a domain error (errors.py) here, where it arises."""

import contextlib
import json
import re
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Any, NamedTuple, TypeVar

import psycopg
from jobsched_common.limits import DEFAULT_MAX_CONCURRENT_JOBS, MAX_CONCURRENT_JOBS, STATUSES
from psycopg.rows import BaseRowFactory, args_row, dict_row
from psycopg_pool import AsyncConnectionPool

from .audit import LOCAL, AuditRow, Caller, audit_params, record_audit
from .errors import Conflict, InvalidValue, Unavailable
from .model import (
    AttemptKey,
    AttemptReport,
    Claimed,
    ClaimResult,
    Ended,
    JobRow,
    KeyLimit,
    NewJob,
    Refused,
    StoredReports,
    slot_order,
)
from .queries import q

Row = dict[str, Any]
R = TypeVar("R")
_NO_CURSOR = 2**31 - 1  # ids are SERIAL (int4)


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
        kwargs={"autocommit": True, **CONNECTION_OPTIONS},
        configure=_configure,
        **options,
    )


# UTF8 whatever the database's encoding: from a SQL_ASCII database psycopg would
# otherwise return text as bytes.
CLIENT_ENCODING = "UTF8"
# TCP keepalives: a scheduler cut off from PostgreSQL finds its connections dead within
# about 25 s instead of the system's two hours.
CONNECTION_OPTIONS: dict[str, Any] = {
    "client_encoding": CLIENT_ENCODING,
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
}


async def _configure(conn: psycopg.AsyncConnection[Any]) -> None:
    """Times come back as datetimes in `datetime.UTC`. No JIT: the scheduler's statements
    are short, and a plan costed past jit_above_cost (as those made with enable_seqscan
    off are) would be compiled on every call, for far longer than it runs. The server
    ends a transaction left idle, and probes the connection as we do: a scheduler cut
    off in the middle of a write holds its row locks for a minute at most, not hours."""
    await conn.execute("SET TIME ZONE 'UTC'")
    await conn.execute("SET jit = off")
    await conn.execute("SET idle_in_transaction_session_timeout = '60s'")
    await conn.execute("SET tcp_keepalives_idle = 10")
    await conn.execute("SET tcp_keepalives_interval = 5")
    await conn.execute("SET tcp_keepalives_count = 3")


async def server_encoding(conn: psycopg.AsyncConnection[Any]) -> str:
    cursor = await conn.execute("SELECT current_setting('server_encoding')")
    row = await cursor.fetchone()
    return str(row[0]) if row else ""


@contextlib.contextmanager
def _domain_errors() -> Iterator[None]:
    """Raises what the driver raised as the domain error it means."""
    try:
        yield
    except psycopg.errors.UniqueViolation as exc:
        raise Conflict(_taken(exc)) from exc
    except psycopg.errors.ForeignKeyViolation as exc:  # raised with a message of ours
        raise InvalidValue(exc.diag.message_primary or "depends_on: no such job") from exc
    except psycopg.DataError as exc:  # e.g. a number beyond its column's range
        raise InvalidValue(f"invalid value: {exc}") from exc
    except psycopg.OperationalError as exc:  # the pool's timeouts are ones too
        raise Unavailable("database unavailable") from exc


def _taken(exc: psycopg.errors.UniqueViolation) -> str:
    """What a unique violation says is taken: a job name, named when PostgreSQL says it."""
    found = re.search(r"\(name\)=\((.*)\) already exists", exc.diag.message_detail or "", re.S)
    taken = f"job name '{found.group(1)}'" if found else "a job name"
    return f"{taken} already exists"


def _cursor(conn: psycopg.AsyncConnection[Any], rows: BaseRowFactory[R]) -> psycopg.AsyncCursor[R]:
    """Rows sent by PostgreSQL in binary: no text to format and parse again."""
    return conn.cursor(row_factory=rows, binary=True)


def _lost(rows: list[Row]) -> list[AttemptKey]:
    """The attempts `expire_leases` ended."""
    return [AttemptKey(r["job_id"], r["attempt"]) for r in rows]


# Every query of jobs selects JobRow's columns in its order (`api_jobs`, or the same
# list after RETURNING); tests/integration/test_store.py checks each one.
JOB_ROWS = args_row(JobRow)


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

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """A pooled connection; whatever the driver raises while it is held, or while
        waiting for it, comes out as a domain error."""
        with _domain_errors():
            async with self.pool.connection() as conn:
                yield conn

    async def _fetch(
        self,
        rows: BaseRowFactory[R],
        query: str,
        params: dict[str, Any] | None = None,
        prepare: bool | None = None,
    ) -> list[R]:
        async with self._connection() as conn:
            cur = _cursor(conn, rows)
            await cur.execute(q(query), params, prepare=prepare)
            return await cur.fetchall()

    async def _all(self, query: str, params: dict[str, Any] | None = None) -> list[Row]:
        return await self._fetch(dict_row, query, params)

    async def _one(self, query: str, params: dict[str, Any] | None = None) -> Row | None:
        rows = await self._all(query, params)
        return rows[0] if rows else None

    async def _job(self, query: str, params: dict[str, Any]) -> JobRow | None:
        rows = await self._fetch(JOB_ROWS, query, params)
        return rows[0] if rows else None

    # --- public API -------------------------------------------------------------

    async def create_job(self, job: NewJob, caller: Caller = LOCAL) -> JobRow:
        return (await self.create_jobs([job], caller))[0]

    async def create_jobs(self, jobs: list[NewJob], caller: Caller = LOCAL) -> list[JobRow]:
        """Inserts every job or none, with their one audit entry, in one statement; rows
        in the order given."""
        batch = json.dumps([_new_job_json(job) for job in jobs])
        params = {"batch": batch, "actor": caller.actor, "remote": caller.remote}
        rows = await self._fetch(JOB_ROWS, "create_jobs", params)
        return sorted(rows, key=lambda row: row.id)

    async def create_jobs_apart(
        self, jobs: list[NewJob], callers: list[Caller]
    ) -> list[JobRow | None]:
        """Inserts the jobs of different callers in one statement, each with its audit
        entry: rows in the order given, None for a job whose name is taken (by an
        earlier one, too)."""
        batch = json.dumps(
            [
                {**_new_job_json(job), **_caller_json(caller)}
                for job, caller in zip(jobs, callers, strict=True)
            ]
        )
        rows = await self._fetch(JOB_ROWS, "create_jobs_apart", {"batch": batch})
        by_name = {row.name: row for row in rows}
        return [by_name.pop(job.name, None) for job in jobs]

    async def get_job(self, job_id: int) -> JobRow | None:
        return await self._job("get_job", {"id": job_id})

    async def list_jobs(self, status: str | None, limit: int, before_id: int) -> list[JobRow]:
        below = min(before_id, _NO_CURSOR) if before_id else _NO_CURSOR
        params = {"status": status, "limit": limit, "before_id": below}
        if not status:
            return await self._fetch(JOB_ROWS, "list_jobs", params)
        # Never prepared: a generic plan cannot know how rare a status is, and may scan
        # the whole table by id instead of using (status, id).
        return await self._fetch(JOB_ROWS, "list_jobs_by_status", params, prepare=False)

    async def get_output(self, job_id: int, attempt: int = 0) -> Row | None:
        return await self._one("get_output", {"id": job_id, "attempt": attempt})

    async def get_config(self) -> tuple[int, bool]:
        """The concurrency limit and whether new starts are held, in one read."""
        async with self._connection() as conn:
            return await _config_on(conn)

    async def set_max_concurrent(self, value: int, caller: Caller = LOCAL) -> int:
        async with self._connection() as conn, conn.transaction():
            before, _ = await _config_on(conn)
            cur = await conn.execute(q("set_max_concurrent"), {"value": value})
            row = await cur.fetchone()
            assert row is not None
            after = int(row[0])
            await record_audit(
                conn,
                caller,
                "config.update",
                "config",
                {"max_concurrent_jobs": before},
                {"max_concurrent_jobs": after},
            )
        return after

    async def set_paused(self, paused: bool, caller: Caller = LOCAL) -> bool:
        async with self._connection() as conn, conn.transaction():
            _, before = await _config_on(conn)
            row = await (await conn.execute(q("set_paused"), {"paused": paused})).fetchone()
            assert row is not None
            after = bool(row[0])
            await record_audit(
                conn, caller, "config.update", "config", {"paused": before}, {"paused": after}
            )
        return after

    async def list_limits(self) -> list[KeyLimit]:
        return await self._fetch(args_row(KeyLimit), "list_limits")

    async def get_limit(self, key: str) -> KeyLimit | None:
        rows = await self._fetch(args_row(KeyLimit), "get_limit", {"key": key})
        return rows[0] if rows else None

    async def set_limit(
        self, key: str, max_concurrent_jobs: int | None, paused: bool, caller: Caller = LOCAL
    ) -> KeyLimit:
        params = {"key": key, "max_concurrent_jobs": max_concurrent_jobs, "paused": paused}
        after = {"max_concurrent_jobs": max_concurrent_jobs, "paused": paused}
        async with self._connection() as conn, conn.transaction():
            cur = _cursor(conn, dict_row)
            await cur.execute(q("limit_settings"), params)
            before = await cur.fetchone()
            await conn.execute(q("set_limit"), params)
            action = limit_action(before, after)
            await record_audit(conn, caller, action, f"limit/{key}", before, after)
            limits = _cursor(conn, args_row(KeyLimit))
            await limits.execute(q("get_limit"), params)
            row = await limits.fetchone()
        assert row is not None
        return row

    async def delete_limit(self, key: str, caller: Caller = LOCAL) -> bool:
        """Whether the key had a limit to remove."""
        async with self._connection() as conn, conn.transaction():
            cur = _cursor(conn, dict_row)
            await cur.execute(q("delete_limit"), {"key": key})
            row = await cur.fetchone()
            if row is None:
                return False
            before = {"max_concurrent_jobs": row["max_concurrent_jobs"], "paused": row["paused"]}
            await record_audit(conn, caller, "limit.delete", f"limit/{key}", before, None)
            return True

    async def list_audit(self, limit: int, before_id: int) -> list[AuditRow]:
        """A page of the audit log, newest first, below `before_id` (0: the newest)."""
        params = {"limit": limit, "before_id": before_id or 2**63 - 1}
        return await self._fetch(args_row(AuditRow), "list_audit", params)

    async def count_by_status(self) -> dict[str, int]:
        counts: dict[str, int] = dict.fromkeys(STATUSES, 0)
        for row in await self._all("count_by_status"):
            counts[row["status"]] = int(row["n"])
        return counts

    # --- dispatch -----------------------------------------------------------------

    async def claim(self, free_by_runner: dict[str, int]) -> ClaimResult:
        """One short transaction, serialised across schedulers, sent in one round trip:
        read the limit, count running, and claim up to min(limit - running, free runner
        capacity)."""
        slots = slot_order(free_by_runner, MAX_CONCURRENT_JOBS)
        params = {
            "slots": json.dumps(slots),
            "default_limit": DEFAULT_MAX_CONCURRENT_JOBS,
            "lease_seconds": self.lease_seconds,
            "default_timeout": self.default_timeout,
        }
        async with self._connection() as conn:
            cur = _cursor(conn, dict_row)
            await cur.execute(q("claim"), params)
            rows = await cur.fetchall()
            first = rows[0]
            result = ClaimResult(
                limit=first["max_concurrent"],
                running=first["running"],
                queued=first["queued"],
                next_due_at=first["next_due"],
            )
            for r in rows:
                if r["id"] is not None:
                    claimed = Claimed(
                        AttemptKey(r["id"], r["attempt"]), r["command"], r["timeout_seconds"]
                    )
                    result.by_runner.setdefault(r["runner_id"], []).append(claimed)
            return result

    # --- runner reports -------------------------------------------------------------

    async def apply_reports(self, reports: Iterable[AttemptReport]) -> StoredReports:
        """Writes one batch of runner reports at once: a retry must not append output
        twice. Most batches are finishes alone, one statement and one round trip."""
        started = [r for r in reports if r.started_at and not r.finished]
        output = [r for r in reports if r.output and not r.finished]
        finished = [r for r in reports if r.finished]
        statements = sum(1 for kind in (started, output, finished) if kind)
        refused: list[Refused] = []
        ended: list[Ended] = []
        async with self._connection() as conn, _atomic(conn, statements > 1):
            cur = _cursor(conn, dict_row)
            if started:
                await cur.execute(
                    q("record_started"),
                    {
                        "job_ids": [r.key.job_id for r in started],
                        "attempts": [r.key.attempt for r in started],
                        "started_ats": [r.started_at for r in started],
                        "runner_ids": [r.runner_id for r in started],
                    },
                )
                refused += map(_refused, await cur.fetchall())
            if output:
                await cur.execute(
                    q("append_output"),
                    {
                        "job_ids": [r.key.job_id for r in output],
                        "attempts": [r.key.attempt for r in output],
                        "outputs": ["".join(r.output) for r in output],
                        "truncated": [r.truncated for r in output],
                        "runner_ids": [r.runner_id for r in output],
                        "output_limit": self.output_limit,
                    },
                )
                refused += map(_refused, await cur.fetchall())
            if finished:
                await cur.execute(q("finish"), _finish_params(finished, self.output_limit))
                for r in await cur.fetchall():
                    if r["status"] == "refused":
                        refused.append(_refused(r))
                        continue
                    waited = r["waited"] if r["attempt"] == 1 else None
                    ended.append(
                        Ended(AttemptKey(r["job_id"], r["attempt"]), r["status"], waited, r["ran"])
                    )
        # A report of a start and output is refused by both statements: named once.
        return StoredReports([r.key for r in finished], ended, list(dict.fromkeys(refused)))

    async def cancel(self, job_id: int, caller: Caller = LOCAL) -> tuple[JobRow | None, bool]:
        """Ends a queued job, or asks for a running one to be stopped. Returns the job
        as it now is (None when it does not exist) and whether this call changed it."""
        return await self._change(
            job_id, Change(caller, "job.cancel"), "cancel_queued", "request_cancel"
        )

    async def retry(self, job_id: int, caller: Caller = LOCAL) -> tuple[JobRow | None, bool]:
        """Queues a finished job again. Returns the job as it now is (None when it does
        not exist) and whether this call queued it."""
        return await self._change(job_id, Change(caller, "job.retry"), "retry_job")

    async def _change(
        self, job_id: int, audit: "Change", *changes: str
    ) -> tuple[JobRow | None, bool]:
        """Tries each change of one job in turn until one applies, then reads the job
        as it now is, in one transaction; a change made is recorded in the audit log."""
        params = {"id": job_id}
        async with self._connection() as conn, conn.transaction():
            status = await (await conn.execute(q("job_status_for_change"), params)).fetchone()
            changed = False
            for change in changes:
                if status and await (await conn.execute(q(change), params)).fetchone():
                    changed = True
                    break
            cur = _cursor(conn, JOB_ROWS)
            await cur.execute(q("get_job"), params)
            row = await cur.fetchone()
            if changed and row is not None and status is not None:
                before, after = {"status": status[0]}, {"status": row.status}
                await record_audit(conn, audit.caller, audit.action, f"job/{job_id}", before, after)
            return row, changed

    async def list_attempts(self, job_id: int) -> list[Row]:
        return await self._all("list_attempts", {"id": job_id})

    async def renew_leases(
        self, runner_id: str, keys: list[AttemptKey]
    ) -> tuple[set[AttemptKey], set[AttemptKey]]:
        """Returns the attempts that are still current (and now renewed), and those of
        them that were asked to stop. An idle runner's heartbeat (no keys) goes to the
        database too: its answer says this scheduler can reach it, and the silence of one
        that cannot sends the runner to another."""
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
        return _lost(await self._all("expire_leases"))

    async def end_attempts(self, keys: list[AttemptKey], reason: str) -> list[AttemptKey]:
        """Ends these attempts, if still current and never renewed, as a lost lease ends
        them but with this reason; returns those it ended."""
        if not keys:
            return []
        params = {
            "job_ids": [k.job_id for k in keys],
            "attempts": [k.attempt for k in keys],
            "reason": reason,
            "lease_seconds": self.lease_seconds,
        }
        return _lost(await self._all("end_attempts", params))

    async def expire_unheld(self, runner_id: str, held: list[AttemptKey]) -> list[AttemptKey]:
        """Ends the runner's running attempts that it does not hold, as a lost lease ends
        them; returns every attempt that ended so."""
        params = {
            "runner_id": runner_id,
            "job_ids": [k.job_id for k in held],
            "attempts": [k.attempt for k in held],
        }
        async with self._connection() as conn, conn.transaction():
            await conn.execute(q("end_unheld_leases"), params)
            cur = _cursor(conn, dict_row)
            await cur.execute(q("expire_leases"))
            return _lost(await cur.fetchall())


async def _config_on(conn: psycopg.AsyncConnection[Any]) -> tuple[int, bool]:
    """The concurrency limit and whether new starts are held, as `conn` sees them."""
    row = await (await conn.execute(q("get_config"))).fetchone()
    assert row is not None
    limit, paused = row
    return (DEFAULT_MAX_CONCURRENT_JOBS if limit is None else int(limit)), bool(paused)


class Change(NamedTuple):
    """Who changes a job, and the action the audit log records."""

    caller: Caller
    action: str


def limit_action(before: Row | None, after: Row) -> str:
    """`limit.pause` or `limit.resume` when only the key's pause changed; else `limit.set`."""
    if before is not None and before["max_concurrent_jobs"] == after["max_concurrent_jobs"]:
        if before["paused"] != after["paused"]:
            return "limit.pause" if after["paused"] else "limit.resume"
    return "limit.set"


def _caller_json(caller: Caller) -> dict[str, str]:
    params = audit_params(caller, "", "")
    return {"actor": params["actor"], "remote": params["remote"]}


def _new_job_json(job: NewJob) -> dict[str, Any]:
    fields = job._asdict()
    fields["run_at"] = job.run_at.isoformat() if job.run_at else None
    fields["depends_on"] = list(job.depends_on) or None
    return fields


def _atomic(conn: Any, needed: bool) -> contextlib.AbstractAsyncContextManager[Any]:
    return conn.transaction() if needed else contextlib.nullcontext()


def _refused(row: dict[str, Any]) -> Refused:
    return Refused(AttemptKey(row["job_id"], row["attempt"]), row["runner_id"], row["holder"])


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
                "runner_id": report.runner_id,
            }
        )
    return {"batch": json.dumps(batch), "output_limit": output_limit}
