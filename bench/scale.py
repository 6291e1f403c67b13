"""Measures how the real system's reads and dispatch hold up as the jobs table grows.

Starts three systems, each with its own embedded PostgreSQL in a temporary directory
and the scheduler, one runner and the gateway as processes (`LocalSystem`): one on an
empty table, one with 10,000 finished jobs (every request then returns a full page, so
its payload is the same as at scale) and one with N finished jobs (N = 1,000,000; quick
50,000; about 1% of them `failed`). The rows are filled with one
`INSERT ... SELECT FROM generate_series` through the real triggers, then
`VACUUM ANALYZE`. Then it measures the same requests on the three, which take turns in
rounds, so that load from elsewhere on a shared machine falls on all of them alike. For
each request kind: p50 and p99 over sequential requests, after a few warm-up ones; for
dispatch, create-to-claim of one job at a time (seen through the notifications the
scheduler listens to), and the claim statement itself (timed in a transaction that is
rolled back). At N it also runs EXPLAIN ANALYZE of each statement
behind those requests, and of the status filter under a generic plan (the one
PostgreSQL may switch to for a statement that psycopg has prepared, after five runs).

Prints one table and writes the figures as JSON (`--out`)."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, LiteralString

import httpx
import psycopg
from jobsched_launcher import LocalSystem, throwaway_system, wait_for
from jobsched_scheduler.events import CHANNEL as EVENTS_CHANNEL
from jobsched_scheduler.model import TERMINAL
from jobsched_scheduler.queries import migrations, q
from measure import percentile, write_results

ROOT = Path(__file__).resolve().parent.parent

Json = dict[str, Any]
# The scheduler's claim for one runner with one free slot.
CLAIM_PROBE = {
    "slots": '["bench-probe"]',
    "default_limit": 2,
    "lease_seconds": 10.0,
    "default_timeout": 0,
}
MIDDLE_ROWS = 10_000  # enough for a full page of every request, 100 of them failed
FAILED_EVERY = 100  # 1% of the filled jobs failed (`i % 100 = 0` in FILL_JOBS)
PAGE = 100
WARMUP = 5
ROUNDS = 10  # the tables take turns: each figure's samples come in this many rounds

# Finished jobs, one per i: ~1% failed, the rest completed, timestamps 2 s apart.
FILL_JOBS: LiteralString = """
INSERT INTO jobs (name, command, status, attempt, max_attempts, runner_id, last_run,
                  created_at, updated_at, started_at, finished_at, exit_code, reason)
SELECT 'scale-' || i, 'true',
       CASE WHEN i %% 100 = 0 THEN 'failed' ELSE 'completed' END,
       1, 1, 'runner-1', t, t, t + interval '20 ms', t + interval '2 ms',
       t + interval '20 ms',
       CASE WHEN i %% 100 = 0 THEN 1 ELSE 0 END,
       CASE WHEN i %% 100 = 0 THEN 'exit code 1' END
FROM generate_series(%(first)s::int, %(last)s::int) AS i,
     LATERAL (SELECT timestamptz '2025-01-01 00:00:00+00' + make_interval(secs => i * 2)) AS x(t)
"""

FILL_ATTEMPTS: LiteralString = """
INSERT INTO job_attempts (job_id, attempt, runner_id, claimed_at, started_at, finished_at,
                          exit_code, reason)
SELECT id, 1, runner_id, last_run, started_at, finished_at, exit_code, reason
FROM jobs WHERE id > %(after)s
"""


# --- figures ----------------------------------------------------------------------------


def summary(samples_ms: list[float], **extra: Any) -> Json:
    if not samples_ms:
        return {"n": 0, **extra}
    return {
        "n": len(samples_ms),
        "p50_ms": round(percentile(samples_ms, 50), 3),
        "p99_ms": round(percentile(samples_ms, 99), 3),
        "mean_ms": round(sum(samples_ms) / len(samples_ms), 3),
        "max_ms": round(max(samples_ms), 3),
        **extra,
        "samples_ms": [round(v, 2) for v in samples_ms],
    }


# --- the system under test ----------------------------------------------------------------


def running_system(tmp: Path) -> contextlib.AbstractContextManager[tuple[LocalSystem, Any]]:
    return throwaway_system(tmp, runners=1, RUNNER_DRAIN_SECONDS="5", LOG_LEVEL="WARNING")


def one(conn: psycopg.Connection[Any], query: LiteralString, params: Any = None) -> Any:
    row = conn.execute(query, params).fetchone()
    assert row is not None
    return row[0]


def max_id(conn: psycopg.Connection[Any]) -> int:
    return int(one(conn, "SELECT coalesce(max(id), 0) FROM jobs"))


def wait_notifications_consumed(conn: psycopg.Connection[Any], timeout: float) -> float:
    """Seconds until every listener (the scheduler) has read the notification queue."""
    started = time.monotonic()
    wait_for(
        lambda: float(one(conn, "SELECT pg_notification_queue_usage()")) == 0.0,
        timeout,
        "scheduler reading the insert notifications",
    )
    return time.monotonic() - started


def fill(conn: psycopg.Connection[Any], first: int, last: int) -> Json:
    """Inserts finished jobs `scale-first` .. `scale-last` (and one attempt each) through
    the real statement triggers, then VACUUM ANALYZE. Returns how long each step took."""
    before = max_id(conn)
    timings: Json = {"rows": last - first + 1}
    started = time.monotonic()
    conn.execute(FILL_JOBS, {"first": first, "last": last})
    timings["insert_jobs_s"] = round(time.monotonic() - started, 2)
    # The statement trigger sent one notification per 200 rows: the scheduler reads them all.
    timings["scheduler_digest_s"] = round(wait_notifications_consumed(conn, 300), 2)
    mark = time.monotonic()
    conn.execute(FILL_ATTEMPTS, {"after": before})
    timings["insert_attempts_s"] = round(time.monotonic() - mark, 2)
    mark = time.monotonic()
    conn.execute("VACUUM ANALYZE jobs")
    conn.execute("VACUUM ANALYZE job_attempts")
    conn.execute("VACUUM ANALYZE job_counts")
    timings["vacuum_analyze_s"] = round(time.monotonic() - mark, 2)
    timings["total_s"] = round(time.monotonic() - started, 2)
    timings["jobs_table_mb"] = round(
        int(one(conn, "SELECT pg_total_relation_size('jobs')")) / 2**20, 1
    )
    timings["attempts_table_mb"] = round(
        int(one(conn, "SELECT pg_total_relation_size('job_attempts')")) / 2**20, 1
    )
    return timings


# --- the three tables, side by side -------------------------------------------------------


@dataclass
class Table:
    """One of the systems measured: its own PostgreSQL, scheduler, runner and gateway,
    over a jobs table of its size."""

    name: str
    url: str
    client: httpx.Client
    conn: psycopg.Connection[Any]
    figures: Json = field(default_factory=lambda: {"reads": {}, "dispatch": {}, "claim_sql": {}})


def take_turns(tables: list[Table], count: int, run: Callable[[Table, range], None]) -> None:
    """Runs `run(table, ks)` for every table over ks = -WARMUP .. count - 1; `run` does
    not count the warm-up ones (k < 0). Those run first, then the rest in ROUNDS rounds
    in which the tables take turns, a different one first each round: load from elsewhere
    on a shared machine then falls on every table alike, and their ratios hold."""
    for table in tables:
        run(table, range(-WARMUP, 0))
    per_round = max(1, -(-count // ROUNDS))
    for turn, start in enumerate(range(0, count, per_round)):
        ks = range(start, min(start + per_round, count))
        first = turn % len(tables)
        for table in tables[first:] + tables[:first]:
            run(table, ks)


# --- reads ------------------------------------------------------------------------------


def read_paths(conn: psycopg.Connection[Any], count: int) -> dict[str, Callable[[int], str]]:
    """Each request kind's path for request k (warm-up ones: k < 0)."""
    fill_low = int(one(conn, "SELECT coalesce(min(id), 1) FROM jobs WHERE name LIKE 'scale-%'"))
    # Jobs that exist, drawn at random (ids have gaps: the claim probes are rolled back);
    # on the empty table, ids that do not.
    conn.execute("SELECT setseed(0.5)")
    drawn = conn.execute("SELECT id FROM jobs ORDER BY random() LIMIT %s", (count + WARMUP,))
    ids = [int(row[0]) for row in drawn] or list(range(1, count + WARMUP + 1))
    ids = (ids * (count + WARMUP))[: count + WARMUP]  # fewer jobs than requests: again
    deep = fill_low + PAGE + PAGE // 2  # a full page at the very bottom
    return {
        "list first page": lambda k: f"/api/jobs?limit={PAGE}",
        "list deep page": lambda k: f"/api/jobs?limit={PAGE}&before={deep}",
        "list status=failed": lambda k: f"/api/jobs?limit={PAGE}&status=failed",
        "list status=cancelled (none)": lambda k: f"/api/jobs?limit={PAGE}&status=cancelled",
        "stats": lambda k: "/api/stats",
        "get job by id": lambda k: f"/api/jobs/{ids[k]}",
    }


def measure_reads(tables: list[Table], count: int) -> None:
    """Sequential GETs of each kind, on each table."""
    paths = {table.name: read_paths(table.conn, count) for table in tables}
    for kind in paths[tables[0].name]:
        found = time_requests(tables, {name: p[kind] for name, p in paths.items()}, count)
        for table in tables:
            table.figures["reads"][kind] = found[table.name]


def time_requests(
    tables: list[Table], paths: dict[str, Callable[[int], str]], count: int
) -> dict[str, Json]:
    """Each table's figure of `count` GETs of its path: latencies (ms), status codes and
    the rows in the first reply."""
    samples: dict[str, list[float]] = {table.name: [] for table in tables}
    codes: dict[str, dict[str, int]] = {table.name: {} for table in tables}
    rows: dict[str, int | None] = dict.fromkeys(samples)

    def run(table: Table, ks: range) -> None:
        for k in ks:
            started = time.perf_counter()
            reply = table.client.get(paths[table.name](k))
            if k < 0:
                continue
            samples[table.name].append((time.perf_counter() - started) * 1000)
            code = str(reply.status_code)
            codes[table.name][code] = codes[table.name].get(code, 0) + 1
            if k == 0 and reply.status_code == 200:
                body = reply.json()
                rows[table.name] = len(body) if isinstance(body, list) else 1

    take_turns(tables, count, run)
    return {
        name: summary(samples[name], codes=codes[name], rows_first_reply=rows[name])
        for name in samples
    }


# --- dispatch ---------------------------------------------------------------------------


def measure_dispatch(tables: list[Table], count: int) -> None:
    """One job at a time: POST it, then wait for its notifications on the channel that
    the scheduler itself listens on. create = the POST's round trip; claim seen = 2xx
    to the notification that it left `queued` (zero when that came first); claim in db =
    created_at to last_run (database clock, insert transaction to claim transaction);
    done = 2xx to the notification of its terminal status."""
    found: dict[str, list[tuple[float, float, float, float]]] = {t.name: [] for t in tables}
    stuck = dict.fromkeys(found, 0)  # warm-up cycles too
    with contextlib.ExitStack() as stack:
        listeners = {}
        for table in tables:
            listener = stack.enter_context(psycopg.connect(table.url, autocommit=True))
            listener.execute(f"LISTEN {EVENTS_CHANNEL}")
            listeners[table.name] = listener

        def run(table: Table, ks: range) -> None:
            for k in ks:
                cycle = dispatch_cycle(table, listeners[table.name], f"cycle-{k + WARMUP}")
                if cycle is None:
                    stuck[table.name] += 1
                elif k >= 0:
                    found[table.name].append(cycle)

        take_turns(tables, count, run)
    for table in tables:
        create, seen, in_db, done = ([cycle[i] for cycle in found[table.name]] for i in range(4))
        table.figures["dispatch"] = {
            "create (POST round trip)": summary(create),
            "claim seen (2xx to leaves queued)": summary(seen, stuck=stuck[table.name]),
            "claim in db (created_at to last_run)": summary(in_db),
            "done (2xx to completed)": summary(done),
        }


def dispatch_cycle(
    table: Table, listener: psycopg.Connection[Any], name: str
) -> tuple[float, float, float, float] | None:
    """One job through: ms of its create, claim seen, claim in db and done; None when it
    did not finish within 10 s."""
    started = time.perf_counter()
    reply = table.client.post("/api/jobs/create", json={"name": name, "command": "true"})
    replied = time.perf_counter()
    reply.raise_for_status()
    job_id = int(reply.json()["id"])
    claimed, finished = wait_claimed_and_finished(listener, job_id, timeout=10)
    if claimed is None or finished is None:
        return None
    in_db = one(
        listener,
        "SELECT extract(epoch FROM last_run - created_at)::float8 FROM jobs WHERE id = %s",
        (job_id,),
    )
    return (
        (replied - started) * 1000,
        max(0.0, claimed - replied) * 1000,
        float(in_db) * 1000,
        max(0.0, finished - replied) * 1000,
    )


def wait_claimed_and_finished(
    listener: psycopg.Connection[Any], job_id: int, timeout: float
) -> tuple[float | None, float | None]:
    """perf_counter() when the job's first status after `queued` and its terminal status
    were notified (notifications already waiting are read at once)."""
    claimed: float | None = None
    for note in listener.notifies(timeout=timeout):
        now = time.perf_counter()
        events = json.loads(note.payload)
        for event_id, status, _attempt in events if isinstance(events, list) else []:
            if event_id != job_id or status == "queued":
                continue
            claimed = claimed or now
            if status in TERMINAL:
                return claimed, now
    return claimed, None


def measure_claim_sql(tables: list[Table], count: int) -> None:
    """The scheduler's claim statement (lock, limit, counts and claim: `jobsched_claim`) on
    one queued job inserted in the same transaction, which is then rolled back: nothing
    is seen, and the commit's WAL flush is not in the figure."""
    samples: dict[str, list[float]] = {table.name: [] for table in tables}

    def run(table: Table, ks: range) -> None:
        for k in ks:
            with table.conn.transaction(force_rollback=True):
                table.conn.execute(
                    "INSERT INTO jobs (name, command) VALUES (%s, 'true')", (f"claim-probe-{k}",)
                )
                started = time.perf_counter()
                rows = table.conn.execute(q("claim"), CLAIM_PROBE).fetchall()
                ended = time.perf_counter()
                assert len(rows) == 1 and rows[0][3] is not None, rows
            if k >= 0:
                samples[table.name].append((ended - started) * 1000)

    take_turns(tables, count, run)
    for table in tables:
        table.figures["claim_sql"] = {"claim statement SQL": summary(samples[table.name])}


def claim_query() -> bytes:
    """The query inside `jobsched_claim`, as its latest migration defines it, with the
    function's arguments as parameters: EXPLAIN of the call shows no plan inside it."""
    text = [sql for _, _, sql in migrations() if "FUNCTION jobsched_claim(" in sql][-1]
    body = text.split("RETURN QUERY", 1)[1].split(";\nEND", 1)[0]
    for name, cast in (
        ("slots", "jsonb"),
        ("default_limit", "integer"),
        ("lease_seconds", "float8"),
        ("default_timeout", "integer"),
    ):
        body = re.sub(rf"\b{name}\b", f"%({name})s::{cast}", body)
    return body.encode()


# --- plans ------------------------------------------------------------------------------


def explain_all(conn: psycopg.Connection[Any]) -> Json:
    """EXPLAIN (ANALYZE, BUFFERS) of the statements behind each request, at this size."""
    deep = int(one(conn, "SELECT min(id) FROM jobs WHERE name LIKE 'scale-%'")) + PAGE + PAGE // 2
    some_id = int(one(conn, "SELECT max(id) / 2 FROM jobs"))
    cursor = 2**31 - 1
    plans: Json = {}
    statements: list[tuple[str, bytes, dict[str, Any]]] = [
        ("list first page", q("list_jobs"), {"before_id": cursor, "limit": PAGE}),
        ("list deep page", q("list_jobs"), {"before_id": deep, "limit": PAGE}),
        (
            "list status=failed",
            q("list_jobs_by_status"),
            {"status": "failed", "before_id": cursor, "limit": PAGE},
        ),
        (
            "list status=cancelled (none)",
            q("list_jobs_by_status"),
            {"status": "cancelled", "before_id": cursor, "limit": PAGE},
        ),
        ("stats (count_by_status)", q("count_by_status"), {}),
        ("get job by id", q("get_job"), {"id": some_id}),
        ("next_retry", q("next_retry"), {}),
    ]
    for name, query, params in statements:
        plans[name] = explain(conn, query, params)
    # The scheduler's statements are prepared by psycopg after 5 runs, and PostgreSQL then
    # may switch to a generic plan, made without knowing the status asked for.
    by_status = (
        q("list_jobs_by_status")
        .replace(b"%(status)s", b"$1")
        .replace(b"%(before_id)s", b"$2")
        .replace(b"%(limit)s", b"$3")
    )
    conn.execute(b"PREPARE bench_by_status(varchar, integer, integer) AS " + by_status)
    conn.execute("SET plan_cache_mode = force_generic_plan")
    try:
        for status in ("failed", "cancelled"):
            plans[f"list status={status}, generic plan"] = explain(
                conn, f"EXECUTE bench_by_status('{status}', {cursor}, {PAGE})".encode(), {}
            )
    finally:
        conn.execute("RESET plan_cache_mode")
        conn.execute("DEALLOCATE bench_by_status")
    # One queued job to claim, inserted in the same transaction, rolled back with it.
    plans["claim"] = explain(
        conn,
        claim_query(),
        CLAIM_PROBE,
        setup="INSERT INTO jobs (name, command) VALUES ('claim-probe-explain', 'true')",
    )
    return plans


def explain(
    conn: psycopg.Connection[Any],
    query: bytes,
    params: dict[str, Any],
    runs: int = 3,
    setup: LiteralString | None = None,
) -> Json:
    """The plan of the last of `runs` runs, and each run's execution time; each run in a
    transaction that is rolled back, after `setup`."""
    times: list[float] = []
    lines: list[str] = []
    for _ in range(runs):
        with conn.transaction(force_rollback=True):
            if setup:
                conn.execute(setup)
            rows = conn.execute(b"EXPLAIN (ANALYZE, BUFFERS) " + query, params or None).fetchall()
        lines = [str(r[0]) for r in rows]
        execution = next((line for line in lines if line.startswith("Execution Time")), "")
        if execution:
            times.append(float(execution.split(":")[1].split()[0]))
    return {"execution_ms": min(times) if times else None, "runs_ms": times, "plan": lines}


# --- the whole run ------------------------------------------------------------------------


def background(conn: psycopg.Connection[Any]) -> dict[str, int | None]:
    """Counters of what PostgreSQL did by itself: checkpoints and autovacuum runs."""
    found: dict[str, int | None] = {}
    for name, query in (
        ("checkpoints", "SELECT num_timed + num_requested FROM pg_stat_checkpointer"),
        (
            "autovacuum_runs",
            "SELECT coalesce(sum(autovacuum_count + autoanalyze_count), 0) FROM "
            "pg_stat_user_tables WHERE relname IN ('jobs', 'job_attempts')",
        ),
    ):
        try:
            found[name] = int(one(conn, query))
        except psycopg.Error:  # pg_stat_checkpointer is new in PostgreSQL 17
            found[name] = None
    return found


def delta(before: int | None, after: int | None) -> int | None:
    return None if before is None or after is None else after - before


def measure_scale(
    quick: bool, rows: int | None = None, keep: bool = False, requests: int | None = None
) -> Json:
    """An empty table, 10,000 finished jobs and N (1,000,000; quick 50,000), each in a
    system of its own, measured side by side. See module doc."""
    total = rows or (50_000 if quick else 1_000_000)
    cycles = requests or (100 if quick else 200)
    requests = requests or 200
    tmp = Path(tempfile.mkdtemp(prefix="jobsched-scale-"))
    result: Json = {
        "meta": {
            "quick": quick,
            "rows": total,
            "requests_per_kind": requests,
            "dispatch_cycles": cycles,
            "warmup": WARMUP,
            "rounds": ROUNDS,
            "page": PAGE,
            "failed_fraction": 1 / FAILED_EVERY,
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "runners": 1,
            "load_average_at_start": os.getloadavg(),
        },
        "tables": {},
        "fills": {},
    }
    started = time.monotonic()
    try:
        with contextlib.ExitStack() as stack:
            sizes = {"empty": 0, "10k": min(MIDDLE_ROWS, total), "N": total}
            tables = [start_table(stack, tmp / name, name) for name in sizes]
            result["meta"]["postgres_version"] = str(one(tables[0].conn, "SHOW server_version"))
            for table in tables:
                if sizes[table.name]:
                    result["fills"][table.name] = fill(table.conn, 1, sizes[table.name])
            before = {table.name: background(table.conn) for table in tables}
            measuring = time.monotonic()
            result["meta"]["load_average_before_measuring"] = os.getloadavg()
            measure_reads(tables, requests)
            measure_dispatch(tables, cycles)
            measure_claim_sql(tables, requests)
            result["meta"]["measuring_s"] = round(time.monotonic() - measuring, 2)
            result["meta"]["load_average_after_measuring"] = os.getloadavg()
            for table in tables:
                after = background(table.conn)
                result["tables"][table.name] = {
                    "rows": sizes[table.name],
                    "max_id": max_id(table.conn),
                    **table.figures,
                    "during": {k: delta(before[table.name][k], after[k]) for k in after},
                }
            big = tables[-1]
            result["explain_at_N"] = explain_all(big.conn)
            result["scheduler_stats"] = big.client.get("/api/stats").json()
    finally:
        result["meta"]["seconds_total"] = round(time.monotonic() - started, 1)
        result["meta"]["load_average_at_end"] = os.getloadavg()
        if keep:
            result["meta"]["kept"] = str(tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return result


def start_table(stack: contextlib.ExitStack[Any], tmp: Path, name: str) -> Table:
    """A system of its own on an embedded PostgreSQL in `tmp`, its runner connected."""
    system, server = stack.enter_context(running_system(tmp))
    client = stack.enter_context(httpx.Client(base_url=system.gateway_url, timeout=30))
    conn = stack.enter_context(psycopg.connect(server.get_uri(), autocommit=True))
    wait_for(lambda: client.get("/api/stats").json().get("runners_connected", 0) >= 1, 30, "runner")
    return Table(name, server.get_uri(), client, conn)


# --- report -----------------------------------------------------------------------------


def figures(table: Json) -> dict[str, Json]:
    """Every measured figure of a table, by name."""
    return {**table["reads"], **table["dispatch"], **table["claim_sql"]}


def ratio(big: Any, small: Any) -> str:
    if not isinstance(big, int | float) or not isinstance(small, int | float) or small <= 0:
        return "-"
    return f"{big / small:.2f}x"


def render(result: Json) -> str:
    meta, tables = result["meta"], result["tables"]
    label = f"{meta['rows']:,}"
    out = [
        f"Scale: p50 / p99 in ms, {meta['requests_per_kind']} sequential requests per kind "
        f"({meta['dispatch_cycles']} dispatch cycles) after {meta['warmup']} warm-up ones, "
        f"on three systems taking turns in {meta['rounds']} rounds",
        "",
        f"{'figure':40} {'empty':>17} {'10k rows':>17} {label + ' rows':>19} "
        f"{'p50 N/empty':>11} {'p50 N/10k':>10} {'p99 N/10k':>10}",
    ]
    empty, middle, big = (figures(tables[k]) for k in ("empty", "10k", "N"))

    def cell(f: Json) -> str:
        if not f.get("n"):
            return "-"
        return f"{f['p50_ms']:7.2f} / {f['p99_ms']:7.2f}"

    for name, f in big.items():
        e, m = empty.get(name, {}), middle.get(name, {})
        out.append(
            f"{name:40} {cell(e):>17} {cell(m):>17} {cell(f):>19} "
            f"{ratio(f.get('p50_ms'), e.get('p50_ms')):>11} "
            f"{ratio(f.get('p50_ms'), m.get('p50_ms')):>10} "
            f"{ratio(f.get('p99_ms'), m.get('p99_ms')):>10}"
        )
    out.append("")
    out.append(
        f"measured in {meta['measuring_s']} s; load average "
        f"{meta['load_average_before_measuring'][0]:.2f} -> "
        f"{meta['load_average_after_measuring'][0]:.2f}"
    )
    for key, table in tables.items():
        out.append(
            f"table {key}: {table['rows']:,} rows; while measuring, its PostgreSQL ran "
            f"{table['during']['checkpoints']} checkpoints and "
            f"{table['during']['autovacuum_runs']} autovacuum/autoanalyze runs on jobs tables"
        )
    for key, f in result["fills"].items():
        out.append(
            f"fill to {key}: {f['rows']:,} rows in {f['total_s']} s (jobs INSERT "
            f"{f['insert_jobs_s']} s, attempts {f['insert_attempts_s']} s, VACUUM ANALYZE "
            f"{f['vacuum_analyze_s']} s, scheduler reading the notifications "
            f"{f['scheduler_digest_s']} s more); jobs {f['jobs_table_mb']} MB, "
            f"job_attempts {f['attempts_table_mb']} MB"
        )
    out.append("")
    out.append(f"EXPLAIN ANALYZE at {label} rows (execution time, ms):")
    for name, plan in result.get("explain_at_N", {}).items():
        lines = [line.strip().removeprefix("->  ") for line in plan["plan"]]
        node = next((line for line in lines if " Scan " in line), lines[0] if lines else "")
        removed = next((line for line in lines if line.startswith("Rows Removed")), "")
        node = node.split("  (cost=")[0] + (f"; {removed}" if removed else "")
        out.append(f"  {name:36} {plan['execution_ms']!s:>8}  {node[:80]}")
    out.append("")
    out.append(f"whole run: {result['meta']['seconds_total']} s")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="50,000 rows instead of 1,000,000")
    parser.add_argument("--rows", type=int, help="rows in the big table (overrides --quick)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "scale.json")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs)")
    parser.add_argument(
        "--requests", type=int, help="per request kind and dispatch cycles (200; quick 200, 100)"
    )
    args = parser.parse_args(argv)
    if args.rows is not None and args.rows < MIDDLE_ROWS:
        parser.error(f"--rows must be at least {MIDDLE_ROWS}")
    result = measure_scale(args.quick, rows=args.rows, keep=args.keep, requests=args.requests)
    print(render(result), flush=True)
    write_results(args.out, result)


if __name__ == "__main__":
    main()
