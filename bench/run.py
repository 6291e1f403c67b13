"""Benchmarks the real system on this machine: `make bench` (or `--quick`).

Starts its own embedded PostgreSQL in a temporary directory and the scheduler, two
runners and the gateway as processes (`LocalSystem`), then measures:

1. the ceiling: how fast plain Python spawns `/bin/sh -c true` (one process, one per core);
2. drain: N `true` jobs inserted into the jobs table with one SQL statement, run with a
   limit of 64;
3. sustained: K clients creating jobs one by one through the REST API, then
   2 clients creating as many jobs as the drain, 100 a request (`POST /api/jobs/bulk`);
4. latency, open loop: creates sent on a fixed schedule; the job records its own start;
5. memory: peak RSS of each service process (sampled every 100 ms);
6. the drain again with the runner link and the gateway's calls over TLS (runners
   authenticate by token, as in compose): its ratio to the plaintext drain.

Also the CPU each process used in each phase, to show where the time goes. It reaches
the system only through the REST API and the SQL schema. Prints one table and writes
the figures as JSON (`--out`); `--keep` keeps the services' logs."""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import multiprocessing
import os
import shlex
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from jobsched_launcher import LocalSystem, throwaway_system
from measure import (
    RESULTS,
    Db,
    Json,
    columns,
    machine,
    percentile,
    rest,
    scratch,
    wait_runners,
    write_results,
)
from processes import Watcher, cmdline_of, service_processes

CAPACITY = 64  # per runner, and the scheduler's limit during the drain
DRAIN_KEYS = 100  # the drain over keys: this many keys ...
KEY_LIMIT = 2  # ... with this limit each (200 in all, above the global 64)
RUNNERS = 2
CONNECTIONS = 64  # most open-loop requests in flight at once
BULK = 100  # jobs in each request of the bulk sustained phase
BULK_CLIENTS = 2
IDLE_TIMEOUT = 120.0  # for the jobs of one phase to finish before the next
# Measured by their own scripts, which `make bench` runs after this one.
ELSEWHERE = {
    "peer comparison with pgqueuer": "bench/peer.py",
    "scale at 10^6 rows": "bench/scale.py",
}


# --- what to run -----------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    quick: bool
    drain_jobs: int
    ceiling_seconds: float
    sustained_seconds: float
    latency_seconds: float
    rates: tuple[int, ...]
    clients: int
    out: Path
    keep: bool

    @property
    def drain_timeout(self) -> float:
        return max(120.0, self.drain_jobs * 0.05)

    @staticmethod
    def from_args(argv: list[str] | None = None) -> Plan:
        parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
        parser.add_argument("--quick", action="store_true", help="smaller and shorter")
        parser.add_argument("--out", type=Path, default=RESULTS / "latest.json")
        parser.add_argument("--jobs", type=int, help="jobs in the drain (20000; quick 2000)")
        parser.add_argument("--seconds", type=float, help="length of each timed phase")
        parser.add_argument("--clients", type=int, default=8, help="sustained-phase clients")
        parser.add_argument("--rates", help="open-loop jobs/s, comma-separated (10,100,500)")
        parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs)")
        args = parser.parse_args(argv)
        quick: bool = args.quick
        seconds: float | None = args.seconds
        rates: tuple[int, ...] = (10, 100) if quick else (10, 100, 500)
        if args.rates:
            rates = tuple(int(r) for r in args.rates.split(","))
        plan = Plan(
            quick=quick,
            drain_jobs=args.jobs or (2_000 if quick else 20_000),
            ceiling_seconds=seconds or (3.0 if quick else 5.0),
            sustained_seconds=seconds or (5.0 if quick else 20.0),
            latency_seconds=seconds or (3.0 if quick else 10.0),
            rates=rates,
            clients=args.clients,
            out=args.out.resolve(),
            keep=args.keep,
        )
        if min(plan.drain_jobs, plan.clients, plan.latency_seconds, *plan.rates) <= 0:
            parser.error("--jobs, --clients, --seconds and --rates must be positive")
        return plan


# --- 1. the ceiling: plain Python spawning shells --------------------------------------


def spawn_loop(seconds: float) -> int:
    """Spawns `/bin/sh -c true` one after another for `seconds`, each as a runner does
    (its own session, stdout and stderr on one pipe read to the end), with nothing else
    in the way: the fastest a plain Python process spawns commands here."""
    count = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        proc = subprocess.Popen(
            ["/bin/sh", "-c", "true"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        assert proc.stdout is not None
        while proc.stdout.read(65536):
            pass
        proc.stdout.close()
        proc.wait()  # a timeout here would poll with sleeps, and halve the rate
        count += 1
    return count


def measure_ceiling(seconds: float) -> Json:
    single = spawn_loop(seconds) / seconds
    cores = os.cpu_count() or 1
    with multiprocessing.get_context("spawn").Pool(cores) as pool:
        counts = pool.map_async(spawn_loop, [seconds] * cores).get(timeout=seconds + 120)
    return {
        "seconds": seconds,
        "processes": cores,
        "single_process_spawns_per_s": single,
        "per_core_spawns_per_s": sum(counts) / seconds,
    }


# --- the system under test ---------------------------------------------------------------


def set_limit(client: httpx.Client, limit: int) -> None:
    reply = client.put("/api/config", json={"max_concurrent_jobs": limit})
    reply.raise_for_status()
    assert reply.json()["max_concurrent_jobs"] == limit


def epoch(value: Any) -> float:
    return float(value) if value is not None else math.nan


# --- 2. drain ------------------------------------------------------------------------------


def measure_drain(db: Db, jobs: int, timeout: float, ceiling: float, keys: int = 0) -> Json:
    """`jobs` trivial jobs inserted at once, run to the end; with `keys`, spread over that
    many concurrency keys, each with a limit of KEY_LIMIT."""
    before = db.max_id()
    if keys:
        db.conn.execute(
            "INSERT INTO concurrency_limits (key, max_concurrent_jobs) "
            "SELECT 'drain-key-' || k, %s FROM generate_series(1, %s) k ON CONFLICT DO NOTHING",
            (KEY_LIMIT, keys),
        )
    inserted_at = time.time()
    lo, hi, count = db.row(
        "WITH ins AS (INSERT INTO jobs (name, command, concurrency_key) "
        "SELECT %s || g, 'true', CASE WHEN %s > 0 THEN 'drain-key-' || (1 + g %% %s) END "
        "FROM generate_series(1, %s) g RETURNING id) "
        "SELECT min(id), max(id), count(*) FROM ins",
        (f"drain-{before}-", keys, max(keys, 1), jobs),
    )
    insert_seconds = time.time() - inserted_at
    finished = db.wait_finished(before, timeout)
    done_at = time.time()
    outcomes = db.outcomes(before)
    first_start, last_finish, busy, first_claim = db.row(
        "SELECT extract(epoch FROM min(started_at)), extract(epoch FROM max(finished_at)), "
        "extract(epoch FROM sum(finished_at - started_at)), "
        "(SELECT extract(epoch FROM min(claimed_at)) FROM job_attempts "
        " WHERE job_id BETWEEN %s AND %s) "
        "FROM jobs WHERE id BETWEEN %s AND %s",
        (lo, hi, lo, hi),
    )
    span = epoch(last_finish) - epoch(first_start)
    completed = outcomes.get("completed", 0)
    rate = completed / span if span > 0 else math.nan
    return {
        "jobs": int(count),
        "completed": completed,
        "failed": outcomes.get("failed", 0),
        "cancelled": outcomes.get("cancelled", 0),
        "lost": int(count) - completed,
        "timed_out": not finished,
        "insert_seconds": insert_seconds,
        "jobs_per_s": rate,
        "span_seconds": span,
        "wall_seconds": done_at - inserted_at,
        "ratio_to_per_core_ceiling": rate / ceiling if ceiling > 0 else math.nan,
        "first_claim_after_insert_ms": (epoch(first_claim) - inserted_at) * 1000,
        "first_start_after_insert_ms": (epoch(first_start) - inserted_at) * 1000,
        "mean_concurrency": epoch(busy) / span if span > 0 else math.nan,
    }


# --- 3. sustained, through the REST API -------------------------------------------------


def measure_sustained(
    db: Db,
    system: LocalSystem,
    clients: int,
    seconds: float,
    timeout: float,
    watcher: Watcher,
    batch: int = 1,
    requests: int | None = None,
) -> Json:
    """Clients creating jobs as fast as they are answered, for `seconds` or until each
    has sent `requests`: one job per request, or `batch` through the bulk endpoint."""
    before = db.max_id()
    created = [0] * clients
    errors = [0] * clients
    durations: list[list[float]] = [[] for _ in range(clients)]
    start = time.time()
    stop_at = time.monotonic() + seconds

    def client(index: int) -> None:
        with rest(system) as http:
            n = 0
            while time.monotonic() < stop_at and (requests is None or n < requests):
                t0 = time.perf_counter()
                jobs = [
                    {"name": f"sustained-{before}-{index}-{n}-{k}", "command": "true"}
                    for k in range(batch)
                ]
                try:
                    if batch == 1:
                        reply = http.post("/api/jobs/create", json=jobs[0])
                    else:
                        reply = http.post("/api/jobs/bulk", json={"jobs": jobs})
                    ok = reply.status_code == 201
                except httpx.HTTPError:
                    ok = False
                durations[index].append(time.perf_counter() - t0)
                n += 1
                if ok:
                    created[index] += batch
                else:
                    errors[index] += 1

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    cpu: Json = {}
    with watcher.measuring("sustained", cpu):  # while the clients send
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=seconds + 30)
    end = time.time()
    window = end - start
    backlog = db.unfinished(before)
    finished = db.wait_finished(before, timeout)
    outcomes = db.outcomes(before)
    in_window, last_finish = db.row(
        "SELECT count(*) FILTER (WHERE status = 'completed' AND finished_at <= to_timestamp(%s)), "
        "extract(epoch FROM max(finished_at)) FROM jobs WHERE id > %s",
        (end, before),
    )
    total = sum(created)
    completed = outcomes.get("completed", 0)
    all_durations = [d for per in durations for d in per]
    return {
        "clients": clients,
        "batch": batch,
        "seconds": window,
        "created": total,
        "errors": sum(errors),
        "created_per_s": total / window,
        "completed_in_window_per_s": int(in_window) / window,
        "completed_per_s": completed / (epoch(last_finish) - start) if completed else 0.0,
        "completed": completed,
        "lost": total - completed,
        "backlog_at_end": backlog,
        "timed_out": not finished,
        "request_p50_ms": percentile(all_durations, 50) * 1000 if all_durations else math.nan,
        "request_p99_ms": percentile(all_durations, 99) * 1000 if all_durations else math.nan,
        **cpu,
    }


# --- 4. latency, open loop ---------------------------------------------------------------


@dataclass
class OpenLoop:
    """What the sender saw: per request, when it was due, sent and answered (epoch s)."""

    requests: int
    due: dict[int, float] = field(default_factory=dict)
    sent: dict[int, float] = field(default_factory=dict)
    answered: dict[int, float] = field(default_factory=dict)
    failures: int = 0
    send_seconds: float = 0.0
    max_lag: float = 0.0


IDLE_SECONDS = 2.0  # well under uvicorn's 5 s keep-alive: a reused connection is open


class KeepAliveClient:
    """A minimal HTTP/1.1 client over a few keep-alive connections, for the open-loop
    sender: httpx.AsyncClient spends many times its CPU on a request, which on a small
    machine caps the sender below the rates to measure and takes the CPU the system
    needs. It only posts JSON and reads a sized answer."""

    def __init__(self, host: str, port: int, connections: int):
        self.host, self.port = host, port
        self.gate = asyncio.Semaphore(connections)
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]] = []

    async def post(self, path: str, payload: Json) -> tuple[int, float]:
        """Returns the status and when the request went out (epoch s)."""
        body = json.dumps(payload).encode()
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        async with self.gate:
            reader, writer = self._reuse() or await asyncio.open_connection(self.host, self.port)
            sent = time.time()
            try:
                writer.write(head + body)
                status, length, close = _parse_head(await reader.readuntil(b"\r\n\r\n"))
                await reader.readexactly(length)
            except BaseException:
                writer.close()
                raise
            if close:
                writer.close()
            else:
                self.idle.append((reader, writer, time.monotonic()))
            return status, sent

    def _reuse(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        while self.idle:
            reader, writer, used = self.idle.pop()  # the most recently used: surely open
            if time.monotonic() - used < IDLE_SECONDS and not reader.at_eof():
                return reader, writer
            writer.close()
        return None

    async def aclose(self) -> None:
        for _, writer, _ in self.idle:
            writer.close()
        self.idle.clear()


def _parse_head(head: bytes) -> tuple[int, int, bool]:
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    fields = {k.strip().lower(): v.strip().lower() for k, _, v in (x.partition(":") for x in lines)}
    if "content-length" not in fields:
        raise ValueError(f"answer without Content-Length: {lines[0]}")
    return status, int(fields["content-length"]), fields.get("connection") == "close"


async def open_loop(system: LocalSystem, rate: int, seconds: float, record: Path) -> OpenLoop:
    """Sends creates at `rate`/s on a fixed schedule, never waiting for an answer before
    the next is due. At most CONNECTIONS are in flight; a request due while all are busy
    waits for one, and that wait counts in its latency (measured from when it was due)."""
    loop = OpenLoop(requests=max(1, round(rate * seconds)))
    target = shlex.quote(str(record))
    tag = time.monotonic_ns()  # names are unique, and a phase may run twice
    client = KeepAliveClient("127.0.0.1", system.gateway_port, CONNECTIONS)

    async def create(i: int) -> None:
        name = f"latency-{rate}-{tag}-{i}"
        body = {"name": name, "command": f"date '+%s.%N {i}' >> {target}"}
        try:
            status, loop.sent[i] = await asyncio.wait_for(client.post("/api/jobs/create", body), 30)
        except (OSError, ValueError, TimeoutError, EOFError):
            loop.failures += 1  # IncompleteReadError is an EOFError
            return
        if status == 201:
            loop.answered[i] = time.time()
        else:
            loop.failures += 1

    try:
        tasks: list[asyncio.Task[None]] = []
        origin = time.monotonic() + 0.1
        wall = time.time() - time.monotonic()  # monotonic + wall = epoch
        for i in range(loop.requests):
            due = origin + i / rate
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            loop.max_lag = max(loop.max_lag, time.monotonic() - due)
            loop.due[i] = due + wall
            tasks.append(asyncio.create_task(create(i)))
        loop.send_seconds = time.monotonic() - origin
        _, pending = await asyncio.wait(tasks, timeout=120)
        for task in pending:
            task.cancel()
        loop.failures += len(pending)
    finally:
        await client.aclose()
    return loop


def measure_latency(
    db: Db, system: LocalSystem, rate: int, seconds: float, tmp: Path, watcher: Watcher
) -> Json:
    record = tmp / f"lat-{rate}"
    record.write_text("")
    before = db.max_id()
    cpu: Json = {}
    with watcher.measuring(f"latency {rate}", cpu):  # while the requests go out
        loop = asyncio.run(asyncio.wait_for(open_loop(system, rate, seconds, record), 300))
    finished = db.wait_finished(before, IDLE_TIMEOUT)
    starts: dict[int, float] = {}
    for line in record.read_text().splitlines():
        parts = line.split()
        if len(parts) == 2:
            starts[int(parts[1])] = float(parts[0])
    ran = [i for i in loop.answered if i in starts]
    after_answer = [(starts[i] - loop.answered[i]) * 1000 for i in ran]
    after_due = [(starts[i] - loop.due[i]) * 1000 for i in ran]
    request = [(loop.answered[i] - loop.sent[i]) * 1000 for i in loop.answered]
    queued = [(loop.sent[i] - loop.due[i]) * 1000 for i in loop.sent]
    result: Json = {
        "rate_per_s": rate,
        "client": "raw",  # the keep-alive client above
        "connections": CONNECTIONS,
        "requests": loop.requests,
        # The last request is due (requests - 1) / rate after the first.
        "achieved_send_rate_per_s": (loop.requests - 1) / loop.send_seconds
        if loop.requests > 1 and loop.send_seconds > 0
        else float(rate),
        "max_schedule_lag_ms": loop.max_lag * 1000,
        "failures": loop.failures,
        "started": len(ran),
        "lost": len(loop.answered) - len(ran),
        "timed_out": not finished,
        "started_before_answer": sum(1 for v in after_answer if v < 0),
        **cpu,
    }
    for prefix, values in (
        ("", after_answer),
        ("from_due_", after_due),
        ("request_", request),
        ("client_wait_", queued),
    ):
        if values:
            result[f"{prefix}p50_ms"] = percentile(values, 50)
            result[f"{prefix}p99_ms"] = percentile(values, 99)
            result[f"{prefix}max_ms"] = max(values)
    return result


# --- the run -----------------------------------------------------------------------------


def run(plan: Plan, tmp: Path, results: Json) -> None:
    print(f"ceiling: spawning /bin/sh -c true for {plan.ceiling_seconds:.0f}s...", flush=True)
    results["ceiling"] = ceiling = measure_ceiling(plan.ceiling_seconds)
    print("starting PostgreSQL and the system...", flush=True)
    env = {"RUNNER_CAPACITY": str(CAPACITY), "RUNNER_DRAIN_SECONDS": "5"}
    with throwaway_system(tmp, runners=RUNNERS, **env) as (system, server):
        results["meta"]["log_dir"] = str(tmp / "logs")
        with rest(system) as http:
            wait_runners(http, RUNNERS)
            set_limit(http, CAPACITY)
        pids = service_processes({name: proc.pid for name, proc in system.procs.items()})
        results["meta"]["services"] = {
            name: {"pid": pid, "cmdline": " ".join(cmdline_of(pid))} for name, pid in pids.items()
        }
        watcher = Watcher(pids, server.get_pid())
        db = Db(server.get_uri())
        watcher.start()
        try:
            phases(plan, tmp, results, db, system, watcher, ceiling["per_core_spawns_per_s"])
        finally:
            watcher.stop()
            db.close()
            results["memory"] = memory_figures(watcher)
        per_core = ceiling["per_core_spawns_per_s"]
        results["drain_tls"] = drain_over_tls(plan, system, server, results["drain"], per_core)


def drain_over_tls(
    plan: Plan, system: LocalSystem, server: Any, plain: Json, per_core: float
) -> Json:
    """The services started again over TLS (the launcher's JOBSCHED_TLS=tls: a CA made
    for the run), on the same database, and the same drain."""
    print(f"drain over TLS: {plan.drain_jobs} jobs...", flush=True)
    system.stop_all()
    system.env["JOBSCHED_TLS"] = "tls"
    system.start()
    with rest(system) as http:
        wait_runners(http, RUNNERS)
        set_limit(http, CAPACITY)
    db = Db(server.get_uri())
    try:
        figures = measure_drain(db, plan.drain_jobs, plan.drain_timeout, per_core)
    finally:
        db.close()
    figures["ratio_to_plaintext_drain"] = figures["jobs_per_s"] / plain["jobs_per_s"]
    return figures


def phases(
    plan: Plan,
    tmp: Path,
    results: Json,
    db: Db,
    system: LocalSystem,
    watcher: Watcher,
    per_core: float,
) -> None:
    """Drain, sustained, sustained bulk and latency, each once the last one's jobs ended."""
    print(f"drain: {plan.drain_jobs} jobs...", flush=True)
    drain: Json = {}
    results["drain"] = drain
    with watcher.measuring("drain", drain):
        drain.update(measure_drain(db, plan.drain_jobs, plan.drain_timeout, per_core))
    settle(db, "drain")
    print(f"drain over {DRAIN_KEYS} keys: {plan.drain_jobs} jobs...", flush=True)
    keyed = measure_drain(db, plan.drain_jobs, plan.drain_timeout, per_core, DRAIN_KEYS)
    keyed["ratio_to_keyless_drain"] = keyed["jobs_per_s"] / drain["jobs_per_s"]
    results["drain_keys"] = keyed
    settle(db, "drain over keys")
    print(f"sustained: {plan.clients} clients for {plan.sustained_seconds:.0f}s...", flush=True)
    results["sustained"] = measure_sustained(
        db, system, plan.clients, plan.sustained_seconds, IDLE_TIMEOUT, watcher
    )
    settle(db, "sustained")
    # As many jobs as the drain, so that the runners, not the API, set the pace.
    requests = max(1, round(plan.drain_jobs / (BULK_CLIENTS * BULK)))
    print(
        f"sustained bulk: {BULK_CLIENTS} clients, {requests} requests of {BULK} jobs each...",
        flush=True,
    )
    results["sustained_bulk"] = measure_sustained(
        db, system, BULK_CLIENTS, plan.drain_timeout, plan.drain_timeout, watcher, BULK, requests
    )
    latency: Json = {}
    results["latency"] = latency
    for rate in plan.rates:
        settle(db, "the previous phase")
        print(f"latency: {rate} jobs/s for {plan.latency_seconds:.0f}s...", flush=True)
        latency[str(rate)] = measure_latency(db, system, rate, plan.latency_seconds, tmp, watcher)


def settle(db: Db, after: str) -> None:
    if not db.wait_finished(0, IDLE_TIMEOUT):
        raise TimeoutError(f"jobs still unfinished after {after}")


def memory_figures(watcher: Watcher) -> Json:
    drain = watcher.peaks.get("drain", {})
    overall: dict[str, int] = {}
    for peaks in watcher.peaks.values():
        for name, kb in peaks.items():
            overall[name] = max(overall.get(name, 0), kb)
    return {
        "sample_interval_ms": watcher.interval * 1000,
        "samples": watcher.samples,
        "drain_peak_rss_mb": {name: kb / 1024 for name, kb in sorted(drain.items())},
        "overall_peak_rss_mb": {name: kb / 1024 for name, kb in sorted(overall.items())},
    }


# --- the table -----------------------------------------------------------------------------


def table(results: Json) -> str:
    rows: list[tuple[str, str, str]] = []

    def add(section: str, label: str, value: Any, unit: str, digits: int = 1) -> None:
        if isinstance(value, float) and not math.isnan(value):
            text = f"{value:,.{digits}f}"
        elif isinstance(value, bool):
            text = "yes" if value else "no"
        elif isinstance(value, int):
            text = f"{value:,}"
        else:
            text = str(value)
        rows.append((section, label, f"{text} {unit}".rstrip()))

    meta = results["meta"]
    if c := results.get("ceiling"):
        add("ceiling", "sh -c true, 1 process", c["single_process_spawns_per_s"], "spawns/s")
        add(
            "ceiling",
            f"sh -c true, {c['processes']} processes",
            c["per_core_spawns_per_s"],
            "spawns/s",
        )
    if d := results.get("drain"):
        add("drain", "jobs inserted (1 statement)", d["jobs"], "jobs")
        add("drain", "completed / lost", f"{d['completed']:,} / {d['lost']:,}", "jobs")
        add("drain", "throughput, first start→last finish", d["jobs_per_s"], "jobs/s")
        add("drain", "wall clock, insert→all terminal", d["wall_seconds"], "s", 2)
        add("drain", "ratio to per-core ceiling", d["ratio_to_per_core_ceiling"], "", 3)
        add("drain", "first start after insert", d["first_start_after_insert_ms"], "ms")
        add("drain", "mean jobs running (limit 64)", d["mean_concurrency"], "jobs")
        add("drain", "CPU used", _cpu(d), "cores")
    if d := results.get("drain_keys"):
        label = f"drain {DRAIN_KEYS} keys"
        add(
            label,
            f"completed / lost (limit {KEY_LIMIT} a key)",
            f"{d['completed']:,} / {d['lost']:,}",
            "jobs",
        )
        add(label, "throughput, first start→last finish", d["jobs_per_s"], "jobs/s")
        add(label, "ratio to the keyless drain", d["ratio_to_keyless_drain"], "", 3)
    if d := results.get("drain_tls"):
        add("drain over TLS", "completed / lost", f"{d['completed']:,} / {d['lost']:,}", "jobs")
        add("drain over TLS", "throughput, first start→last finish", d["jobs_per_s"], "jobs/s")
        add("drain over TLS", "ratio to the plaintext drain", d["ratio_to_plaintext_drain"], "", 3)
    for key, section in (("sustained", "sustained"), ("sustained_bulk", "sustained bulk")):
        if s := results.get(key):
            label = f"{s['clients']} clients, {s['seconds']:.1f}s"
            if s["batch"] > 1:
                label += f", {s['batch']} a request"
            add(section, f"created ({label})", s["created_per_s"], "jobs/s")
            if s["batch"] == 1:  # a bulk phase sends for a moment, then the runners catch up
                add(
                    section, "completed within the window", s["completed_in_window_per_s"], "jobs/s"
                )
            add(section, "completed, until the last finished", s["completed_per_s"], "jobs/s")
            add(section, "create request p50 / p99", _pair(s, "request"), "ms")
            add(section, "errors / lost", f"{s['errors']} / {s['lost']}", "")
            add(section, "CPU used while sending", _cpu(s), "cores")
    for rate, lat in results.get("latency", {}).items():
        section = f"latency {rate}/s"
        add(section, "answer→start p50 / p99", _pair(lat, ""), "ms")
        add(section, "answer→start max", lat.get("max_ms", math.nan), "ms")
        add(section, "due→start p50 / p99 (open loop)", _pair(lat, "from_due"), "ms")
        add(section, "create request p50 / p99", _pair(lat, "request"), "ms")
        add(
            section,
            "sent rate / failures / lost",
            f"{lat['achieved_send_rate_per_s']:.1f}/s / {lat['failures']} / {lat['lost']}",
            "",
        )
        add(section, "CPU used while sending", _cpu(lat), "cores")
    if m := results.get("memory"):
        for name, mb in m["drain_peak_rss_mb"].items():
            add("memory", f"peak RSS during drain: {name}", mb, "MB")
    for item, script in ELSEWHERE.items():
        add("see", item, script, "")
    load = meta["load_average_at_start"][0]
    head = (
        f"jobsched bench {meta['date']}  {meta['cores']} cores  {meta['cpu']}  "
        f"load {load:.2f}  {'quick' if meta['quick'] else 'full'}"
    )
    return "\n".join([head, "-" * len(head), *columns(rows)])


def _pair(figures: Json, prefix: str) -> str:
    key = f"{prefix}_" if prefix else ""
    p50, p99 = figures.get(f"{key}p50_ms"), figures.get(f"{key}p99_ms")
    return "n/a" if p50 is None or p99 is None else f"{p50:,.1f} / {p99:,.1f}"


def _cpu(figures: Json) -> str:
    used: dict[str, float] = figures.get("cpu_cores_used", {})
    return ", ".join(f"{name} {value:.2f}" for name, value in used.items())


def main(argv: list[str] | None = None) -> int:
    plan = Plan.from_args(argv)
    results: Json = {
        "meta": {
            **machine(),
            "quick": plan.quick,
            "runners": RUNNERS,
            "runner_capacity": CAPACITY,
            "max_concurrent_jobs": CAPACITY,
            "plan": {
                "drain_jobs": plan.drain_jobs,
                "ceiling_seconds": plan.ceiling_seconds,
                "sustained_seconds": plan.sustained_seconds,
                "latency_seconds": plan.latency_seconds,
                "rates": list(plan.rates),
                "clients": plan.clients,
                "latency_client": "raw",
            },
        },
        "measured_elsewhere": ELSEWHERE,
    }
    try:
        with scratch("jobsched-bench-", plan.keep) as tmp:
            run(plan, tmp, results)
    except BaseException as exc:
        results["error"] = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        results["meta"]["load_average_at_end"] = list(os.getloadavg())
        print()
        print(table(results))
        write_results(plan.out, results)
    return 1 if anything_lost(results) else 0


def anything_lost(results: Json) -> bool:
    kinds = ("drain", "drain_keys", "drain_tls", "sustained", "sustained_bulk")
    phases: list[Json] = [results.get(key, {}) for key in kinds]
    phases += list(results.get("latency", {}).values())
    return any(p.get("lost", 0) or p.get("timed_out", False) for p in phases)


if __name__ == "__main__":
    sys.exit(main())
