"""Measures the claim statement over big queues in the claim's order: 10^6 queued jobs
over 201 priorities with 10^5 more `scheduled` (delayed), and 10^6 queued jobs over
1,000 concurrency keys of which half have a limit of 2 and are full (2 running each),
against the same claim over 10^6 queued jobs in plain arrival order (one priority, no
delays, no keys). Goal for each: p99 at most 2 times the FIFO one, and at most 5 ms.

One embedded PostgreSQL holds both queues, each in a database of its own migrated by
`jobsched-scheduler migrate`; rows go in with one `INSERT ... SELECT` through the
schema's triggers, then `VACUUM ANALYZE`. The claim function is called as the scheduler
calls it (`jobsched_claim`), for one runner with SLOTS free slots and a limit of SLOTS,
in a transaction that is rolled back: the queue stays as it was and the commit's WAL
flush is not in the figure. The two databases take turns, ROUNDS times. Reaches the
system only through its SQL schema and its migrate command. Quick: 10^5 rows."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import LiteralString

from jobsched_launcher import clean_env, embedded_postgres
from measure import RESULTS, Db, Json, machine, scratch, summary, write_results

SLOTS = 8
ROUNDS = 10
WARMUP = 20
GOAL_RATIO = 2.0
GOAL_P99_MS = 5.0

QUEUE: LiteralString = """
INSERT INTO jobs (name, command, priority)
SELECT 'queued-' || i, 'true', CASE WHEN %(ordered)s THEN i %% 201 - 100 ELSE 0 END
FROM generate_series(1, %(rows)s::int) AS i
"""
DELAYED: LiteralString = """
INSERT INTO jobs (name, command, priority, run_after)
SELECT 'delayed-' || i, 'true', i %% 201 - 100, now() + interval '1 day' + i * interval '1 s'
FROM generate_series(1, %(rows)s::int) AS i
"""
KEYED: LiteralString = """
INSERT INTO jobs (name, command, concurrency_key)
SELECT 'keyed-' || i, 'true', 'key-' || i %% 1000
FROM generate_series(1, %(rows)s::int) AS i
"""
# Half the keys (the even ones) get a limit of 2, and 2 of their jobs run: they are full.
KEY_LIMITS: LiteralString = """
INSERT INTO concurrency_limits (key, max_concurrent_jobs)
SELECT 'key-' || k, 2 FROM generate_series(0, 998, 2) AS k
"""
FULL_KEYS: LiteralString = """
UPDATE jobs SET status = 'running', attempt = 1, runner_id = 'bench', lease_expires_at = 'infinity'
WHERE id IN (SELECT id FROM jobs WHERE concurrency_key IN (SELECT key FROM concurrency_limits)
             AND id <= 2000)
"""
LIMIT: LiteralString = "UPDATE scheduler_config SET value = %s WHERE key = 'max_concurrent_jobs'"
CLAIM: LiteralString = "SELECT id FROM jobsched_claim(%s::jsonb, 2, 30.0, 0)"


def create_database(admin: Db, server_url: str, name: str) -> Db:
    admin.conn.execute(f"CREATE DATABASE {name}".encode())
    url = server_url.replace("/postgres?", f"/{name}?")
    env = clean_env(DATABASE_URL=url, LOG_LEVEL="WARNING")
    migrate = Path(sys.executable).with_name("jobsched-scheduler")
    subprocess.run([migrate, "migrate"], env=env, check=True)
    return Db(url)


def fill(db: Db, rows: int, kind: str) -> Json:
    started = time.monotonic()
    if kind == "keys":
        db.conn.execute(KEYED, {"rows": rows})
        db.conn.execute(KEY_LIMITS)
        db.conn.execute(FULL_KEYS)
    else:
        db.conn.execute(QUEUE, {"rows": rows, "ordered": kind == "ordered"})
    if kind == "ordered":
        db.conn.execute(DELAYED, {"rows": rows // 10})
    # The limit leaves SLOTS free above what runs.
    running = db.one("SELECT count(*) FROM jobs WHERE status = 'running'")
    db.conn.execute(LIMIT, (str(SLOTS + int(running)),))
    db.conn.execute("VACUUM ANALYZE jobs")
    counts: dict[str, int] = dict(
        db.conn.execute("SELECT status, count(*) FROM jobs GROUP BY 1").fetchall()
    )
    return {"counts": counts, "fill_s": round(time.monotonic() - started, 1)}


def claim_once(db: Db) -> float:
    slots = '["bench"' + ', "bench"' * (SLOTS - 1) + "]"
    with db.conn.transaction(force_rollback=True):
        started = time.perf_counter()
        rows = db.conn.execute(CLAIM, (slots,)).fetchall()
        elapsed = time.perf_counter() - started
    assert len(rows) == SLOTS and all(row[0] is not None for row in rows), rows
    return elapsed * 1000


def measure(dbs: dict[str, Db], requests: int) -> dict[str, list[float]]:
    """The databases take turns in ROUNDS rounds, so that load from elsewhere falls on
    both alike."""
    samples: dict[str, list[float]] = {name: [] for name in dbs}
    for db in dbs.values():
        for _ in range(WARMUP):
            claim_once(db)
    per_round = max(1, requests // ROUNDS)
    for turn in range(ROUNDS):
        first = turn % len(dbs)
        names = list(dbs)[first:] + list(dbs)[:first]
        for name in names:
            samples[name] += [claim_once(dbs[name]) for _ in range(per_round)]
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10^5 queued instead of 10^6")
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--out", type=Path, default=RESULTS / "claim.json")
    args = parser.parse_args()
    rows = 100_000 if args.quick else 1_000_000
    result: Json = {"meta": {**machine(), "rows": rows, "slots": SLOTS}}
    with scratch("jobsched-claim-") as tmp:
        server = embedded_postgres(tmp / "postgres")
        try:
            admin = Db(server.get_uri())
            names = ("fifo", "ordered", "keys")
            dbs = {name: create_database(admin, server.get_uri(), name) for name in names}
            result["fills"] = {name: fill(db, rows, name) for name, db in dbs.items()}
            result["meta"]["load_average_before_measuring"] = os.getloadavg()
            samples = measure(dbs, args.requests)
            result["claims"] = {name: summary(s) for name, s in samples.items()}
            for db in (*dbs.values(), admin):
                db.close()
        finally:
            server.cleanup()
    fifo = result["claims"]["fifo"]
    print(f"Claim statement, {SLOTS} slots, {args.requests} claims each ({result['meta']['cpu']}):")
    for name, figure in result["claims"].items():
        print(
            f"  {name:8} {result['fills'][name]['counts']}: p50 {figure['p50_ms']:.2f} ms, "
            f"p99 {figure['p99_ms']:.2f} ms"
        )
    result["goal"] = {}
    for name in ("ordered", "keys"):
        figure = result["claims"][name]
        ratio = figure["p99_ms"] / fifo["p99_ms"]
        passed = ratio <= GOAL_RATIO and figure["p99_ms"] <= GOAL_P99_MS
        result["goal"][name] = {"ratio_p99": round(ratio, 2), "pass": passed}
        print(
            f"  {name}/fifo p99 {ratio:.2f}x (goal <= {GOAL_RATIO}x and <= {GOAL_P99_MS} ms): "
            f"{'PASS' if passed else 'FAIL'}"
        )
    write_results(args.out.resolve(), result)


if __name__ == "__main__":
    main()
