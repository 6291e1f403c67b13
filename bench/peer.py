"""Runs the drain benchmark's work through pgqueuer, a peer, for comparison.

The same work as `bench/run.py`'s drain: N jobs that each run `/bin/sh -c true` (with
our runner's executor, so that both sides spawn alike; `--spawn asyncio` for asyncio's
subprocess), at most 64 at once in total, on a PostgreSQL of
its own (embedded, in a temporary directory). pgqueuer's schema is installed with its
Python API, the N jobs are enqueued in one batch, then consumer processes (two, as our
two runners) each run a `QueueManager` in drain mode with one entrypoint whose
`concurrency_limit` (enforced in SQL across all consumers) is the total limit, and
`max_concurrent_tasks` the same per consumer. By default the consumers use asyncpg
(pgqueuer's recommended driver) and the standard asyncio event loop (as our runners).
Each handler records its command's start and finish; jobs/s is N over first start to
last finish. Every wait is bounded: consumers are stopped, then killed, at a deadline.

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
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Coroutine
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from jobsched_launcher import embedded_postgres
from measure import postgres_cpu, write_results

ROOT = Path(__file__).resolve().parent.parent

Json = dict[str, Any]
ENTRYPOINT = "shell_true"
COMMAND = ["/bin/sh", "-c", "true"]


# --- one consumer process -------------------------------------------------------------------


def default_driver() -> str:
    """asyncpg, pgqueuer's default and recommended driver, when installed (the
    `pgqueuer[asyncpg]` extra); else psycopg. With psycopg, pgqueuer's listener holds
    the connection for up to a second while it waits for a notification, so a drain
    with few notifications mostly waits (56 to 80 jobs/s here, about 880 with asyncpg)."""
    try:
        import asyncpg  # type: ignore[import-untyped, import-not-found, unused-ignore]  # noqa: F401
    except ImportError:
        return "psycopg"
    return "asyncpg"


async def make_queries(uri: str, driver: str) -> Any:
    """pgqueuer's `Queries` over one connection of the chosen driver."""
    from pgqueuer import Queries
    from pgqueuer.db import PsycopgDriver

    if driver == "asyncpg":
        import asyncpg  # type: ignore[import-untyped, import-not-found, unused-ignore]
        from pgqueuer.db import AsyncpgDriver

        return Queries(AsyncpgDriver(await asyncpg.connect(dsn=uri)))
    conn = await psycopg.AsyncConnection.connect(uri, autocommit=True)
    return Queries(PsycopgDriver(conn))


async def consume(
    uri: str, driver: str, concurrency: int, batch_size: int, seconds: float, spawn: str
) -> Json:
    """Drains the queue with one QueueManager; returns what its handler recorded."""
    from jobsched_runner.execute import Execution
    from pgqueuer import Job, QueueManager
    from pgqueuer.domain.types import QueueExecutionMode

    qm = QueueManager(await make_queries(uri, driver))
    spans: list[tuple[float, float]] = []
    failed = 0

    @qm.entrypoint(ENTRYPOINT, concurrency_limit=concurrency)
    async def shell_true(job: Job) -> None:
        nonlocal failed
        started = time.time()  # wall clock: spans from two processes are compared
        if spawn == "runner":
            outcome = await Execution(COMMAND[-1], None, 5.0, 1024 * 1024).run(lambda _: None)
            code: int | None = outcome.exit_code
        else:
            proc = await asyncio.create_subprocess_exec(
                *COMMAND, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
            )
            await proc.communicate()
            code = proc.returncode
        spans.append((started, time.time()))
        if code != 0:
            failed += 1

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


def run_loop(coro: Coroutine[Any, Any, Json], loop: str) -> Json:
    if loop == "uvloop":
        import uvloop

        result: Json = uvloop.run(coro)
        return result
    return asyncio.run(coro)


# --- the benchmark ----------------------------------------------------------------------------


async def prepare(uri: str, driver: str, jobs: int) -> Json:
    """Installs pgqueuer's schema and enqueues `jobs` jobs in one batch."""
    queries = await make_queries(uri, driver)
    started = time.monotonic()
    await queries.install()
    installed = time.monotonic()
    await queries.enqueue([ENTRYPOINT] * jobs, [None] * jobs, [0] * jobs)
    enqueued = time.monotonic()
    return {
        "install_seconds": round(installed - started, 3),
        "enqueue_seconds": round(enqueued - installed, 3),
    }


def peak_concurrency(spans: list[tuple[float, float]]) -> int:
    events = sorted([(s, 1) for s, _ in spans] + [(f, -1) for _, f in spans])
    peak = current = 0
    for _, delta in events:
        current += delta
        peak = max(peak, current)
    return peak


def remaining(uri: str) -> dict[str, int]:
    """Rows left in pgqueuer's queue by status, and its log by status."""
    found: dict[str, int] = {}
    with psycopg.connect(uri, autocommit=True) as conn:
        for status, n in conn.execute("SELECT status::text, count(*) FROM pgqueuer GROUP BY 1"):
            found[f"queue {status}"] = int(n)
        for status, n in conn.execute("SELECT status::text, count(*) FROM pgqueuer_log GROUP BY 1"):
            found[f"log {status}"] = int(n)
    return found


def measure_pgqueuer(
    jobs: int,
    concurrency: int,
    consumers: int = 2,
    driver: str | None = None,
    batch_size: int = 10,
    loop: str = "asyncio",
    keep: bool = False,
    spawn: str = "runner",
) -> Json:
    """N `/bin/sh -c true` jobs through pgqueuer with at most `concurrency` at once."""
    driver = driver or default_driver()
    timeout = max(120.0, jobs * 0.05)
    tmp = Path(tempfile.mkdtemp(prefix="jobsched-peer-"))
    result: Json = {
        "jobs": jobs,
        "completed": 0,
        "jobs_per_s": None,
        "seconds": None,
        "pgqueuer_version": importlib.metadata.version("pgqueuer"),
        "consumers": consumers,
        "concurrency": concurrency,
        "driver": driver,
        "event_loop": loop,
        "spawn": spawn,
        "batch_size": batch_size,
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "load_average_at_start": os.getloadavg(),
    }
    server = embedded_postgres(tmp / "postgres")
    procs: list[subprocess.Popen[bytes]] = []
    try:
        uri = server.get_uri()
        with psycopg.connect(uri, autocommit=True) as conn:
            version = conn.execute("SHOW server_version").fetchone()
            result["postgres_version"] = str(version[0]) if version else "?"
        postmaster = server.get_pid()
        result.update(run_loop(prepare(uri, driver, jobs), loop))
        outs = [tmp / f"consumer-{i}.json" for i in range(consumers)]
        logs = [tmp / f"consumer-{i}.log" for i in range(consumers)]
        spawned = time.time()
        pg_before = postgres_cpu(postmaster) if postmaster else None
        for out, log in zip(outs, logs, strict=True):
            with open(log, "wb") as sink:
                procs.append(
                    subprocess.Popen(
                        [
                            sys.executable,
                            __file__,
                            "--consume",
                            uri,
                            "--driver",
                            driver,
                            "--loop",
                            loop,
                            "--spawn",
                            spawn,
                            "--concurrency",
                            str(concurrency),
                            "--batch-size",
                            str(batch_size),
                            "--seconds",
                            str(timeout),
                            "--out",
                            str(out),
                        ],
                        stdout=sink,
                        stderr=sink,
                    )
                )
        codes = [wait_or_kill(proc, timeout + 60) for proc in procs]
        wall = time.time() - spawned
        result["wall_seconds"] = round(wall, 2)
        cpu: dict[str, float] = {"consumers": 0.0, "job shells": 0.0}
        if postmaster and pg_before is not None:
            cpu["postgres"] = postgres_cpu(postmaster) - pg_before
        result["consumer_exit_codes"] = codes
        spans: list[tuple[float, float]] = []
        per_consumer: list[int] = []
        failed = 0
        for out, log in zip(outs, logs, strict=True):
            if not out.exists():
                result.setdefault("consumer_errors", []).append(log.read_text()[-2000:])
                continue
            found = json.loads(out.read_text())
            spans.extend((float(s), float(f)) for s, f in found["spans"])
            per_consumer.append(int(found["completed"]))
            cpu["consumers"] += float(found["cpu_seconds"])
            cpu["job shells"] += float(found["job_shells_cpu_seconds"])
            failed += int(found["failed"])
            result["timed_out"] = bool(result.get("timed_out")) or bool(found["timed_out"])
        result["completed"] = len(spans)
        result["failed"] = failed
        result["per_consumer"] = per_consumer
        if spans:
            first = min(s for s, _ in spans)
            last = max(f for _, f in spans)
            span = max(last - first, 1e-9)
            result["seconds"] = round(span, 3)
            result["jobs_per_s"] = round(len(spans) / span, 1)
            result["first_start_after_spawn_s"] = round(first - spawned, 3)
            result["peak_concurrency"] = peak_concurrency(spans)
            result["mean_concurrency"] = round(sum(f - s for s, f in spans) / span, 2)
            durations = sorted((f - s) * 1000 for s, f in spans)
            result["command_ms_p50"] = round(durations[len(durations) // 2], 2)
            result["jobs_per_s_by_tenth"] = rate_by_tenth(spans)
        # CPU-seconds per second of the consumers' wall time, as run.py's cpu_cores_used.
        result["cpu_cores_used"] = {k: round(v / max(wall, 1e-9), 3) for k, v in cpu.items()}
        result["left_in_database"] = remaining(uri)
        result["load_average_at_end"] = os.getloadavg()
    finally:
        for proc in procs:
            wait_or_kill(proc, 0)
        server.cleanup()
        if keep:
            result["kept"] = str(tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return result


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
    rows = [
        ("pgqueuer", result["pgqueuer_version"]),
        (
            "driver / event loop / spawn",
            f"{result['driver']} / {result['event_loop']} / {result['spawn']}",
        ),
        ("consumers x batch size", f"{result['consumers']} x {result['batch_size']}"),
        ("concurrency limit (total)", result["concurrency"]),
        ("jobs", result["jobs"]),
        ("completed", f"{result['completed']} (failed {result.get('failed', 0)})"),
        ("jobs/s (first start to last finish)", result["jobs_per_s"]),
        ("seconds (first start to last finish)", result["seconds"]),
        ("wall seconds (consumers spawned to exited)", result.get("wall_seconds")),
        ("enqueue seconds (one batch)", result.get("enqueue_seconds")),
        (
            "peak / mean concurrency",
            f"{result.get('peak_concurrency')} / {result.get('mean_concurrency')}",
        ),
        ("command p50 ms", result.get("command_ms_p50")),
        ("jobs/s by tenth of the jobs", result.get("jobs_per_s_by_tenth")),
        ("CPU cores used", result.get("cpu_cores_used")),
        ("per consumer", result.get("per_consumer")),
        ("left in database", result.get("left_in_database")),
    ]
    return "\n".join(f"{name:44} {value}" for name, value in rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2,000 jobs instead of 20,000")
    parser.add_argument("--jobs", type=int, help="jobs to run (20000; quick 2000)")
    parser.add_argument("--concurrency", type=int, default=64, help="total limit (64)")
    parser.add_argument("--consumers", type=int, default=2, help="consumer processes (2)")
    parser.add_argument("--batch-size", type=int, default=10, help="dequeue batch size (10)")
    parser.add_argument(
        "--driver", choices=["asyncpg", "psycopg"], help="default: asyncpg when installed"
    )
    parser.add_argument(
        "--loop",
        choices=["asyncio", "uvloop"],
        default="asyncio",
        help="consumers' event loop: asyncio (as our runners; default) or uvloop (as "
        "pgqueuer's CLI), whose fork-based spawn halves the rate of `true` here",
    )
    parser.add_argument(
        "--spawn",
        choices=["runner", "asyncio"],
        default="runner",
        help="how the handler runs the command: with our runner's executor (default: the "
        "same spawn on both sides, so the queues are compared) or asyncio's subprocess",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "peer.json")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs)")
    # Internal: run as one consumer process.
    parser.add_argument("--consume", metavar="URI", help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, default=600, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.consume:
        found = run_loop(
            consume(
                args.consume,
                args.driver or default_driver(),
                args.concurrency,
                args.batch_size,
                args.seconds,
                args.spawn,
            ),
            args.loop,
        )
        args.out.write_text(json.dumps(found))
        return
    jobs: int = args.jobs or (2_000 if args.quick else 20_000)
    if jobs < 1 or args.concurrency < 1 or args.consumers < 1 or args.batch_size < 1:
        parser.error("--jobs, --concurrency, --consumers and --batch-size must be positive")
    if args.concurrency < 2 * args.batch_size:
        parser.error("pgqueuer needs --concurrency at least twice --batch-size")
    result = measure_pgqueuer(
        jobs,
        args.concurrency,
        args.consumers,
        args.driver,
        args.batch_size,
        args.loop,
        args.keep,
        args.spawn,
    )
    print(render(result), flush=True)
    write_results(args.out, result)


if __name__ == "__main__":
    main()
