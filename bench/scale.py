"""Measures whether the real system's reads hold up as the jobs table grows: the same
requests at 10^4 and at N rows (10^6; quick 5 x 10^4), against the goal that each read
at N takes at most 1.2 times its time at 10^4 rows (p50s) and its p99 at most 20 ms.

Starts two systems, each with its own embedded PostgreSQL in a temporary directory and
the scheduler, one runner and the gateway as processes (`LocalSystem`), and fills one
with 10,000 finished jobs and the other with N (1% of them `failed`; every list request
then returns a full page at both sizes). The rows are filled with one
`INSERT ... SELECT FROM generate_series` through the schema's triggers, then
`VACUUM ANALYZE`. Then the same requests run on both, which take turns in rounds, so
that load from elsewhere on a shared machine falls on both alike. For each request kind:
p50 and p99 over sequential requests, after a few warm-up ones; for dispatch,
create-to-claim of one job at a time (seen on the `jobsched_events` channel that the
scheduler listens to), and the claim function itself (timed in a transaction that is
rolled back). At N it also runs EXPLAIN ANALYZE of the query shape behind each read
and of the claim function's query.

It reaches the system only through the REST API and the SQL schema. Prints one table
and writes the figures as JSON (`--out`)."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, LiteralString

import httpx
import psycopg
from jobsched_common.limits import TERMINAL_STATUSES
from jobsched_launcher import throwaway_system
from measure import RESULTS, Db, Json, machine, rest, scratch, summary, wait_runners, write_results

SMALL = 10_000
PAGE = 100
WARMUP = 5
ROUNDS = 10  # the systems take turns: each figure's samples come in this many rounds
GOAL_RATIO = 1.2  # a read's p50 at N over its p50 at SMALL rows
GOAL_P99_MS = 20.0

# Finished jobs, one per i: 1% failed, the rest completed, timestamps 2 s apart.
FILL_JOBS: LiteralString = """
INSERT INTO jobs (name, command, status, attempt, max_attempts, runner_id, last_run,
                  created_at, updated_at, started_at, finished_at, exit_code, reason)
SELECT 'scale-' || i, 'true',
       CASE WHEN i %% 100 = 0 THEN 'failed' ELSE 'completed' END,
       1, 1, 'runner-1', t, t, t + interval '20 ms', t + interval '2 ms',
       t + interval '20 ms',
       CASE WHEN i %% 100 = 0 THEN 1 ELSE 0 END,
       CASE WHEN i %% 100 = 0 THEN 'exit code 1' END
FROM generate_series(1, %(rows)s::int) AS i,
     LATERAL (SELECT timestamptz '2025-01-01 00:00:00+00' + make_interval(secs => i * 2)) AS x(t)
"""

FILL_ATTEMPTS: LiteralString = """
INSERT INTO job_attempts (job_id, attempt, runner_id, claimed_at, started_at, finished_at,
                          exit_code, reason)
SELECT id, 1, runner_id, last_run, started_at, finished_at, exit_code, reason FROM jobs
"""

# The claim is the schema's interface (migration 004's `jobsched_claim`), called as the
# scheduler calls it: here for one runner with one free slot.
CLAIM: LiteralString = """
SELECT id FROM jobsched_claim(%(slots)s::jsonb, %(default_limit)s::integer,
                             %(lease_seconds)s::float8, %(default_timeout)s::integer)
"""
CLAIM_PROBE = {
    "slots": '["bench-probe"]',
    "default_limit": 2,
    "lease_seconds": 10.0,
    "default_timeout": 0,
}
PROBE_JOB: LiteralString = "INSERT INTO jobs (name, command) VALUES ('claim-probe', 'true')"


@dataclass
class System:
    """One of the systems measured: its own PostgreSQL, scheduler, runner and gateway,
    over a jobs table of its size."""

    name: str
    rows: int
    client: httpx.Client
    db: Db
    figures: Json = field(default_factory=lambda: {"reads": {}, "dispatch": {}, "claim_sql": {}})


def fill(db: Db, rows: int) -> Json:
    """Inserts `rows` finished jobs (and one attempt each) through the schema's triggers,
    then VACUUM ANALYZE. Returns how long each step took."""
    timings: Json = {"rows": rows}
    started = time.monotonic()
    db.conn.execute(FILL_JOBS, {"rows": rows})
    timings["insert_jobs_s"] = round(time.monotonic() - started, 2)
    # The statement trigger sent one notification per 200 rows: the scheduler reads them all.
    timings["scheduler_digest_s"] = round(db.wait_notifications_read(300), 2)
    mark = time.monotonic()
    db.conn.execute(FILL_ATTEMPTS)
    timings["insert_attempts_s"] = round(time.monotonic() - mark, 2)
    mark = time.monotonic()
    db.conn.execute("VACUUM ANALYZE jobs, job_attempts, job_counts")
    timings["vacuum_analyze_s"] = round(time.monotonic() - mark, 2)
    timings["total_s"] = round(time.monotonic() - started, 2)
    for table in ("jobs", "job_attempts"):
        size = db.one("SELECT pg_total_relation_size(%s::regclass)", (table,))
        timings[f"{table.removeprefix('job_')}_table_mb"] = round(int(size) / 2**20, 1)
    return timings


def take_turns(systems: list[System], count: int, run: Callable[[System, range], None]) -> None:
    """Runs `run(system, ks)` for every system over ks = -WARMUP .. count - 1; `run` does
    not count the warm-up ones (k < 0). Those run first, then the rest in ROUNDS rounds
    in which the systems take turns, a different one first each round: load from
    elsewhere on a shared machine then falls on every system alike, and their ratios hold."""
    for system in systems:
        run(system, range(-WARMUP, 0))
    per_round = max(1, -(-count // ROUNDS))
    for turn, start in enumerate(range(0, count, per_round)):
        ks = range(start, min(start + per_round, count))
        first = turn % len(systems)
        for system in systems[first:] + systems[:first]:
            run(system, ks)


# --- reads ------------------------------------------------------------------------------


def read_paths(db: Db, count: int) -> dict[str, Callable[[int], str]]:
    """Each read's path for request k (warm-up ones: k < 0)."""
    db.conn.execute("SELECT setseed(0.5)")
    drawn = db.conn.execute("SELECT id FROM jobs ORDER BY random() LIMIT %s", (count + WARMUP,))
    ids = [int(row[0]) for row in drawn]  # jobs that exist: ids have gaps
    ids = (ids * (count + WARMUP))[: count + WARMUP]  # more requests than jobs: again
    deep = PAGE + PAGE // 2  # a full page at the very bottom: the fill's ids start at 1
    return {
        "list first page": lambda k: f"/api/jobs?limit={PAGE}",
        "list deep page": lambda k: f"/api/jobs?limit={PAGE}&before={deep}",
        "list status=failed": lambda k: f"/api/jobs?limit={PAGE}&status=failed",
        "list status=cancelled (none)": lambda k: f"/api/jobs?limit={PAGE}&status=cancelled",
        "stats": lambda k: "/api/stats",
        "get job by id": lambda k: f"/api/jobs/{ids[k]}",
    }


def measure_reads(systems: list[System], count: int) -> None:
    """Sequential GETs of each kind, on each system."""
    paths = {system.name: read_paths(system.db, count) for system in systems}
    for kind in paths[systems[0].name]:
        found = time_requests(systems, {name: p[kind] for name, p in paths.items()}, count)
        for system in systems:
            system.figures["reads"][kind] = found[system.name]


def time_requests(
    systems: list[System], paths: dict[str, Callable[[int], str]], count: int
) -> dict[str, Json]:
    """Each system's figure of `count` GETs of its path: latencies (ms), status codes and
    the rows in the first reply."""
    samples: dict[str, list[float]] = {system.name: [] for system in systems}
    codes: dict[str, dict[str, int]] = {system.name: {} for system in systems}
    rows: dict[str, int | None] = dict.fromkeys(samples)

    def run(system: System, ks: range) -> None:
        for k in ks:
            started = time.perf_counter()
            reply = system.client.get(paths[system.name](k))
            if k < 0:
                continue
            samples[system.name].append((time.perf_counter() - started) * 1000)
            code = str(reply.status_code)
            codes[system.name][code] = codes[system.name].get(code, 0) + 1
            if k == 0 and reply.status_code == 200:
                body = reply.json()
                rows[system.name] = len(body) if isinstance(body, list) else 1

    take_turns(systems, count, run)
    return {
        name: summary(samples[name], codes=codes[name], rows_first_reply=rows[name])
        for name in samples
    }


# --- dispatch ---------------------------------------------------------------------------


def measure_dispatch(systems: list[System], count: int) -> None:
    """One job at a time: POST it, then wait for its notifications on `jobsched_events`,
    the channel the schema's triggers fill and the scheduler listens on. create = the
    POST's round trip; claim seen = 2xx to the notification that it left `queued` (zero
    when that came first); claim in db = created_at to last_run (database clock, insert
    transaction to claim transaction); done = 2xx to the notification of its end."""
    found: dict[str, list[tuple[float, float, float, float]]] = {s.name: [] for s in systems}
    stuck = dict.fromkeys(found, 0)  # warm-up cycles too
    with contextlib.ExitStack() as stack:
        listeners: dict[str, Db] = {}
        for system in systems:
            listeners[system.name] = listener = Db(system.db.url)
            stack.callback(listener.close)
            listener.conn.execute("LISTEN jobsched_events")

        def run(system: System, ks: range) -> None:
            for k in ks:
                cycle = dispatch_cycle(system, listeners[system.name], f"cycle-{k + WARMUP}")
                if cycle is None:
                    stuck[system.name] += 1
                elif k >= 0:
                    found[system.name].append(cycle)

        take_turns(systems, count, run)
    for system in systems:
        create, seen, in_db, done = ([cycle[i] for cycle in found[system.name]] for i in range(4))
        system.figures["dispatch"] = {
            "create (POST round trip)": summary(create),
            "claim seen (2xx to leaves queued)": summary(seen, stuck=stuck[system.name]),
            "claim in db (created_at to last_run)": summary(in_db),
            "done (2xx to completed)": summary(done),
        }


def dispatch_cycle(
    system: System, listener: Db, name: str
) -> tuple[float, float, float, float] | None:
    """One job through: ms of its create, claim seen, claim in db and done; None when it
    did not finish within 10 s."""
    started = time.perf_counter()
    reply = system.client.post("/api/jobs/create", json={"name": name, "command": "true"})
    replied = time.perf_counter()
    reply.raise_for_status()
    job_id = int(reply.json()["id"])
    claimed, finished = wait_claimed_and_finished(listener.conn, job_id, timeout=10)
    if claimed is None or finished is None:
        return None
    in_db = listener.one(
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
    were notified (a notification is a JSON array of [id, status, attempt] triples)."""
    claimed: float | None = None
    for note in listener.notifies(timeout=timeout):
        now = time.perf_counter()
        events = json.loads(note.payload)
        for event_id, status, _attempt in events if isinstance(events, list) else []:
            if event_id != job_id or status == "queued":
                continue
            claimed = claimed or now
            if status in TERMINAL_STATUSES:
                return claimed, now
    return claimed, None


def measure_claim_sql(systems: list[System], count: int) -> None:
    """The claim function on one queued job inserted in the same transaction, which is
    then rolled back: nothing is seen, and the commit's WAL flush is not in the figure."""
    samples: dict[str, list[float]] = {system.name: [] for system in systems}

    def run(system: System, ks: range) -> None:
        for k in ks:
            with system.db.conn.transaction(force_rollback=True):
                system.db.conn.execute(PROBE_JOB)
                started = time.perf_counter()
                rows = system.db.conn.execute(CLAIM, CLAIM_PROBE).fetchall()
                ended = time.perf_counter()
                assert len(rows) == 1 and rows[0][0] is not None, rows
            if k >= 0:
                samples[system.name].append((ended - started) * 1000)

    take_turns(systems, count, run)
    for system in systems:
        system.figures["claim_sql"] = {"claim statement SQL": summary(samples[system.name])}


# --- plans ------------------------------------------------------------------------------


def explain_all(db: Db) -> Json:
    """EXPLAIN (ANALYZE, BUFFERS) at this size of the query shape each read needs on the
    schema (which index serves it), and of the query inside the claim function."""
    cursor, some_id = 2**31 - 1, db.max_id() // 2
    columns = "SELECT * FROM jobs WHERE "
    statements: dict[str, tuple[LiteralString, dict[str, Any]]] = {
        "list first page": (
            columns + "id < %(before)s ORDER BY id DESC LIMIT %(page)s",
            {"before": cursor, "page": PAGE},
        ),
        "list deep page": (
            columns + "id < %(before)s ORDER BY id DESC LIMIT %(page)s",
            {"before": PAGE + PAGE // 2, "page": PAGE},
        ),
        "list status=failed": (
            columns + "status = 'failed' AND id < %(before)s ORDER BY id DESC LIMIT %(page)s",
            {"before": cursor, "page": PAGE},
        ),
        "list status=cancelled (none)": (
            columns + "status = 'cancelled' AND id < %(before)s ORDER BY id DESC LIMIT %(page)s",
            {"before": cursor, "page": PAGE},
        ),
        "stats (counters)": ("SELECT status, sum(n) FROM job_counts GROUP BY status", {}),
        "get job by id": (columns + "id = %(id)s", {"id": some_id}),
    }
    plans = {name: explain(db, sql.encode(), params) for name, (sql, params) in statements.items()}
    plans["claim"] = explain(db, claim_query(db), CLAIM_PROBE, setup=PROBE_JOB)
    return plans


def claim_query(db: Db) -> bytes:
    """The query inside `jobsched_claim`, as the database holds it, with the function's
    arguments as parameters: EXPLAIN of the call shows no plan inside it."""
    body, arguments = db.conn.execute(
        "SELECT prosrc, pg_get_function_identity_arguments(oid) FROM pg_proc "
        "WHERE proname = 'jobsched_claim'"
    ).fetchone() or ("", "")
    query = str(body).split("RETURN QUERY", 1)[1].split(";\nEND", 1)[0]
    for argument in str(arguments).split(", "):
        name, kind = argument.split(" ", 1)
        query = re.sub(rf"\b{name}\b", f"%({name})s::{kind}", query)
    # The keys the function found full or paused before its query: none here.
    query = re.sub(r"\bblocked\b", "'{}'::text[]", query)
    return query.encode()


def explain(db: Db, query: bytes, params: Json, runs: int = 3, setup: LiteralString = "") -> Json:
    """The plan of the last of `runs` runs and each run's execution time; each run in a
    transaction that is rolled back, after `setup`."""
    times: list[float] = []
    lines: list[str] = []
    for _ in range(runs):
        with db.conn.transaction(force_rollback=True):
            if setup:
                db.conn.execute(setup)
            rows = db.conn.execute(b"EXPLAIN (ANALYZE, BUFFERS) " + query, params or None)
            lines = [str(row[0]) for row in rows]
        execution = next((line for line in lines if line.startswith("Execution Time")), "")
        if execution:
            times.append(float(execution.split(":")[1].split()[0]))
    return {"execution_ms": min(times) if times else None, "runs_ms": times, "plan": lines}


# --- the whole run ----------------------------------------------------------------------


def background(db: Db) -> dict[str, int | None]:
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
            found[name] = int(db.one(query))
        except psycopg.Error:  # pg_stat_checkpointer is new in PostgreSQL 17
            found[name] = None
    return found


def measure_scale(rows: int, requests: int, cycles: int, keep: bool = False) -> Json:
    """SMALL finished jobs and `rows`, each in a system of its own, measured side by side."""
    sizes = {"10k": min(SMALL, rows), "N": rows}
    result: Json = {
        "meta": {
            **machine(),
            "rows": rows,
            "requests_per_kind": requests,
            "dispatch_cycles": cycles,
            "warmup": WARMUP,
            "rounds": ROUNDS,
            "page": PAGE,
            "runners": 1,
            "goal": {"ratio_p50": GOAL_RATIO, "p99_ms": GOAL_P99_MS},
        },
        "tables": {},
        "fills": {},
    }
    started = time.monotonic()
    try:
        with scratch("jobsched-scale-", keep) as tmp, contextlib.ExitStack() as stack:
            systems = [start(stack, tmp / name, name, size) for name, size in sizes.items()]
            result["meta"]["postgres_version"] = str(systems[0].db.one("SHOW server_version"))
            for system in systems:
                result["fills"][system.name] = fill(system.db, system.rows)
            before = {system.name: background(system.db) for system in systems}
            measuring = time.monotonic()
            result["meta"]["load_average_before_measuring"] = os.getloadavg()
            measure_reads(systems, requests)
            measure_dispatch(systems, cycles)
            measure_claim_sql(systems, requests)
            result["meta"]["measuring_s"] = round(time.monotonic() - measuring, 2)
            result["meta"]["load_average_after_measuring"] = os.getloadavg()
            for system in systems:
                after = background(system.db)
                result["tables"][system.name] = {
                    "rows": system.rows,
                    "max_id": system.db.max_id(),
                    **system.figures,
                    "during": {k: delta(before[system.name][k], after[k]) for k in after},
                }
            big = systems[-1]
            result["explain_at_N"] = explain_all(big.db)
            result["scheduler_stats"] = big.client.get("/api/stats").json()
            result["goal"] = verdicts(result["tables"])
    finally:
        result["meta"]["seconds_total"] = round(time.monotonic() - started, 1)
        result["meta"]["load_average_at_end"] = os.getloadavg()
    return result


def delta(before: int | None, after: int | None) -> int | None:
    return None if before is None or after is None else after - before


def start(stack: contextlib.ExitStack[Any], tmp: Path, name: str, rows: int) -> System:
    """A system of its own on an embedded PostgreSQL in `tmp`, its runner connected."""
    system, server = stack.enter_context(
        throwaway_system(tmp, runners=1, RUNNER_DRAIN_SECONDS="5", LOG_LEVEL="WARNING")
    )
    client = stack.enter_context(rest(system, timeout=30))
    db = Db(server.get_uri())
    stack.callback(db.close)
    wait_runners(client, 1)
    return System(name, rows, client, db)


def verdicts(tables: Json) -> Json:
    """Each read against the goal: its p50 at N over its p50 at SMALL rows, and its p99
    at N."""
    found: Json = {}
    for kind, big in tables["N"]["reads"].items():
        small = tables["10k"]["reads"][kind]
        ratio = big["p50_ms"] / small["p50_ms"]
        passed = ratio <= GOAL_RATIO and big["p99_ms"] <= GOAL_P99_MS
        found[kind] = {"ratio_p50": round(ratio, 3), "p99_ms": big["p99_ms"], "pass": passed}
    return found


# --- report -----------------------------------------------------------------------------


def render(result: Json) -> str:
    meta, tables, goal = result["meta"], result["tables"], result["goal"]
    label = f"{meta['rows']:,} rows"
    out = [
        f"Scale: p50 / p99 in ms, {meta['requests_per_kind']} sequential requests per kind "
        f"({meta['dispatch_cycles']} dispatch cycles) after {meta['warmup']} warm-up ones, "
        f"on two systems taking turns in {meta['rounds']} rounds. Goal for each read: "
        f"p50 at N / p50 at 10k <= {GOAL_RATIO}, p99 at N <= {GOAL_P99_MS:.0f} ms",
        "",
        f"{'figure':38} {'10k rows':>17} {label:>19} {'p50 N/10k':>10} {'p99 N/10k':>10}  goal",
    ]
    small, big = ({**t["reads"], **t["dispatch"], **t["claim_sql"]} for t in tables.values())

    def cell(f: Json) -> str:
        return f"{f['p50_ms']:7.2f} / {f['p99_ms']:7.2f}" if f.get("n") else "-"

    for name, f in big.items():
        s = small[name]
        verdict = ("PASS" if goal[name]["pass"] else "FAIL") if name in goal else ""
        out.append(
            f"{name:38} {cell(s):>17} {cell(f):>19} {ratio(f, s, 'p50_ms'):>10} "
            f"{ratio(f, s, 'p99_ms'):>10}  {verdict}"
        )
    passed = sum(v["pass"] for v in goal.values())
    out += [
        "",
        f"goal: {passed} of {len(goal)} reads pass",
        f"measured in {meta['measuring_s']} s; load average "
        f"{meta['load_average_before_measuring'][0]:.2f} -> "
        f"{meta['load_average_after_measuring'][0]:.2f}",
    ]
    for key, table in tables.items():
        during = table["during"]
        out.append(
            f"table {key}: {table['rows']:,} rows; while measuring, its PostgreSQL ran "
            f"{during['checkpoints']} checkpoints and {during['autovacuum_runs']} "
            "autovacuum/autoanalyze runs on jobs tables"
        )
    for key, f in result["fills"].items():
        out.append(
            f"fill {key}: {f['rows']:,} rows in {f['total_s']} s (jobs INSERT "
            f"{f['insert_jobs_s']} s, attempts {f['insert_attempts_s']} s, VACUUM ANALYZE "
            f"{f['vacuum_analyze_s']} s, scheduler reading the notifications "
            f"{f['scheduler_digest_s']} s more); jobs {f['jobs_table_mb']} MB, "
            f"job_attempts {f['attempts_table_mb']} MB"
        )
    out += ["", f"EXPLAIN ANALYZE at {label} (execution time, ms):"]
    for name, plan in result["explain_at_N"].items():
        lines = [line.strip().removeprefix("->  ") for line in plan["plan"]]
        node = next((line for line in lines if " Scan " in line), lines[0] if lines else "")
        removed = next((line for line in lines if line.startswith("Rows Removed")), "")
        node = node.split("  (cost=")[0] + (f"; {removed}" if removed else "")
        out.append(f"  {name:36} {plan['execution_ms']!s:>8}  {node[:80]}")
    out += ["", f"whole run: {meta['seconds_total']} s"]
    return "\n".join(out)


def ratio(big: Json, small: Json, key: str) -> str:
    return f"{big[key] / small[key]:.2f}x" if big.get(key) and small.get(key) else "-"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="50,000 rows instead of 1,000,000")
    parser.add_argument("--rows", type=int, help="rows in the big table (overrides --quick)")
    parser.add_argument("--requests", type=int, help="per read kind and dispatch cycles (200)")
    parser.add_argument("--out", type=Path, default=RESULTS / "scale.json")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs)")
    args = parser.parse_args(argv)
    rows: int = args.rows or (50_000 if args.quick else 1_000_000)
    if rows < SMALL:
        parser.error(f"--rows must be at least {SMALL}")
    requests: int = args.requests or 200
    cycles: int = args.requests or (100 if args.quick else 200)
    result = measure_scale(rows, requests, cycles, args.keep)
    print(render(result), flush=True)
    write_results(args.out.resolve(), result)


if __name__ == "__main__":
    main()
