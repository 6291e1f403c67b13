"""Runs the drain benchmark's work through pgqueuer, a peer, for comparison.

The same work as `bench/run.py`'s drain: N jobs that each run `/bin/sh -c true`, at most
64 at once in total, on a PostgreSQL of its own (embedded, in a temporary directory).
pgqueuer's schema is installed with its Python API, the N jobs are enqueued in one
batch, then consumer processes (two, as our two runners) each run a `QueueManager` in
drain mode over asyncpg (pgqueuer's recommended driver) and the standard asyncio event
loop (as our runners), with one entrypoint whose `concurrency_limit` (enforced in SQL
across all consumers) is the total limit, and `max_concurrent_tasks` the same per
consumer. Each handler records its command's start and finish; jobs/s is N over first
start to last finish. Every wait is bounded: consumers are stopped, then killed, at a
deadline.

Internals: the handler runs its command with our runner's executor
(`jobsched_runner.execute.Execution`), so that both sides spawn a shell alike and the
queues are what is compared. Nothing else of a service is imported.

    .venv/bin/pip install -r bench/requirements.txt   # pgqueuer: for this file only
    .venv/bin/python bench/peer.py [--quick] [--out FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.metadata
import json
import os
import resource
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
from jobsched_launcher import embedded_postgres
from measure import RESULTS, Json, columns, machine, scratch, write_results
from processes import postgres_cpu

ENTRYPOINT = "shell_true"
COMMAND = "true"


# --- one consumer process -------------------------------------------------------------------


async def queries(uri: str) -> Any:
    """pgqueuer's `Queries` over one asyncpg connection."""
    import asyncpg  # type: ignore[import-untyped, import-not-found, unused-ignore]
    from pgqueuer import Queries
    from pgqueuer.db import AsyncpgDriver

    return Queries(AsyncpgDriver(await asyncpg.connect(dsn=uri)))


async def consume(uri: str, concurrency: int, batch_size: int, seconds: float) -> Json:
    """Drains the queue with one QueueManager; returns what its handler recorded."""
    from jobsched_runner.execute import Execution
    from pgqueuer import Job, QueueManager
    from pgqueuer.domain.types import QueueExecutionMode

    qm = QueueManager(await queries(uri))
    spans: list[tuple[float, float]] = []
    failed = 0

    @qm.entrypoint(ENTRYPOINT, concurrency_limit=concurrency)
    async def shell_true(job: Job) -> None:
        nonlocal failed
        started = time.time()  # wall clock: spans from two processes are compared
        outcome = await Execution(COMMAND, None, 5.0, 1024 * 1024).run(lambda _: None)
        spans.append((started, time.time()))
        failed += outcome.exit_code != 0

    async def deadline() -> None:
        await asyncio.sleep(seconds)
        qm.shutdown.set()

    timer = asyncio.create_task(deadline())
    began = time.time()
    timed_out = False
    try:
        await asyncio.wait_for(
            qm.run(
                batch_size=batch_size,
                mode=QueueExecutionMode.drain,
                max_concurrent_tasks=concurrency,
                # No periodic aggregation of pgqueuer's log while we measure.
                log_aggregation_interval=timedelta(0),
            ),
            seconds + 30,
        )
    except TimeoutError:
        timed_out = True
    finally:
        timed_out = timed_out or timer.done()  # the deadline stopped it
        timer.cancel()
    return {
        "completed": len(spans),
        "failed": failed,
        "timed_out": timed_out,
        "began": began,
        "ended": time.time(),
        "spans": spans,
        "cpu_seconds": cpu_of(resource.RUSAGE_SELF),
        "job_shells_cpu_seconds": cpu_of(resource.RUSAGE_CHILDREN),
    }


def cpu_of(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


# --- the benchmark ----------------------------------------------------------------------------


async def prepare(uri: str, jobs: int) -> Json:
    """Installs pgqueuer's schema and enqueues `jobs` jobs in one batch."""
    queue = await queries(uri)
    started = time.monotonic()
    await queue.install()
    installed = time.monotonic()
    await queue.enqueue([ENTRYPOINT] * jobs, [None] * jobs, [0] * jobs)
    return {
        "install_seconds": round(installed - started, 3),
        "enqueue_seconds": round(time.monotonic() - installed, 3),
    }


def measure_pgqueuer(
    jobs: int, concurrency: int, consumers: int = 2, batch_size: int = 10, keep: bool = False
) -> Json:
    """N `/bin/sh -c true` jobs through pgqueuer with at most `concurrency` at once."""
    timeout = max(120.0, jobs * 0.05)
    result: Json = {
        "jobs": jobs,
        "completed": 0,
        "jobs_per_s": None,
        "seconds": None,
        "pgqueuer_version": importlib.metadata.version("pgqueuer"),
        "consumers": consumers,
        "concurrency": concurrency,
        "driver": "asyncpg",
        "event_loop": "asyncio",
        "spawn": "runner",
        "batch_size": batch_size,
        **machine(),
    }
    with scratch("jobsched-peer-", keep) as tmp:
        server = embedded_postgres(tmp / "postgres")
        procs: list[subprocess.Popen[bytes]] = []
        try:
            uri, postmaster = server.get_uri(), server.get_pid()
            with psycopg.connect(uri, autocommit=True) as conn:
                version = conn.execute("SHOW server_version").fetchone()
                result["postgres_version"] = str(version[0]) if version else "?"
            result.update(asyncio.run(prepare(uri, jobs)))
            outs = [tmp / f"consumer-{i}.json" for i in range(consumers)]
            spawned = time.time()
            pg_before = postgres_cpu(postmaster)
            for out in outs:
                with open(out.with_suffix(".log"), "wb") as log:
                    command = [sys.executable, __file__, "--consume", uri, "--out", str(out)]
                    command += ["--concurrency", str(concurrency), "--batch-size", str(batch_size)]
                    command += ["--seconds", str(timeout)]
                    procs.append(subprocess.Popen(command, stdout=log, stderr=log))
            result["consumer_exit_codes"] = [wait_or_kill(proc, timeout + 60) for proc in procs]
            wall = time.time() - spawned
            result["wall_seconds"] = round(wall, 2)
            cpu = {"consumers": 0.0, "job shells": 0.0}
            cpu["postgres"] = postgres_cpu(postmaster) - pg_before
            spans = gather(outs, result, cpu)
            result.update(span_figures(spans, spawned))
            # CPU-seconds per second of the consumers' wall time, as run.py's cpu_cores_used.
            result["cpu_cores_used"] = {k: round(v / max(wall, 1e-9), 3) for k, v in cpu.items()}
            result["left_in_database"] = remaining(uri)
            result["load_average_at_end"] = os.getloadavg()
        finally:
            for proc in procs:
                wait_or_kill(proc, 0)
            server.cleanup()
    return result


def gather(outs: list[Path], result: Json, cpu: dict[str, float]) -> list[tuple[float, float]]:
    """The consumers' spans, and their counts and CPU into `result` and `cpu`."""
    spans: list[tuple[float, float]] = []
    result["per_consumer"] = []
    result["failed"] = 0
    for out in outs:
        if not out.exists():
            log = out.with_suffix(".log").read_text()[-2000:]
            result.setdefault("consumer_errors", []).append(log)
            continue
        found = json.loads(out.read_text())
        spans.extend((float(s), float(f)) for s, f in found["spans"])
        result["per_consumer"].append(int(found["completed"]))
        result["failed"] += int(found["failed"])
        result["timed_out"] = bool(result.get("timed_out")) or bool(found["timed_out"])
        cpu["consumers"] += float(found["cpu_seconds"])
        cpu["job shells"] += float(found["job_shells_cpu_seconds"])
    result["completed"] = len(spans)
    return spans


def span_figures(spans: list[tuple[float, float]], spawned: float) -> Json:
    """Throughput and concurrency from the handlers' (start, finish) spans."""
    if not spans:
        return {}
    first = min(s for s, _ in spans)
    span = max(max(f for _, f in spans) - first, 1e-9)
    durations = sorted((f - s) * 1000 for s, f in spans)
    return {
        "seconds": round(span, 3),
        "jobs_per_s": round(len(spans) / span, 1),
        "first_start_after_spawn_s": round(first - spawned, 3),
        "peak_concurrency": peak_concurrency(spans),
        "mean_concurrency": round(sum(f - s for s, f in spans) / span, 2),
        "command_ms_p50": round(durations[len(durations) // 2], 2),
        "jobs_per_s_by_tenth": rate_by_tenth(spans),
    }


def peak_concurrency(spans: list[tuple[float, float]]) -> int:
    events = sorted([(s, 1) for s, _ in spans] + [(f, -1) for _, f in spans])
    peak = current = 0
    for _, delta in events:
        current += delta
        peak = max(peak, current)
    return peak


def rate_by_tenth(spans: list[tuple[float, float]]) -> list[float]:
    """Jobs/s over each tenth of the jobs, in the order they finished."""
    ends = sorted(f for _, f in spans)
    step = max(1, len(ends) // 10)
    previous = min(s for s, _ in spans)
    rates: list[float] = []
    for i in range(step - 1, len(ends), step):
        rates.append(round(step / max(ends[i] - previous, 1e-9), 1))
        previous = ends[i]
    return rates[:10]


def remaining(uri: str) -> dict[str, int]:
    """Rows left in pgqueuer's queue by status, and its log by status."""
    found: dict[str, int] = {}
    with psycopg.connect(uri, autocommit=True) as conn:
        for status, n in conn.execute("SELECT status::text, count(*) FROM pgqueuer GROUP BY 1"):
            found[f"queue {status}"] = int(n)
        for status, n in conn.execute("SELECT status::text, count(*) FROM pgqueuer_log GROUP BY 1"):
            found[f"log {status}"] = int(n)
    return found


def wait_or_kill(proc: subprocess.Popen[bytes], timeout: float) -> int:
    """Waits for a consumer; past `timeout` it is sent SIGTERM, then SIGKILL."""
    with contextlib.suppress(subprocess.TimeoutExpired):
        return proc.wait(timeout)
    proc.terminate()
    with contextlib.suppress(subprocess.TimeoutExpired):
        return proc.wait(10)
    proc.kill()
    return proc.wait()


def render(result: Json) -> str:
    r = result.get
    rows = [
        ("pgqueuer", r("pgqueuer_version")),
        ("driver / event loop / spawn", f"{r('driver')} / {r('event_loop')} / {r('spawn')}"),
        ("consumers x batch size", f"{r('consumers')} x {r('batch_size')}"),
        ("concurrency limit (total)", r("concurrency")),
        ("jobs", r("jobs")),
        ("completed", f"{r('completed')} (failed {r('failed', 0)})"),
        ("jobs/s (first start to last finish)", r("jobs_per_s")),
        ("seconds (first start to last finish)", r("seconds")),
        ("wall seconds (consumers spawned to exited)", r("wall_seconds")),
        ("enqueue seconds (one batch)", r("enqueue_seconds")),
        ("peak / mean concurrency", f"{r('peak_concurrency')} / {r('mean_concurrency')}"),
        ("command p50 ms", r("command_ms_p50")),
        ("jobs/s by tenth of the jobs", r("jobs_per_s_by_tenth")),
        ("CPU cores used", r("cpu_cores_used")),
        ("per consumer", r("per_consumer")),
        ("left in database", r("left_in_database")),
    ]
    return "\n".join(columns([(name, str(value)) for name, value in rows]))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2,000 jobs instead of 20,000")
    parser.add_argument("--jobs", type=int, help="jobs to run (20000; quick 2000)")
    parser.add_argument("--concurrency", type=int, default=64, help="total limit (64)")
    parser.add_argument("--consumers", type=int, default=2, help="consumer processes (2)")
    parser.add_argument("--batch-size", type=int, default=10, help="dequeue batch size (10)")
    parser.add_argument("--out", type=Path, default=RESULTS / "peer.json")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs)")
    # Internal: run as one consumer process.
    parser.add_argument("--consume", metavar="URI", help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, default=600, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.consume:
        found = asyncio.run(consume(args.consume, args.concurrency, args.batch_size, args.seconds))
        args.out.write_text(json.dumps(found))
        return
    jobs: int = args.jobs or (2_000 if args.quick else 20_000)
    if min(jobs, args.concurrency, args.consumers, args.batch_size) < 1:
        parser.error("--jobs, --concurrency, --consumers and --batch-size must be positive")
    if args.concurrency < 2 * args.batch_size:
        parser.error("pgqueuer needs --concurrency at least twice --batch-size")
    out = args.out.resolve()
    result = measure_pgqueuer(jobs, args.concurrency, args.consumers, args.batch_size, args.keep)
    print(render(result), flush=True)
    write_results(out, result)


if __name__ == "__main__":
    main()
