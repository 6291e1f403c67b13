"""Where a page of jobs costs its time: each step of `GET /api/jobs` on its own.

Starts an embedded PostgreSQL in a temporary directory, applies the migrations, fills
10,000 finished jobs as `bench/scale.py` does, then times each step the real code
takes for a page (p50 of sequential runs, in ms per page and µs per row) and for an
empty page: the scheduler's query through its store (binary rows as JobRows), the page's
protobuf, its encoding and decoding, and the gateway's JSON body. What is left of an
HTTP request (FastAPI, uvicorn, gRPC calls, the network) does not grow with the rows.

Then it starts the whole system on such a table and sends full and empty pages in
alternating rounds, to split the whole request by where it runs, from the services'
own request histograms (means): the scheduler's ListJobs, the gateway less that call,
and what is left to the client (uvicorn, the network, httpx). The steps alone run with
warm caches; in the running system they cost more.

`bench/scale.py` measures the whole request; this splits it."""

from __future__ import annotations

import argparse
import asyncio
import inspect
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psycopg
from jobsched.v1 import jobs_pb2 as pb
from jobsched_gateway.schemas import JsonBody, job_json
from jobsched_launcher import embedded_postgres
from jobsched_scheduler.api import add_jobs
from jobsched_scheduler.migrations import migrate
from jobsched_scheduler.store import PgStore, new_pool
from measure import percentile
from scale import FILL_JOBS, PAGE, fill, running_system

ROWS = 10_000
WARMUP = 10
Step = Callable[[], Any]


async def p50_ms(step: Step, runs: int) -> float:
    """p50 of `runs` timed calls after 10 warm-up ones; a step may return an awaitable."""
    samples = []
    for n in range(WARMUP + runs):
        started = time.perf_counter()
        done = step()
        if inspect.isawaitable(done):
            await done
        if n >= WARMUP:
            samples.append(time.perf_counter() - started)
    return percentile(samples, 50) * 1000


def page(rows: list[Any]) -> pb.ListJobsResponse:
    reply = pb.ListJobsResponse()
    add_jobs(reply.jobs, rows)
    return reply


def steps(rows: list[Any]) -> dict[str, Step]:
    """The steps after the query, on these rows."""
    reply = page(rows)
    jobs = pb.ListJobsResponse.FromString(reply.SerializeToString()).jobs
    return {
        "protobuf page (add_jobs)": lambda: page(rows),
        "encode + decode": lambda: pb.ListJobsResponse.FromString(reply.SerializeToString()),
        "gateway JSON body (job_json)": lambda: JsonBody([job_json(j) for j in jobs]).body,
    }


async def measure(url: str, runs: int) -> dict[str, list[float]]:
    """{step: [ms for a full page, ms for an empty page]}"""
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await migrate(conn)
        await conn.execute(FILL_JOBS, {"first": 1, "last": ROWS})
        await conn.execute("VACUUM ANALYZE jobs")
    pool = new_pool(url, max_size=1)
    await pool.open(wait=True)
    store = PgStore(pool, lease_seconds=60, output_limit=1000)
    try:
        found: dict[str, list[float]] = {}
        for before in (ROWS // 2, 1):  # a full page, then an empty one (no id below 1)
            rows = await store.list_jobs(None, PAGE, before)
            timed = {"query (store.list_jobs)": lambda b=before: store.list_jobs(None, PAGE, b)}
            for name, step in {**timed, **steps(rows)}.items():
                found.setdefault(name, []).append(await p50_ms(step, runs))
        return found
    finally:
        await pool.close()


def histogram_seconds(text: str, metric: str, label: str) -> float:
    """Seconds summed over a Prometheus histogram's series that carry `label`."""
    return sum(
        float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith(f"{metric}_sum") and label in line
    )


def in_system(requests: int, rounds: int = 6) -> dict[str, list[float]]:
    """{where: [ms a full page, ms an empty page]}, means over `requests` of each, sent
    in alternating rounds so that both see the same machine."""
    below = {"full": ROWS // 2, "empty": 1}  # no id is below 1
    paths = {kind: f"/api/jobs?limit={PAGE}&before={before}" for kind, before in below.items()}
    per_round = max(1, requests // rounds)
    spent = {kind: [0.0, 0.0, 0.0] for kind in paths}  # client, gateway, scheduler seconds
    with tempfile.TemporaryDirectory(prefix="jobsched-listcost-") as tmp:
        with running_system(Path(tmp)) as (system, server):
            with psycopg.connect(server.get_uri(), autocommit=True) as conn:
                fill(conn, 1, ROWS)  # and wait until the scheduler has read its notifications
            with httpx.Client(base_url=system.gateway_url, timeout=30) as client:

                def service_seconds() -> tuple[float, float]:
                    gateway = client.get("/metrics").text
                    scheduler = client.get(system.metrics_url).text
                    return (
                        histogram_seconds(gateway, "http_request_duration_seconds", '"/api/jobs"'),
                        histogram_seconds(scheduler, "grpc_server_handling_seconds", "ListJobs"),
                    )

                for _ in range(rounds):
                    for kind, path in paths.items():
                        client.get(path).raise_for_status()  # not counted: warms the path
                        gateway, scheduler = service_seconds()
                        started = time.perf_counter()
                        for _ in range(per_round):
                            client.get(path).raise_for_status()
                        spent[kind][0] += time.perf_counter() - started
                        gateway_after, scheduler_after = service_seconds()
                        spent[kind][1] += gateway_after - gateway
                        spent[kind][2] += scheduler_after - scheduler
    full, empty = ([v * 1000 / (per_round * rounds) for v in spent[k]] for k in paths)
    return {
        "scheduler: ListJobs": [full[2], empty[2]],
        "gateway, less the call": [full[1] - full[2], empty[1] - empty[2]],
        "client, uvicorn, network": [full[0] - full[1], empty[0] - empty[1]],
        "the whole request": [full[0], empty[0]],
    }


def print_split(title: str, column: str, found: dict[str, list[float]], total: str = "") -> None:
    print(f"{title}\n")
    print(f"{column:32} {'page ms':>8} {'empty ms':>9} {'µs a row':>9}")
    rows = dict(found)
    if total:
        rows[total] = [sum(v[0] for v in found.values()), sum(v[1] for v in found.values())]
    for name, (full, empty) in rows.items():
        print(f"{name:32} {full:8.3f} {empty:9.3f} {(full - empty) * 1000 / PAGE:9.1f}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=500, help="timed runs of each step")
    parser.add_argument(
        "--requests", type=int, default=600, help="requests of each page in the running system"
    )
    args = parser.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="jobsched-listcost-"))
    server = embedded_postgres(tmp / "postgres")
    try:
        found = asyncio.run(measure(server.get_uri(), args.runs))
    finally:
        server.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)
    steps = f"A page of {PAGE} jobs, step by step: p50 of {args.runs} runs"
    print_split(steps, "step", found, "all of these")
    print()
    where = f"The same page in the running system: means of {args.requests} requests"
    print_split(where, "where it runs", in_system(args.requests))


if __name__ == "__main__":
    main()
