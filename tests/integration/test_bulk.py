"""Search, deletes, bulk cancel and retry, the retention sweep and batched creates, against
a real PostgreSQL: the SQL of bulk.sql and migration 013, and the counters through them."""

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest
from jobsched_scheduler.audit import Caller
from jobsched_scheduler.bulk import PgBulk
from jobsched_scheduler.create_batch import CreateBatcher
from jobsched_scheduler.errors import Conflict, InvalidValue, NotFound, WrongState
from jobsched_scheduler.model import JobFilter, NewJob
from jobsched_scheduler.queries import q
from jobsched_scheduler.retention import Retention, sweep_once
from jobsched_scheduler.store import PgStore, new_pool

pytestmark = pytest.mark.timeout(60)


async def _stores(
    url: str, batch: int = 500, window: int = 5000
) -> AsyncIterator[tuple[PgStore, PgBulk]]:
    pool = new_pool(url, max_size=8)
    await pool.open(wait=True)
    try:
        yield PgStore(pool, lease_seconds=10, output_limit=1000), PgBulk(pool, batch, window)
    finally:
        await pool.close()


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def sql(url: str, query: str, params: Any = None) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(query.encode(), params)
        return cur.fetchall() if cur.description else []


def truth(url: str) -> dict[str, int]:
    return {s: n for s, n in sql(url, "SELECT status, count(*) FROM jobs GROUP BY 1")}


async def counts(store: PgStore) -> dict[str, int]:
    return {k: v for k, v in (await store.count_by_status()).items() if v}


@pytest.mark.parametrize("window", [5000, 1])  # the newest jobs row by row; the index
def test_search_matches_names_and_commands_any_case_keyset_paged(
    database_url: str, window: int
) -> None:
    async def scenario() -> None:
        async for store, bulk in _stores(database_url, window=window):
            await store.create_jobs(
                [
                    NewJob("Nightly-Backup", "pg_dump main", 1, None),
                    NewJob("report", "python make_REPORT.py --backup", 1, None),
                    NewJob("cleanup", "rm -rf /tmp/x", 1, None),
                    NewJob("100%_done", "echo a_b", 1, None),
                ]
            )
            found = await bulk.search(None, "BACKUP", 10, 0)
            assert [r.name for r in found] == ["report", "Nightly-Backup"]
            first = await bulk.search(None, "backup", 1, 0)
            second = await bulk.search(None, "backup", 1, first[0].id)
            assert [r.name for r in first + second] == ["report", "Nightly-Backup"]
            assert await bulk.search("failed", "backup", 10, 0) == []
            assert [r.name for r in await bulk.search("queued", "dump", 10, 0)] == [
                "Nightly-Backup"
            ]
            # Short text, and LIKE's wildcards, taken literally.
            assert [r.name for r in await bulk.search(None, "rm", 10, 0)] == ["cleanup"]
            assert [r.name for r in await bulk.search(None, "%_d", 10, 0)] == ["100%_done"]
            assert [r.name for r in await bulk.search(None, "a_b", 10, 0)] == ["100%_done"]
            assert await bulk.search(None, "a%b", 10, 0) == []
            # Across name and command is no match: each is searched on its own.
            assert await bulk.search(None, "cleanup rm", 10, 0) == []

    run(scenario())


def test_search_reads_the_trigram_index_and_claims_do_not_write_it(database_url: str) -> None:
    sql(
        database_url,
        "INSERT INTO jobs (name, command, status) SELECT 'job-' || i, 'echo ' || i, "
        "'completed' FROM generate_series(1, 20000) i",
    )
    sql(database_url, "ANALYZE jobs, job_search")
    params = {
        "text": "job-12345",
        "pattern": "%job-12345%",
        "status": None,
        "before_id": 2**31 - 1,
        "limit": 100,
    }
    with psycopg.connect(database_url, autocommit=True) as conn:
        # At this size a scan may cost as little; bench/search.py shows the plans at 10^6.
        conn.execute("SET enable_seqscan = off")
        plan = conn.execute(b"EXPLAIN " + q("search_jobs"), params, prepare=False).fetchall()
    assert "job_search_trigrams_idx" in "\n".join(str(row[0]) for row in plan), plan
    # A job renamed by hand is found by its new name; its status changes leave the index be.
    sql(database_url, "UPDATE jobs SET name = 'renamed-by-hand' WHERE name = 'job-7'")
    sql(database_url, "UPDATE jobs SET status = 'failed' WHERE name = 'job-8'")
    found = sql(
        database_url,
        "SELECT count(*) FROM job_search WHERE trigrams @> jobsched_trigrams('RENAMED-by')",
    )
    assert found == [(1,)]
    assert sql(database_url, "SELECT count(*) FROM job_search") == [(20000,)]


def test_delete_takes_finished_jobs_with_attempts_and_counters(database_url: str) -> None:
    async def scenario() -> None:
        async for store, bulk in _stores(database_url):
            await store.set_max_concurrent(10)
            done = await store.create_job(NewJob("done", "true", 1, None))
            waiting = await store.create_job(NewJob("waiting", "true", 1, None))
            claimed = await store.claim({"r": 1})
            key = claimed.by_runner["r"][0].key
            assert key.job_id == done.id
            sql(
                database_url,
                "UPDATE jobs SET status = 'completed', finished_at = now() WHERE id = %s",
                (done.id,),
            )
            with pytest.raises(WrongState, match="is queued: only a finished job"):
                await bulk.delete(waiting.id)
            with pytest.raises(NotFound):
                await bulk.delete(999)
            with psycopg.connect(database_url, autocommit=True) as listener:
                listener.execute("LISTEN jobsched_events")
                await bulk.delete(done.id)
                notes = list(listener.notifies(timeout=5, stop_after=1))
            assert notes and notes[0].payload == f'[[{done.id}, "deleted", 1]]'
            assert await store.get_job(done.id) is None
            assert sql(
                database_url,
                "SELECT actor, action, target, before FROM audit WHERE action = 'job.delete'",
            ) == [
                (
                    "local",
                    "job.delete",
                    f"job/{done.id}",
                    {"id": done.id, "name": "done", "status": "completed"},
                )
            ]
            assert sql(database_url, "SELECT count(*) FROM job_attempts") == [(0,)]
            assert await counts(store) == truth(database_url) == {"queued": 1}

    run(scenario())


def test_bulk_cancel_by_ids_passes_over_finished_ones(database_url: str) -> None:
    async def scenario() -> None:
        async for store, bulk in _stores(database_url):
            await store.set_max_concurrent(1)
            jobs = [await store.create_job(NewJob(f"j{i}", "true", 1, None)) for i in range(4)]
            await store.claim({"r": 1})  # j0 runs
            sql(database_url, "UPDATE jobs SET status = 'failed' WHERE id = %s", (jobs[3].id,))
            changed = await bulk.cancel([j.id for j in jobs] + [999], None)
            assert sorted((c.key.job_id, c.status) for c in changed) == [
                (jobs[0].id, "running"),
                (jobs[1].id, "cancelled"),
                (jobs[2].id, "cancelled"),
            ]
            assert next(c for c in changed if c.status == "running").runner_id == "r"
            # Asked once: a second time changes nothing.
            assert await bulk.cancel([jobs[0].id], None) == []
            assert await counts(store) == truth(database_url)

    run(scenario())


def test_bulk_actions_by_filter_go_in_batches(database_url: str) -> None:
    async def scenario() -> None:
        async for store, bulk in _stores(database_url, batch=7):
            await store.create_jobs([NewJob(f"alpha-{i}", "true", 1, None) for i in range(30)])
            await store.create_jobs([NewJob(f"beta-{i}", "true", 1, None) for i in range(5)])
            changed = await bulk.cancel(None, JobFilter(None, "ALPHA"))
            assert len(changed) == 30
            assert truth(database_url) == {"cancelled": 30, "queued": 5}
            assert await bulk.retry(None, JobFilter("cancelled", None)) == 30
            assert await bulk.retry(None, JobFilter(None, None)) == 0  # none finished
            operator = Caller("ops", "192.0.2.1")
            assert len(await bulk.cancel(None, JobFilter("queued", "beta"), operator)) == 5
            assert sql(
                database_url,
                "SELECT actor, action, before, after, remote FROM audit ORDER BY id DESC LIMIT 1",
            ) == [
                (
                    "ops",
                    "jobs.cancel",
                    {"filter": {"status": "queued", "q": "beta"}},
                    {"changed": 5},
                    "192.0.2.1",
                )
            ]
            assert await counts(store) == truth(database_url) == {"queued": 30, "cancelled": 5}

    run(scenario())


def test_bulk_retry_passes_over_jobs_whose_dependency_is_broken_or_gone(
    database_url: str,
) -> None:
    async def scenario() -> None:
        async for store, bulk in _stores(database_url):
            first = await store.create_job(NewJob("first", "true", 1, None))
            after = await store.create_job(NewJob("after", "true", 1, None, depends_on=(first.id,)))
            lone = await store.create_job(NewJob("lone", "true", 1, None))
            sql(database_url, "UPDATE jobs SET status = 'completed' WHERE id = %s", (first.id,))
            sql(database_url, "UPDATE jobs SET status = 'failed'")
            # first failed: after waits on a failed job and is passed over.
            assert await bulk.retry([after.id, lone.id], None) == 1
            sql(database_url, "UPDATE jobs SET status = 'completed' WHERE id = %s", (first.id,))
            await bulk.delete(first.id)
            assert await bulk.retry([after.id], None) == 0  # its dependency is gone
            sql(database_url, "DELETE FROM jobs WHERE id = %s", (lone.id,))
            assert await counts(store) == truth(database_url)

    run(scenario())


def test_retention_deletes_only_what_expired_in_batches(database_url: str) -> None:
    sql(
        database_url,
        "INSERT INTO jobs (name, command, status, finished_at) "
        "SELECT s || '-' || age || '-' || i, 'true', s, now() - make_interval(days => age) "
        "FROM unnest(ARRAY['completed', 'failed', 'cancelled']) s, "
        "unnest(ARRAY[1, 10]) age, generate_series(1, 12) i",
    )
    sql(database_url, "INSERT INTO jobs (name, command) VALUES ('queued', 'true')")
    sql(
        database_url,
        "INSERT INTO job_attempts (job_id, attempt, runner_id, output) "
        "SELECT id, 1, 'r', 'out' FROM jobs WHERE status <> 'queued'",
    )

    async def scenario() -> None:
        async for store, bulk in _stores(database_url):
            retention = Retention({"completed": 5, "failed": 0.5})
            assert await sweep_once(bulk, retention, batch=5) == {"completed": 12, "failed": 24}
            assert await counts(store) == truth(database_url)
            assert truth(database_url) == {"completed": 12, "cancelled": 24, "queued": 1}
            orphans = "SELECT count(*) FROM job_attempts WHERE job_id NOT IN (SELECT id FROM jobs)"
            assert sql(database_url, orphans) == [(0,)]
            assert sql(database_url, "SELECT count(*) FROM job_attempts") == [(36,)]
            runs = (
                "SELECT actor, action, after->'deleted' FROM audit WHERE action = 'retention.run'"
            )
            assert sql(database_url, runs) == [
                ("retention", "retention.run", {"completed": 12, "failed": 24})
            ]
            assert await sweep_once(bulk, retention, batch=5) == {"completed": 0, "failed": 0}
            assert len(sql(database_url, runs)) == 1  # a run that deleted nothing

    run(scenario())


def test_audit_retention_deletes_old_entries_past_a_young_one_among_them(
    database_url: str,
) -> None:
    # Old entries, then one written late by a transaction that began early (so young, and
    # with an id among old ones), more old ones, and a few young ones at the end.
    entry = (
        "INSERT INTO audit (at, actor, action, target) "
        "SELECT now() - %s::interval, 'a', 'x', t FROM generate_series(1, %s) t"
    )
    for age, count in (("10 days", 10), ("1 hour", 1), ("10 days", 12), ("1 hour", 4)):
        sql(database_url, entry, (age, count))

    async def scenario() -> None:
        async for _, bulk in _stores(database_url):
            retention = Retention({"audit": 2})
            assert await sweep_once(bulk, retention, batch=5) == {"audit": 22}
            ages = "SELECT count(*) FROM audit WHERE action = 'x' AND at < now() - interval '1 day'"
            assert sql(database_url, ages) == [(0,)]
            assert sql(database_url, "SELECT count(*) FROM audit WHERE action = 'x'") == [(5,)]
            runs = "SELECT after->'deleted' FROM audit WHERE action = 'retention.run'"
            assert sql(database_url, runs) == [({"audit": 22},)]
            assert await sweep_once(bulk, retention, batch=5) == {"audit": 0}
            assert len(sql(database_url, runs)) == 1

    run(scenario())


def test_batched_creates_answer_each_caller(database_url: str) -> None:
    async def scenario() -> None:
        async for store, _ in _stores(database_url):
            await store.create_job(NewJob("taken", "true", 1, None))
            batcher = CreateBatcher(store.create_jobs_apart, flights=1)
            names = ["a", "taken", "b", "a", "c"]
            jobs = [NewJob(n, "true", 1, None) for n in names]
            jobs.append(NewJob("d", "true", 1, None, depends_on=(999,)))
            callers = [Caller(f"token-{i}", f"10.0.0.{i}") for i in range(len(jobs))]
            answers = await asyncio.gather(
                *(batcher.create(job, who) for job, who in zip(jobs, callers, strict=True)),
                return_exceptions=True,
            )
            a, taken, b, again, c, missing = answers
            assert isinstance(taken, Conflict) and "'taken' already exists" in str(taken)
            assert isinstance(again, Conflict) and "'a' already exists" in str(again)
            assert isinstance(missing, InvalidValue) and "job 999" in str(missing)
            created = [a, b, c]
            assert [getattr(r, "name", r) for r in created] == ["a", "b", "c"]
            assert truth(database_url) == {"queued": 4}
            # One statement for a, b and c, however the fallback went for the rest.
            ids = [getattr(r, "id", 0) for r in created]
            assert ids == sorted(ids)
            # Each job created has its own audit entry, under its own caller.
            entries = sql(
                database_url,
                "SELECT actor, remote, target, after->>'name' FROM audit "
                "WHERE action = 'job.create' AND actor LIKE 'token-%%' ORDER BY id",
            )
            assert entries == [
                ("token-0", "10.0.0.0", f"job/{ids[0]}", "a"),
                ("token-2", "10.0.0.2", f"job/{ids[1]}", "b"),
                ("token-4", "10.0.0.4", f"job/{ids[2]}", "c"),
            ]

    run(scenario())
