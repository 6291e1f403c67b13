"""ExplainJob's latency at 10^6 queued jobs over 1,000 keys (half with a limit, a
quarter of them full), and the query plans behind it.

    .venv/bin/python -m tests.bench.explain_figures [jobs] [samples]"""

import asyncio
import statistics
import sys
import time

import psycopg
from jobsched_scheduler.explain import PgExplainer, explanation
from jobsched_scheduler.migrations import migrate
from jobsched_scheduler.queries import q
from jobsched_scheduler.store import new_pool

from tests.postgres import admin, postgres_server, with_database

KEYS = 1000


def fill(url: str, jobs: int) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO jobs (name, command, concurrency_key, priority) "
            "SELECT 'j' || i, 'true', 'k' || (i %% %s), (i %% 3) - 1 "
            "FROM generate_series(1, %s) i",
            (KEYS, jobs),
        )
        conn.execute(
            "INSERT INTO concurrency_limits (key, max_concurrent_jobs) "
            "SELECT 'k' || k, 2 FROM generate_series(0, %s - 1, 2) k",
            (KEYS,),
        )
        # A quarter of the keys full: two running jobs each.
        conn.execute(
            "UPDATE jobs SET status = 'running' WHERE id IN ("
            " SELECT min(id) FROM jobs WHERE concurrency_key IN "
            "  (SELECT 'k' || k FROM generate_series(0, %s - 1, 4) k)"
            " GROUP BY concurrency_key UNION ALL"
            " SELECT max(id) FROM jobs WHERE concurrency_key IN "
            "  (SELECT 'k' || k FROM generate_series(0, %s - 1, 4) k)"
            " GROUP BY concurrency_key)",
            (KEYS, KEYS),
        )
        conn.execute("UPDATE scheduler_config SET value = '1000' WHERE key = 'max_concurrent_jobs'")
        conn.execute("VACUUM ANALYZE jobs")


async def measure(url: str, samples: int) -> None:
    pool = new_pool(url, max_size=2)
    await pool.open(wait=True)
    explainer = PgExplainer(pool)
    async with pool.connection() as conn:
        ids = [
            r[0]
            for r in await (
                await conn.execute(
                    "SELECT id FROM jobs WHERE status = 'queued' ORDER BY random() LIMIT %s",
                    (samples,),
                )
            ).fetchall()
        ]
        for name, params in (
            ("explain_job", {"id": ids[0], "default_limit": 2}),
            ("explain_position", {"id": ids[0], "priority": 1, "fair_seq": 10**9, "cap": 10000}),
        ):
            rows = await (
                await conn.execute(b"EXPLAIN (ANALYZE, BUFFERS) " + q(name), params)
            ).fetchall()
            print(f"--- {name}\n" + "\n".join(r[0] for r in rows))
    took = []
    for job_id in [*ids[:20], *ids]:  # the first 20 warm the cache and the prepared plans
        start = time.perf_counter()
        job, position = await explainer.facts(job_id)
        explanation(job, position, [4])
        took.append((time.perf_counter() - start) * 1000)
    took = sorted(took[20:])
    p = statistics.quantiles(took, n=100)
    print(
        f"ExplainJob facts over {len(took)} queued jobs: p50 {p[49]:.2f} ms, "
        f"p99 {p[98]:.2f} ms, max {took[-1]:.2f} ms"
    )
    await pool.close()


def main() -> None:
    jobs = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    samples = int(sys.argv[2]) if len(sys.argv) > 2 else 500
    with postgres_server() as server:
        name = "jobsched_explain_bench"
        with admin(server) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name}")
            conn.execute(f"CREATE DATABASE {name}")
        url = with_database(server, name)
        asyncio.run(_migrate(url))
        started = time.perf_counter()
        fill(url, jobs)
        print(f"filled {jobs} jobs in {time.perf_counter() - started:.0f} s")
        asyncio.run(measure(url, samples))


async def _migrate(url: str) -> None:
    async with await psycopg.AsyncConnection.connect(url) as conn:
        await migrate(conn)


if __name__ == "__main__":
    main()
