"""Measures search (`GET /api/jobs?q=`) over a big jobs table, against the goal of a p99
of at most 50 ms at 10^6 rows.

Starts its own embedded PostgreSQL in a temporary directory and the scheduler, one runner
and the gateway as processes (`LocalSystem`), fills the jobs table with N finished jobs
(10^6; quick 10^5) through the schema's triggers and indexes, with names and commands
of many kinds (1% of them `failed`), then `VACUUM ANALYZE`. Then, for each kind of
search (one job, a thousand, a twentieth of the table, every job, none, text too short
for the index, a status and text), sequential requests of a page of 100 after a few
warm-up ones: p50 and p99 of each, the rows of the first page, and EXPLAIN ANALYZE of the
query behind it. It reaches the system only through the REST API and the SQL schema.
Prints one table and writes the figures as JSON (`--out`)."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any, LiteralString

from jobsched_launcher import throwaway_system
from measure import (
    RESULTS,
    Db,
    Json,
    columns,
    machine,
    rest,
    scratch,
    summary,
    wait_runners,
    write_results,
)

PAGE = 100
WARMUP = 5
GOAL_P99_MS = 50.0
KINDS = 20  # kinds of job, one word each; one in KINDS jobs is of each kind

FILL: LiteralString = """
INSERT INTO jobs (name, command, status, attempt, runner_id, started_at, finished_at,
                  exit_code)
SELECT (ARRAY['backup', 'report', 'deploy', 'cleanup', 'index', 'sync', 'export', 'import',
              'compile', 'test', 'render', 'resize', 'notify', 'archive', 'scan', 'train',
              'score', 'migrate', 'audit', 'rotate'])[1 + i %% 20] || '-' || i,
       '/usr/local/bin/task --shard ' || (i %% 997) || ' --host node-' || (i %% 50),
       CASE WHEN i %% 100 = 0 THEN 'failed' ELSE 'completed' END,
       1, 'runner-1', now() - interval '1 day', now() - interval '1 day',
       CASE WHEN i %% 100 = 0 THEN 1 ELSE 0 END
FROM generate_series(1, %(rows)s::int) AS i
"""


def searches(rows: int) -> dict[str, dict[str, str]]:
    """Each kind of search: its query parameters."""
    one = rows // 2 + 7
    return {
        "one job (its name)": {"q": f"report-{one - one % KINDS + 1}"},
        "a thousand (--shard 123 )": {"q": "--shard 123 "},
        "a twentieth (deploy)": {"q": "DEPLOY"},
        "every job (local/bin)": {"q": "local/bin"},
        "none (no-such-text)": {"q": "no-such-text"},
        "short text (e-)": {"q": "e-"},
        "status failed + deploy": {"q": "deploy", "status": "failed"},
        "status failed + a thousand": {"q": "--shard 300 ", "status": "failed"},
    }


def fill(db: Db, rows: int) -> Json:
    started = time.monotonic()
    db.conn.execute(FILL, {"rows": rows})
    inserted = time.monotonic() - started
    digest = db.wait_notifications_read(600)
    mark = time.monotonic()
    db.conn.execute("VACUUM ANALYZE jobs, job_search")
    size = db.one("SELECT pg_total_relation_size('job_search')")
    return {
        "rows": rows,
        "insert_s": round(inserted, 1),
        "scheduler_digest_s": round(digest, 1),
        "vacuum_analyze_s": round(time.monotonic() - mark, 1),
        "search_index_mb": round(int(size) / 2**20, 1),
    }


def measure(client: Any, params: dict[str, str], count: int) -> Json:
    samples: list[float] = []
    first_rows = 0
    codes: dict[str, int] = {}
    for k in range(-WARMUP, count):
        started = time.perf_counter()
        reply = client.get("/api/jobs", params={**params, "limit": str(PAGE)})
        elapsed = (time.perf_counter() - started) * 1000
        if k < 0:
            continue
        samples.append(elapsed)
        codes[str(reply.status_code)] = codes.get(str(reply.status_code), 0) + 1
        if k == 0 and reply.status_code == 200:
            first_rows = len(reply.json())
    figures = summary(samples, codes=codes, rows_first_page=first_rows)
    figures.pop("samples_ms")
    return figures


def explain(db: Db, params: dict[str, str]) -> Json:
    """The plan of the query behind the search, as the scheduler sends it (bulk.sql)."""
    text = params["q"]
    pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    found: LiteralString = (
        "EXISTS (SELECT 1 FROM job_search s WHERE s.job_id = j.id "
        "AND s.trigrams @> jobsched_search_keys(%(text)s::text)) AND "
        if len(text) >= 3
        else ""
    )
    query: LiteralString = (
        "EXPLAIN (ANALYZE, BUFFERS) SELECT * FROM api_jobs j WHERE "
        + found
        + "(name ILIKE %(pattern)s OR command ILIKE %(pattern)s) "
        "AND (%(status)s::text IS NULL OR status = %(status)s::text) "
        "AND id < 2147483647 ORDER BY id DESC LIMIT 100"
    )
    values = {
        "text": text,
        "pattern": pattern,
        "status": params.get("status"),
    }
    lines = [str(row[0]) for row in db.conn.execute(query, values, prepare=False)]
    execution = next((line for line in lines if line.startswith("Execution Time")), "")
    node = next((line.strip() for line in lines if " Scan " in line), "")
    return {"execution_ms": float(execution.split(":")[1].split()[0]), "node": node, "plan": lines}


def run(rows: int, count: int, keep: bool) -> Json:
    result: Json = {"meta": {**machine(), "rows": rows, "requests": count, "page": PAGE}}
    with scratch("jobsched-search-", keep) as tmp:
        env = {"RUNNER_DRAIN_SECONDS": "5", "LOG_LEVEL": "WARNING"}
        with throwaway_system(tmp, runners=1, **env) as (system, server):
            db = Db(server.get_uri())
            try:
                with rest(system, timeout=30) as client:
                    wait_runners(client, 1)
                    print(f"filling {rows:,} jobs...", flush=True)
                    result["fill"] = fill(db, rows)
                    result["meta"]["load_average_before_measuring"] = list(os.getloadavg())
                    result["searches"] = {}
                    for name, params in searches(rows).items():
                        print(f"search: {name}...", flush=True)
                        figures = measure(client, params, count)
                        figures["explain"] = explain(db, params)
                        figures["params"] = params
                        figures["pass"] = figures["p99_ms"] <= GOAL_P99_MS
                        result["searches"][name] = figures
            finally:
                db.close()
    return result


def render(result: Json) -> str:
    meta = result["meta"]
    head = (
        f"search at {meta['rows']:,} rows {meta['date']}  {meta['cores']} cores  {meta['cpu']}  "
        f"load {meta['load_average_before_measuring'][0]:.2f}; {meta['requests']} requests "
        f"each, pages of {meta['page']}; goal p99 <= {GOAL_P99_MS:.0f} ms"
    )
    rows = [("search", "p50 / p99 ms", "rows", "SQL ms", "goal")]
    for name, f in result["searches"].items():
        rows.append(
            (
                name,
                f"{f['p50_ms']:.1f} / {f['p99_ms']:.1f}",
                str(f["rows_first_page"]),
                f"{f['explain']['execution_ms']:.1f}",
                "PASS" if f["pass"] else "FAIL",
            )
        )
    fill = result["fill"]
    tail = (
        f"fill: {fill['rows']:,} rows in {fill['insert_s']} s through the triggers and the "
        f"search table ({fill['search_index_mb']} MB with its index); "
        f"VACUUM ANALYZE {fill['vacuum_analyze_s']} s"
    )
    return "\n".join([head, "-" * min(len(head), 100), *columns(rows), "", tail])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100,000 rows, not 1,000,000")
    parser.add_argument("--rows", type=int, help="rows in the table (overrides --quick)")
    parser.add_argument("--requests", type=int, default=200, help="per kind of search")
    parser.add_argument("--out", type=Path, default=RESULTS / "search.json")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs)")
    args = parser.parse_args(argv)
    rows: int = args.rows or (100_000 if args.quick else 1_000_000)
    result = run(rows, args.requests, args.keep)
    print(render(result), flush=True)
    write_results(args.out.resolve(), result)


if __name__ == "__main__":
    main()
