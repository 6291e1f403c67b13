"""The PostgreSQL adapter against a real server: claims, fencing, leases, schema."""

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from jobsched_common.timestamps import to_timestamp
from jobsched_launcher import free_port
from jobsched_scheduler.errors import Conflict, InvalidValue, Unavailable
from jobsched_scheduler.messages import job_message
from jobsched_scheduler.migrations import migrate
from jobsched_scheduler.model import AttemptKey, AttemptReport, Finish, JobRow, NewJob
from jobsched_scheduler.queries import q
from jobsched_scheduler.store import PgStore, new_pool
from psycopg import sql

pytestmark = pytest.mark.timeout(60)


async def _store(url: str, lease: float = 10.0) -> AsyncIterator[PgStore]:
    pool = new_pool(url, max_size=8)
    await pool.open(wait=True)
    try:
        yield PgStore(pool, lease_seconds=lease, output_limit=1000)
    finally:
        await pool.close()


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def finish_report(
    key: AttemptKey, code: int = 0, output: str = "", reason: str = ""
) -> AttemptReport:
    now = datetime.now(UTC)
    return AttemptReport(
        key, output=[output], finished=Finish(code, reason, started_at=now, finished_at=now)
    )


def test_claims_never_exceed_the_limit_under_concurrent_schedulers(database_url: str) -> None:
    async def scenario() -> None:
        async for store in _store(database_url):
            await store.set_max_concurrent(3)
            for i in range(20):
                await store.create_job(NewJob(f"job-{i}", "true", 1, None))
            # Eight "schedulers" claim at once, each with plenty of runner capacity.
            results = await asyncio.gather(*(store.claim({f"r{i}": 10}) for i in range(8)))
            assert sum(r.claimed for r in results) == 3
            counts = await store.count_by_status()
            assert counts["running"] == 3 and counts["queued"] == 17

    run(scenario())


def test_claims_spread_slots_evenly_over_runners(database_url: str) -> None:
    async def spread(store: PgStore, free: dict[str, int]) -> dict[str, int]:
        result = await store.claim(free)
        return {runner: len(jobs) for runner, jobs in result.by_runner.items()}

    async def scenario() -> None:
        async for store in _store(database_url):
            await store.set_max_concurrent(100)
            for i in range(40):
                await store.create_job(NewJob(f"job-{i}", "true", 1, None))
            assert await spread(store, {"a": 2, "b": 2}) == {"a": 2, "b": 2}
            assert await spread(store, {"a": 1, "b": 8, "c": 0}) == {"a": 1, "b": 8}
            # Three slots left under the limit: each goes to the runner with most free.
            await store.set_max_concurrent(16)
            assert await spread(store, {"a": 1, "b": 8}) == {"b": 3}
            # One job at a time, between equals, does not always land on the same runner.
            chosen: set[str] = set()
            for limit in range(17, 37):
                await store.set_max_concurrent(limit)
                chosen |= (await spread(store, {"a": 8, "b": 8})).keys()
            assert chosen == {"a", "b"}

    run(scenario())


def test_lowering_the_limit_starts_nothing_until_under_it(database_url: str) -> None:
    async def scenario() -> None:
        async for store in _store(database_url):
            await store.set_max_concurrent(4)
            for i in range(6):
                await store.create_job(NewJob(f"job-{i}", "true", 1, None))
            first = await store.claim({"r": 10})
            assert first.claimed == 4
            await store.set_max_concurrent(2)
            keys = [c.key for c in first.by_runner["r"]]
            await store.apply_reports([finish_report(keys[0])])
            blocked = await store.claim({"r": 10})
            assert blocked.claimed == 0 and blocked.running == 3
            await store.apply_reports([finish_report(k) for k in keys[1:3]])
            resumed = await store.claim({"r": 10})
            assert resumed.claimed == 1  # running 1 of limit 2

    run(scenario())


def test_a_stale_attempt_changes_nothing(database_url: str) -> None:
    async def scenario() -> None:
        async for store in _store(database_url, lease=0.05):
            job = await store.create_job(NewJob("fenced", "true", 1, None))
            claimed = await store.claim({"r": 1})
            key = claimed.by_runner["r"][0].key
            assert key == AttemptKey(job.id, 1)
            await asyncio.sleep(0.1)
            assert await store.expire_leases() == [key]
            lost = await store.get_job(job.id)
            assert lost is not None and lost.status == "failed"
            assert lost.reason == "runner lost"
            # The runner comes back late with a result: it is acknowledged, not applied.
            stored = await store.apply_reports([finish_report(key, output="late")])
            assert stored.acknowledged == [key] and stored.ended == []
            after = await store.get_job(job.id)
            assert after is not None and after.status == "failed" and after.exit_code is None
            assert await store.renew_leases("r", [key]) == (set(), set())
            output = await store.get_output(job.id)
            assert output is not None and output["output"] == ""

    run(scenario())


def test_finish_stores_exit_code_reason_and_capped_output(database_url: str) -> None:
    async def scenario() -> None:
        async for store in _store(database_url):
            ok = await store.create_job(NewJob("ok", "true", 1, None))
            bad = await store.create_job(NewJob("bad", "false", 1, None))
            claimed = await store.claim({"r": 5})
            keys = {c.key.job_id: c.key for c in claimed.by_runner["r"]}
            await store.apply_reports(
                [
                    AttemptReport(keys[ok.id], output=["x" * 600]),
                    AttemptReport(keys[bad.id], started_at=datetime.now(UTC)),
                ]
            )
            await store.apply_reports(
                [finish_report(keys[ok.id], 0, "y" * 600), finish_report(keys[bad.id], 3)]
            )
            done = await store.get_job(ok.id)
            failed = await store.get_job(bad.id)
            assert done is not None and done.status == "completed" and done.exit_code == 0
            assert failed is not None and failed.status == "failed"
            assert failed.reason == "exit code 3" and failed.exit_code == 3
            output = await store.get_output(ok.id)
            assert output is not None
            assert output["output"] == "x" * 600 + "y" * 400 and output["output_truncated"]

    run(scenario())


def test_job_times_reach_the_api_exact_or_unset(database_url: str) -> None:
    """Times on both sides of PostgreSQL's epoch (2000-01-01), and of 1970's, reach the
    API's Timestamps exact. PostgreSQL's ±infinity and years past 9999, set by hand,
    show as no time (unset) rather than failing every page that holds the job."""
    exact = {
        "last_run": datetime(2031, 5, 6, 7, 8, 9, 123456, tzinfo=UTC),
        "started_at": datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        "finished_at": datetime(1969, 7, 20, 20, 17, 40, 1, tzinfo=UTC),
        "updated_at": datetime(2000, 1, 1, tzinfo=UTC),
    }
    beyond = {"last_run": "infinity", "started_at": "-infinity", "finished_at": "10000-01-01Z"}

    async def scenario() -> None:
        async for store in _store(database_url):
            timed = await store.create_job(NewJob("timed", "true", 1, None))
            far = await store.create_job(NewJob("far", "true", 1, None))
            with psycopg.connect(database_url, autocommit=True) as conn:
                for job_id, times in ((timed.id, exact), (far.id, beyond)):
                    for field, value in times.items():
                        conn.execute(
                            sql.SQL("UPDATE jobs SET {} = %s WHERE id = %s").format(
                                sql.Identifier(field)
                            ),
                            (value, job_id),
                        )
                stored = conn.execute("SELECT created_at FROM jobs WHERE id = %s", (timed.id,))
                (created_at,) = stored.fetchone() or (None,)
            far_job, timed_job = (job_message(row) for row in await store.list_jobs(None, 10, 0))
            for field, value in {**exact, "created_at": created_at}.items():
                assert getattr(timed_job, field) == to_timestamp(value), field
            assert not far_job.HasField("last_run") and not far_job.HasField("started_at")
            assert not far_job.HasField("finished_at")
            assert far_job.HasField("created_at") and far_job.HasField("updated_at")
            # Every other read of such a job shows it too.
            by_id = await store.get_job(far.id)
            cancelled, changed = await store.cancel(far.id)
            retried, _ = await store.retry(far.id)
            assert changed and cancelled is not None and retried is not None
            for row in (by_id, cancelled, retried):
                assert row is not None and row.last_run is None, row

    run(scenario())


def test_every_query_of_jobs_selects_jobrows_columns_in_order(database_url: str) -> None:
    """Job rows are made from their columns by position (`JOB_ROWS`)."""
    job_queries: dict[str, dict[str, object]] = {
        "create_jobs": {
            "batch": '[{"name": "b", "command": "true", "max_attempts": 1}]',
            "actor": "local",
            "remote": "",
        },
        "get_job": {"id": 1},
        "list_jobs": {"before_id": 10, "limit": 10},
        "list_jobs_by_status": {"status": "queued", "before_id": 10, "limit": 10},
    }
    with psycopg.connect(database_url, autocommit=True) as conn:
        for name, params in job_queries.items():
            cur = conn.execute(q(name), params)
            assert tuple(c.name for c in cur.description or ()) == JobRow._fields, name


def test_duplicate_names_are_refused(database_url: str) -> None:
    async def scenario() -> None:
        async for store in _store(database_url):
            await store.create_job(NewJob("same", "true", 1, None))
            with pytest.raises(Conflict, match="job name 'same' already exists"):
                await store.create_job(NewJob("same", "true", 1, None))

    run(scenario())


def test_database_errors_come_out_as_domain_errors(database_url: str) -> None:
    async def scenario() -> None:
        async for store in _store(database_url):
            with pytest.raises(InvalidValue, match="out of range"):
                await store.create_job(NewJob("huge", "true", 2**40, None))
            await store.create_job(NewJob("taken", "true", 1, None))
            batch = [NewJob("fresh", "true", 1, None), NewJob("taken", "true", 1, None)]
            with pytest.raises(Conflict, match=r"^job name 'taken' already exists$"):
                await store.create_jobs(batch)
            assert await store.get_job(3) is None  # nothing of the batch was inserted
            await store.pool.close()
            with pytest.raises(Unavailable):
                await store.get_job(1)

    run(scenario())


def test_a_database_out_of_reach_is_unavailable() -> None:
    async def scenario() -> None:
        pool = new_pool(f"postgresql://127.0.0.1:{free_port()}/none", max_size=1, timeout=0.5)
        await pool.open()
        try:
            with pytest.raises(Unavailable, match="database unavailable"):
                await PgStore(pool, lease_seconds=10, output_limit=1000).count_by_status()
        finally:
            await pool.close()

    run(scenario())


def test_keyset_pages_cover_every_job_once(database_url: str) -> None:
    async def scenario() -> None:
        async for store in _store(database_url):
            for i in range(7):
                await store.create_job(NewJob(f"job-{i}", "true", 1, None))
            seen: list[int] = []
            before = 0
            while page := await store.list_jobs(None, 3, before):
                seen += [r.id for r in page]
                before = page[-1].id
            assert seen == sorted(seen, reverse=True) and len(set(seen)) == 7

    run(scenario())


def test_a_row_inserted_by_hand_is_announced(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as listener:
        listener.execute("LISTEN jobsched_events")
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute("INSERT INTO jobs (name, command) VALUES ('by-hand', 'true')")
        notes = list(listener.notifies(timeout=5, stop_after=1))
    assert notes and '"queued"' in notes[0].payload


def test_migrations_are_idempotent_and_adopt_the_original_schema(pg_server: str) -> None:
    from tests.postgres import admin, with_database

    name = "jobsched_adopt"
    with admin(pg_server) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")
    url = with_database(pg_server, name)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            # The original daemon's schema, with a job it left queued.
            conn.execute(
                """
                CREATE TABLE jobs (id SERIAL PRIMARY KEY, name VARCHAR(255) NOT NULL UNIQUE,
                    command TEXT NOT NULL, status VARCHAR(50) DEFAULT 'queued',
                    last_run TIMESTAMP, created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
                    updated_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP);
                CREATE TABLE scheduler_config (id SERIAL PRIMARY KEY,
                    key VARCHAR(255) NOT NULL UNIQUE, value TEXT NOT NULL,
                    updated_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP);
                INSERT INTO scheduler_config (key, value) VALUES ('max_concurrent_jobs', '5');
                INSERT INTO jobs (name, command) VALUES ('old', 'echo old');
                """
            )

        async def twice() -> tuple[list[str], list[str]]:
            async with await psycopg.AsyncConnection.connect(url) as conn:
                return await migrate(conn), await migrate(conn)

        first, second = run(twice())
        assert (
            first
            == [
                "001_initial.sql",
                "002_cancel_and_retry.sql",
                "003_job_counts.sql",
                "004_claim_function.sql",
                "005_zoned_times.sql",
                "006_api_jobs.sql",
                "007_time_and_order.sql",
                "008_schedules.sql",
                "009_concurrency_keys.sql",
                "010_series.sql",
                "012_audit.sql",
                "013_search_and_retention.sql",
            ]
            and second == []
        )

        async def check() -> None:
            async for store in _store(url):
                assert await store.get_config() == (5, False)
                claimed = await store.claim({"r": 1})
                assert claimed.claimed == 1
                # The original's times have no zone: they still convert, as UTC.
                (old,) = await store.list_jobs(None, 10, 0)
                job = job_message(old)
                assert job.name == "old" and job.created_at.seconds > 0

        run(check())
    finally:
        with admin(pg_server) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def test_counters_match_the_rows_through_every_change(database_url: str) -> None:
    async def scenario() -> None:
        async for store in _store(database_url):
            await store.set_max_concurrent(3)
            for i in range(6):
                await store.create_job(NewJob(f"job-{i}", "true", 1, None))
            claimed = await store.claim({"r": 10})
            keys = [c.key for c in claimed.by_runner["r"]]
            await store.apply_reports([finish_report(keys[0]), finish_report(keys[1], 2)])
            await store.cancel(6)
            with psycopg.connect(database_url, autocommit=True) as conn:
                conn.execute("INSERT INTO jobs (name, command) VALUES ('hand', 'true')")
                conn.execute("UPDATE jobs SET status = 'completed' WHERE name = 'job-3'")
                conn.execute("DELETE FROM jobs WHERE name = 'job-4'")
                rows = conn.execute("SELECT status, count(*) FROM jobs GROUP BY status")
                truth = {status: n for status, n in rows}
            counts = {k: v for k, v in (await store.count_by_status()).items() if v}
            assert counts == truth
            with psycopg.connect(database_url, autocommit=True) as conn:
                conn.execute("TRUNCATE jobs CASCADE")
            assert sum((await store.count_by_status()).values()) == 0

    run(scenario())
