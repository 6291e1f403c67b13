"""Measures the front door: single `POST /api/jobs/create` through the real gateway.

Starts its own embedded PostgreSQL in a temporary directory and the scheduler, two
runners and the gateway as processes (`LocalSystem`), then measures:

1. closed loop with wrk (scripts/ensure_wrk.sh installs it): `/healthz` (the gateway
   alone), then creates with unique names (a Lua script) with the runners held off (none
   connected yet, so that no job is claimed and only the front door works); creates/s,
   latency, and CPU seconds per create of the gateway, the scheduler and PostgreSQL
   (from /proc/<pid>/stat before and after);
2. open loop at a fixed rate (500/s) from a small asyncio generator over many keep-alive
   connections: first against `/healthz`, to show the generator keeps the rate, then
   creates; latency from when each request was due;
3. a REST-fed drain: the earlier phases' jobs deleted and vacuumed away, the runners
   started, 16 clients each create their share of 2,000 `true` jobs one request at a
   time; first create to last finish, as a ratio of how fast one plain Python process
   spawns `/bin/sh -c true` (bench/run.py's ceiling), measured just before and just
   after the drain (their mean); three rounds, the median shown, after a warm-up drain
   of 500 jobs that is shown but not counted (the first drain after the runners start
   makes their job cgroups, and fills the prepared statements and plan caches: it ran
   a tenth slower than the next ones). `--drain-only` runs just these drains, on a
   fresh system: alternate two versions' runs to compare them.

It reaches the system only through the REST API and the SQL schema. Prints one table
and writes the figures as JSON (`--out`). Run it with another checkout's Python to
measure that checkout's services the same way (`/other/.venv/bin/python
bench/front_door.py`): the services are the ones installed beside the Python running it."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
from processes import Watcher, service_processes
from run import spawn_loop

ROOT = Path(__file__).resolve().parent.parent
CAPACITY = 64  # per runner, and the limit during the drain
RUNNERS = 2
WRK_THREADS = 2
WRK_CONNECTIONS = 16
OPEN_LOOP_CONNECTIONS = 64
DRAIN_CLIENTS = 16
GOALS = {"creates_per_s": 1000.0, "open_loop_p99_ms": 20.0, "drain_ratio": 0.5}

WRK_SCRIPT = """
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
function init(args)
  prefix = args[1] .. "-" .. tid .. "-"
  n = 0
end
function request()
  n = n + 1
  return wrk.format("POST", "/api/jobs/create", {["Content-Type"] = "application/json"},
    '{"name":"' .. prefix .. n .. '","command":"true"}')
end
"""
WRK_REPORT = """
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'FIGURES {"requests":%d,"duration_us":%d,"status_errors":%d,"socket_errors":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d}\\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
"""


# --- wrk ----------------------------------------------------------------------------------


def wrk(url: str, seconds: float, script: str, args: list[str], tmp: Path) -> Json:
    """One wrk run; its figures, from the report its Lua `done` writes."""
    path = tmp / f"wrk-{time.monotonic_ns()}.lua"
    path.write_text(script + WRK_REPORT)
    command = [
        "wrk",
        f"-t{WRK_THREADS}",
        f"-c{WRK_CONNECTIONS}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "10s",
        "-s",
        str(path),
        url,
        "--",
        *args,
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=True, timeout=seconds + 60)
    found = re.search(r"^FIGURES (\{.*\})$", done.stdout, re.MULTILINE)
    assert found, done.stdout + done.stderr
    figures: Json = json.loads(found.group(1))
    seconds_run = figures["duration_us"] / 1e6
    return {
        "requests": figures["requests"],
        "per_s": figures["requests"] / seconds_run,
        "seconds": seconds_run,
        "status_errors": figures["status_errors"],
        "socket_errors": figures["socket_errors"],
        **{k.replace("_us", "_ms"): v / 1000 for k, v in figures.items() if k.endswith("_us")},
        "threads": WRK_THREADS,
        "connections": WRK_CONNECTIONS,
    }


def cpu_per_job(
    before: dict[str, float],
    after: dict[str, float],
    jobs: int,
    wanted: tuple[str, ...] = ("gateway", "scheduler", "postgres"),
) -> Json:
    """CPU milliseconds per job, by process, over a phase that made (or ran) `jobs`."""
    return {
        name: round((after[name] - before[name]) * 1000 / max(jobs, 1), 3)
        for name in wanted
        if name in before
    }


# --- an open-loop generator -----------------------------------------------------------------


@dataclass
class Connections:
    """A minimal HTTP/1.1 client over keep-alive connections: httpx spends many times
    the CPU a request needs here, and would be the bottleneck on two cores."""

    host: str
    port: int
    most: int
    idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = field(default_factory=list)
    opened: int = 0

    async def request(self, method: str, path: str, body: bytes = b"") -> int:
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        if self.idle:
            reader, writer = self.idle.pop()
        else:
            self.opened += 1
            reader, writer = await asyncio.open_connection(self.host, self.port)
        try:
            writer.write(head + body)
            status, length = _head(await reader.readuntil(b"\r\n\r\n"))
            await reader.readexactly(length)
        except BaseException:
            writer.close()
            raise
        self.idle.append((reader, writer))
        return status

    def close(self) -> None:
        for _, writer in self.idle:
            writer.close()
        self.idle.clear()


def _head(head: bytes) -> tuple[int, int]:
    lines = head.decode("latin-1").split("\r\n")
    length = next(
        int(line.split(":", 1)[1]) for line in lines if line.lower().startswith("content-length:")
    )
    return int(lines[0].split(" ", 2)[1]), length


async def open_loop(
    system: LocalSystem, rate: int, seconds: float, method: str, path: str, tag: str
) -> Json:
    """Sends requests at `rate`/s on a fixed schedule, at most OPEN_LOOP_CONNECTIONS in
    flight (a request due while all are busy waits, and the wait counts): latency from
    when each request was due to its answer."""
    client = Connections("127.0.0.1", system.gateway_port, OPEN_LOOP_CONNECTIONS)
    gate = asyncio.Semaphore(OPEN_LOOP_CONNECTIONS)
    latencies: list[float] = []
    failures = 0
    kinds: dict[str, int] = {}
    count = round(rate * seconds)
    max_lag = 0.0

    async def one(i: int, due: float) -> None:
        nonlocal failures
        body = b""
        if method == "POST":
            body = json.dumps({"name": f"{tag}-{i}", "command": "true"}).encode()
        async with gate:
            try:
                status = await asyncio.wait_for(client.request(method, path, body), 30)
            except (OSError, EOFError, TimeoutError, ValueError) as exc:
                failures += 1
                kinds[type(exc).__name__] = kinds.get(type(exc).__name__, 0) + 1
                return
        if status // 100 != 2:
            failures += 1
            kinds[str(status)] = kinds.get(str(status), 0) + 1
            return
        latencies.append((time.monotonic() - due) * 1000)

    origin = time.monotonic() + 0.1
    tasks = []
    for i in range(count):
        due = origin + i / rate
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        max_lag = max(max_lag, time.monotonic() - due)
        tasks.append(asyncio.create_task(one(i, due)))
    sent_in = time.monotonic() - origin
    await asyncio.gather(*tasks)
    client.close()
    return {
        "rate_per_s": rate,
        "requests": count,
        "sent_rate_per_s": (count - 1) / sent_in if count > 1 and sent_in > 0 else float(rate),
        "max_schedule_lag_ms": max_lag * 1000,
        "failures": failures,
        "failure_kinds": kinds,
        "connections_opened": client.opened,
        "p50_ms": percentile(latencies, 50) if latencies else None,
        "p99_ms": percentile(latencies, 99) if latencies else None,
        "max_ms": max(latencies) if latencies else None,
    }


# --- the REST-fed drain ---------------------------------------------------------------------


async def feed(system: LocalSystem, jobs: int, clients: int, tag: str) -> tuple[int, int]:
    """`clients` workers, each creating its share of `jobs` one request after another;
    returns (created, failed)."""
    client = Connections("127.0.0.1", system.gateway_port, clients)
    created = failed = 0

    async def worker(index: int) -> None:
        nonlocal created, failed
        for n in range(index, jobs, clients):
            body = json.dumps({"name": f"{tag}-{n}", "command": "true"}).encode()
            if await client.request("POST", "/api/jobs/create", body) == 201:
                created += 1
            else:
                failed += 1

    await asyncio.gather(*(worker(i) for i in range(clients)))
    client.close()
    return created, failed


def measure_drain(db: Db, system: LocalSystem, jobs: int) -> Json:
    before = db.max_id()
    started = time.time()
    created, failed = asyncio.run(feed(system, jobs, DRAIN_CLIENTS, f"drain-{before}"))
    fed = time.time() - started
    finished = db.wait_finished(before, 300)
    last, completed = db.row(
        "SELECT extract(epoch FROM max(finished_at)), count(*) FILTER (WHERE status = "
        "'completed') FROM jobs WHERE id > %s",
        (before,),
    )
    span = float(last) - started if last is not None else float("nan")
    rate = int(completed) / span if span > 0 else float("nan")
    return {
        "jobs": jobs,
        "clients": DRAIN_CLIENTS,
        "created": created,
        "failed": failed,
        "completed": int(completed),
        "timed_out": not finished,
        "feed_seconds": fed,
        "span_seconds": span,
        "jobs_per_s": rate,
    }


def spawn_rate(seconds: float) -> float:
    print(f"ceiling: spawning /bin/sh -c true for {seconds:.0f}s...", flush=True)
    return spawn_loop(seconds) / seconds


# --- the run --------------------------------------------------------------------------------


def set_config(system: LocalSystem, **body: Any) -> None:
    with rest(system) as http:
        http.put("/api/config", json=body).raise_for_status()


def run(args: argparse.Namespace, tmp: Path, results: Json) -> None:
    env = {"RUNNER_CAPACITY": str(CAPACITY), "RUNNER_DRAIN_SECONDS": "5"}
    with throwaway_system(tmp, runners=0, **env) as (system, server):
        set_config(system, max_concurrent_jobs=CAPACITY)
        pids = service_processes({name: proc.pid for name, proc in system.procs.items()})
        watcher = Watcher(pids, server.get_pid())
        db = Db(server.get_uri())
        try:
            if not args.drain_only:
                front_door_phases(args, tmp, results, db, system, watcher)
            start_runners(system, watcher)
            results["drain"] = drain_rounds(args, db, system, watcher)
        finally:
            db.close()


def start_runners(system: LocalSystem, watcher: Watcher) -> None:
    for index in range(1, RUNNERS + 1):
        system.start_runner(index)
    with rest(system) as http:
        wait_runners(http, RUNNERS)
    watcher.pids = service_processes({name: proc.pid for name, proc in system.procs.items()})


def front_door_phases(
    args: argparse.Namespace,
    tmp: Path,
    results: Json,
    db: Db,
    system: LocalSystem,
    watcher: Watcher,
) -> None:
    """wrk and the open loop, with no runner connected."""
    url, seconds = system.gateway_url, args.seconds
    print(f"wrk: /healthz for {seconds:.0f}s...", flush=True)
    results["wrk_healthz"] = wrk(f"{url}/healthz", seconds, "", [], tmp)
    print(f"wrk: creates for {seconds:.0f}s (no runner connected)...", flush=True)
    before_id, cpu_before = db.max_id(), watcher.cpu()
    creates = wrk(url, seconds, WRK_SCRIPT, [f"wrk-{before_id}"], tmp)
    made = int(db.one("SELECT count(*) FROM jobs WHERE id > %s", (before_id,)))
    creates["jobs_in_table"] = made
    creates["cpu_ms_per_create"] = cpu_per_job(cpu_before, watcher.cpu(), made)
    results["wrk_create"] = creates
    rate = args.rate
    print(f"open loop: /healthz at {rate}/s for {seconds:.0f}s...", flush=True)
    results["open_loop_healthz"] = asyncio.run(
        open_loop(system, rate, seconds, "GET", "/healthz", "")
    )
    print(f"open loop: creates at {rate}/s for {seconds:.0f}s...", flush=True)
    results["open_loop_create"] = asyncio.run(
        open_loop(system, rate, seconds, "POST", "/api/jobs/create", f"open-{db.max_id()}")
    )
    db.conn.execute("TRUNCATE jobs CASCADE")  # the queued creates would join the drain


def drain_rounds(args: argparse.Namespace, db: Db, system: LocalSystem, watcher: Watcher) -> Json:
    """The drain a few times, each against the ceiling measured just before and just
    after it (their mean): on a shared machine spawning can be a third slower a minute
    later, and one drain of a few seconds can fall in a neighbour's burst. The median
    round, by ratio, with every round's figures."""
    warmup = None
    if args.warmup_jobs:
        print(f"warm-up drain: {args.warmup_jobs} true jobs...", flush=True)
        warmup = measure_drain(db, system, args.warmup_jobs)
    rounds: list[Json] = []
    ceilings = [spawn_rate(args.ceiling_seconds)]
    for index in range(args.drain_rounds):
        # Each round starts on a vacuumed table, as in a system of its own, not with
        # autovacuum sweeping the dead rows of what came before during it.
        db.conn.execute("VACUUM ANALYZE")
        print(
            f"drain {index + 1}/{args.drain_rounds}: {args.drain_jobs} true jobs from "
            f"{DRAIN_CLIENTS} clients...",
            flush=True,
        )
        cpu_before = watcher.cpu()
        drain = measure_drain(db, system, args.drain_jobs)
        after = watcher.cpu()
        drain["cpu_ms_per_job"] = cpu_per_job(cpu_before, after, drain["completed"], tuple(after))
        ceilings.append(spawn_rate(args.ceiling_seconds))
        around = (ceilings[-2], ceilings[-1])
        ceiling = sum(around) / 2
        drain["single_process_ceilings_per_s"] = around
        drain["single_process_ceiling_per_s"] = ceiling
        drain["ratio_to_single_process_ceiling"] = drain["jobs_per_s"] / ceiling
        rounds.append(drain)
    by_ratio = sorted(rounds, key=lambda d: float(d["ratio_to_single_process_ceiling"]))
    return {**by_ratio[len(by_ratio) // 2], "rounds": rounds, "warmup": warmup}


def table(results: Json) -> str:
    meta = results["meta"]
    rows: list[tuple[str, str]] = []
    h, c = results.get("wrk_healthz"), results.get("wrk_create")
    if h:
        rows.append(("wrk /healthz", f"{h['per_s']:,.0f}/s  p50 {h['p50_ms']:.1f} ms"))
    if c:
        rows.append(
            (
                f"wrk creates ({c['threads']} threads, {c['connections']} connections)",
                f"{c['per_s']:,.0f}/s  p50 {c['p50_ms']:.1f} / p99 {c['p99_ms']:.1f} ms  "
                f"errors {c['status_errors'] + c['socket_errors']}  "
                f"in table {c['jobs_in_table']:,}",
            )
        )
        cpu = c["cpu_ms_per_create"]
        rows.append(
            ("CPU ms per create", "  ".join(f"{name} {ms:.2f}" for name, ms in cpu.items()))
        )
    for key, label in (("open_loop_healthz", "/healthz"), ("open_loop_create", "creates")):
        if o := results.get(key):
            rows.append(
                (
                    f"open loop {label} at {o['rate_per_s']}/s",
                    f"sent {o['sent_rate_per_s']:,.0f}/s  p50 {o['p50_ms'] or 0:.1f} / "
                    f"p99 {o['p99_ms'] or 0:.1f} / max {o['max_ms'] or 0:.1f} ms  "
                    f"failures {o['failures']}",
                )
            )
    if d := results.get("drain"):
        rows.append(
            (
                f"REST-fed drain ({d['jobs']:,} jobs, {d['clients']} clients)",
                f"{d['jobs_per_s']:,.0f} jobs/s = {d['ratio_to_single_process_ceiling']:.2f} of "
                f"{d['single_process_ceiling_per_s']:,.0f} spawns/s "
                f"(before {d['single_process_ceilings_per_s'][0]:,.0f}, after "
                f"{d['single_process_ceilings_per_s'][1]:,.0f})  completed {d['completed']:,}",
            )
        )
        ratios = ", ".join(f"{r['ratio_to_single_process_ceiling']:.2f}" for r in d["rounds"])
        rows.append((f"  every round ({len(d['rounds'])}, the median above)", ratios))
        if w := d.get("warmup"):
            rows.append(
                (
                    "  warm-up before them, not counted",
                    f"{w['jobs']:,} jobs at {w['jobs_per_s']:,.0f}/s",
                )
            )
        cpu = d["cpu_ms_per_job"]
        rows.append(
            (
                "  CPU ms per job",
                "  ".join(f"{name} {ms:.2f}" for name, ms in cpu.items())
                + f"  (sum {sum(cpu.values()):.2f})",
            )
        )
    load = meta["load_average_at_start"][0]
    head = f"front door {meta['date']}  {meta['cores']} cores  {meta['cpu']}  load {load:.2f}"
    return "\n".join([head, "-" * len(head), *columns(rows)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each phase")
    parser.add_argument("--rate", type=int, default=500, help="open-loop requests/s")
    parser.add_argument("--drain-jobs", type=int, default=2000)
    parser.add_argument("--drain-rounds", type=int, default=3, help="the median is shown")
    parser.add_argument("--warmup-jobs", type=int, default=500, help="a drain not counted")
    parser.add_argument("--ceiling-seconds", type=float, default=5.0)
    parser.add_argument(
        "--drain-only",
        action="store_true",
        help="only the drain's rounds, on a fresh system: for comparing two versions",
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "front_door.json")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs)")
    args = parser.parse_args(argv)
    subprocess.run(["bash", str(ROOT / "scripts" / "ensure_wrk.sh")], check=True)
    assert shutil.which("wrk"), "wrk is missing"
    results: Json = {"meta": {**machine(), "python": sys.executable, "goals": GOALS}}
    try:
        with scratch("jobsched-front-door-", args.keep) as tmp:
            run(args, tmp, results)
    finally:
        results["meta"]["load_average_at_end"] = list(os.getloadavg())
        print()
        with contextlib.suppress(KeyError, TypeError):
            print(table(results))
        write_results(args.out.resolve(), results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
