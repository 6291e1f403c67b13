"""`make chaos`: 10,000 jobs through the real system (half created one by one, half in
bulk requests of 20; three of every four under one of three concurrency keys) while it
is abused: the global limit and the keys' limits change every few seconds, a runner is
killed (-9) every few seconds, the scheduler is killed three times, PostgreSQL is
restarted once. Then the commands' own log is checked: nothing lost, nothing started
twice, neither the global limit nor any key's limit ever exceeded."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
from jobsched_launcher import (
    LocalSystem,
    embedded_postgres,
    free_port,
    port_open,
    wait_for,
)

from tests.checker import History

ROOT = Path(__file__).resolve().parent.parent

TERMINAL = ("completed", "failed", "cancelled")
LIMIT_GRACE = 1.0  # a start claimed just before a lowering may land just after it
BULK = 20  # jobs in each bulk request of the submitter
LIMITED_KEYS = ["k0", "k1", "k2"]
KEYS = [*LIMITED_KEYS, None]  # job i's key: KEYS[i % 4]


@dataclass
class Chaos:
    system: LocalSystem
    database_url: str
    # (request sent, answer received, limit): the change took effect in between.
    limits: list[tuple[float, float, int]] = field(default_factory=list)
    # The same for each key's limit.
    key_limits: dict[str, list[tuple[float, float, int]]] = field(default_factory=dict)
    # Runner name -> when it was killed, until none of its attempts is running.
    pending_kills: dict[str, float] = field(default_factory=dict)
    detections: list[float] = field(default_factory=list)
    scheduler_kills: int = 0
    postgres_restarts: int = 0
    generation: int = 0

    def sql(self, query: str, params: Any = None) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.database_url, autocommit=True, connect_timeout=3) as conn:
            cur = conn.execute(query.encode(), params)
            return cur.fetchall() if cur.description else []

    def set_limit(self, limit: int) -> None:
        sent = time.time()
        try:
            reply = httpx.put(
                f"{self.system.gateway_url}/api/config",
                json={"max_concurrent_jobs": limit},
                timeout=10,
            )
        except httpx.HTTPError:
            return  # down for a moment: the next change will do
        if reply.status_code == 200:
            self.limits.append((sent, time.time(), limit))

    def set_key_limit(self, key: str, limit: int) -> None:
        sent = time.time()
        try:
            reply = httpx.put(
                f"{self.system.gateway_url}/api/limits/{key}",
                json={"max_concurrent_jobs": limit},
                timeout=10,
            )
        except httpx.HTTPError:
            return
        if reply.status_code == 200:
            self.key_limits.setdefault(key, []).append((sent, time.time(), limit))

    def kill_runner(self) -> None:
        runners = [n for n in self.system.procs if n.startswith("runner")]
        victim = random.choice(runners)
        self.system.procs.pop(victim).send_signal(signal.SIGKILL)
        self.pending_kills[victim] = time.monotonic()
        self.generation += 1
        name = f"runner-g{self.generation}"
        self.system.spawn(name, "jobsched-runner", RUNNER_ID=name, RUNNER_CAPACITY="64")

    def note_detections(self) -> None:
        """A killed runner is detected once none of its attempts is still running."""
        if not self.pending_kills:
            return
        try:
            rows = self.sql(
                "SELECT runner_id FROM jobs WHERE status = 'running' AND runner_id = ANY(%s)",
                (list(self.pending_kills),),
            )
        except psycopg.OperationalError:
            return
        still = {r[0] for r in rows}
        for name in [n for n in self.pending_kills if n not in still]:
            took = time.monotonic() - self.pending_kills.pop(name)
            self.detections.append(took)
            if took > 15:
                print(f"runner {name} detected after {took:.1f}s", flush=True)

    def terminal(self) -> int:
        try:
            rows = self.sql("SELECT count(*) FROM jobs WHERE status = ANY(%s)", (list(TERMINAL),))
        except psycopg.OperationalError:
            return -1  # the database is being restarted
        return int(rows[0][0])

    def kill_scheduler(self) -> None:
        self.system.procs.pop("scheduler").send_signal(signal.SIGKILL)
        self.scheduler_kills += 1
        time.sleep(0.5)
        self.system.start_scheduler()
        wait_for(lambda: port_open(self.system.scheduler_addr), 30, "scheduler")


async def submit(gateway: str, count: int, log: Path, concurrency: int = 16) -> int:
    """Half the jobs one by one, half in bulk requests of BULK; returns how many the API
    accepted."""
    tag = "$JOBSCHED_JOB_ID.$JOBSCHED_ATTEMPT"
    command = (
        f'echo "start {tag} $(date +%s.%N)" >> {log}; sleep 0.05; '
        f'echo "end {tag} $(date +%s.%N)" >> {log}'
    )
    accepted = 0
    queue: asyncio.Queue[range] = asyncio.Queue()
    half = count // 2
    for i in range(half):
        queue.put_nowait(range(i, i + 1))
    for i in range(half, count, BULK):
        queue.put_nowait(range(i, min(i + BULK, count)))

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal accepted
        while not queue.empty():
            batch = queue.get_nowait()
            jobs = [
                {
                    "name": f"chaos-{i}",
                    "command": command,
                    "max_attempts": 5,
                    "concurrency_key": KEYS[i % len(KEYS)],
                }
                for i in batch
            ]
            path, body = (
                ("/api/jobs/create", jobs[0])
                if len(jobs) == 1
                else ("/api/jobs/bulk", {"jobs": jobs})
            )
            for _ in range(100):  # the system may be down for a moment: try again
                try:
                    reply = await client.post(path, json=body)
                except httpx.HTTPError:
                    reply = None
                if reply is not None and reply.status_code in (201, 409):
                    # 409 on a retry: the first try was stored but its answer was lost. A
                    # bulk request is all or none, so then every job of it was stored.
                    accepted += len(jobs)
                    break
                await asyncio.sleep(0.2)

    async with httpx.AsyncClient(base_url=gateway, timeout=10) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    return accepted


def limit_in_force(limits: list[tuple[float, float, int]], at: float) -> int:
    """The highest limit that may have been in force at a moment: the last change surely
    done by then, and any change under way around it. A lowering also spares starts
    claimed just before it (LIMIT_GRACE)."""
    candidates = [limits[0][2]]
    for _sent, done, limit in limits:
        if done <= at - LIMIT_GRACE:
            candidates = [limit]
    candidates += [limit for sent, done, limit in limits if sent <= at <= done + LIMIT_GRACE]
    return max(candidates)


def limit_violations(
    history: History, ends: dict[str, float], limits: list[tuple[float, float, int]]
) -> tuple[int, list[str]]:
    """(peak concurrency, starts that exceeded the limit in force). A command killed
    with its runner logged no end: it counts as running until its attempt was ended."""
    events: list[tuple[float, int, str]] = []
    for tag, starts in history.starts.items():
        events += [(at, 1, tag) for at in starts]
        end = history.ends.get(tag, [ends.get(tag, float("inf"))])[0]
        events.append((end, -1, tag))
    events.sort(key=lambda e: (e[0], e[1]))
    running = peak = 0
    over: list[str] = []
    for at, delta, tag in events:
        running += delta
        if delta > 0:
            peak = max(peak, running)
            if running > limit_in_force(limits, at):
                near = [
                    (round(s - at, 2), round(d - at, 2), lim)
                    for s, d, lim in limits
                    if abs(s - at) < 5
                ]
                over.append(f"{tag} at {at:.3f}: {running} running; limits near: {near}")
    return peak, over


def submit_in_background(
    gateway: str, count: int, log: Path
) -> tuple[threading.Thread, dict[str, int]]:
    result: dict[str, int] = {}

    def run() -> None:
        result["accepted"] = asyncio.run(submit(gateway, count, log))

    thread = threading.Thread(target=run)
    thread.start()
    return thread, result


def abuse(chaos: Chaos, server: Any, result: dict[str, int]) -> None:
    """The faults, on a schedule, until every accepted job has ended."""
    plan = {10.0: "scheduler", 25.0: "postgres", 35.0: "scheduler", 50.0: "scheduler"}
    started = time.monotonic()
    next_limit = next_kill = 0.0
    while time.monotonic() - started < 900:
        elapsed = time.monotonic() - started
        if "accepted" in result and chaos.terminal() >= result["accepted"]:
            return
        for at, what in sorted(plan.items()):
            if elapsed >= at:
                del plan[at]
                print(f"{elapsed:6.1f}s  {what} down", flush=True)
                if what == "scheduler":
                    chaos.kill_scheduler()
                else:
                    server.stop()
                    time.sleep(3)  # the outage itself
                    server.ensure_postgres_running()
                    chaos.postgres_restarts += 1
        if elapsed >= next_limit:
            chaos.set_limit(random.randint(1, 64))
            chaos.set_key_limit(random.choice(LIMITED_KEYS), random.randint(1, 12))
            next_limit = elapsed + 3
        if elapsed >= next_kill and elapsed > 2:
            chaos.kill_runner()
            next_kill = elapsed + 4
        chaos.note_detections()
        time.sleep(0.2)
    print("gave up after 15 minutes", flush=True)


def check(chaos: Chaos, log: Path, accepted: int, seconds: float) -> dict[str, Any]:
    history = History.read(log)
    ended = chaos.sql(
        "SELECT job_id, attempt, finished_at FROM job_attempts WHERE finished_at IS NOT NULL"
    )
    ends = {f"{job}.{attempt}": at.timestamp() for job, attempt, at in ended}
    peak, over = limit_violations(history, ends, chaos.limits)
    for line in over[:10]:
        print("over the limit:", line)
    key_of = dict(chaos.sql("SELECT id::text, concurrency_key FROM jobs"))
    over_keys: list[str] = []
    for key, limits in chaos.key_limits.items():
        tags = [tag for tag in history.starts if key_of.get(tag.split(".")[0]) == key]
        own = History(
            {t: history.starts[t] for t in tags},
            {t: history.ends.get(t, []) for t in tags if t in history.ends},
        )
        over_keys += [f"{key}: {line}" for line in limit_violations(own, ends, limits)[1]]
    for line in over_keys[:10]:
        print("over a key's limit:", line)
    statuses = dict(chaos.sql("SELECT status, count(*) FROM jobs GROUP BY status"))
    terminal = chaos.terminal()
    return {
        "jobs_accepted": accepted,
        "jobs_terminal": terminal,
        "jobs_lost": accepted - terminal,
        "statuses": statuses,
        "attempts_started": sum(len(v) for v in history.starts.values()),
        "duplicate_starts": len(history.duplicate_starts()),
        "peak_concurrency": peak,
        "max_limit_set": max(lim for _, _, lim in chaos.limits),
        "starts_over_the_limit": len(over),
        "starts_over_a_key_limit": len(over_keys),
        "key_limit_changes": sum(len(limits) for limits in chaos.key_limits.values()),
        "limit_changes": len(chaos.limits),
        "runners_killed": len(chaos.detections) + len(chaos.pending_kills),
        "schedulers_killed": chaos.scheduler_kills,
        "postgres_restarts": chaos.postgres_restarts,
        "lost_runner_detection_max_s": round(max(chaos.detections, default=0.0), 2),
        "runners_never_detected": len(chaos.pending_kills),
        "seconds": round(seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--runners", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "tests" / "artifacts" / "chaos.json")
    args = parser.parse_args()
    shutil.rmtree(args.out.parent / "chaos-logs", ignore_errors=True)
    with tempfile.TemporaryDirectory(prefix="jobsched-chaos-") as tmp:
        work = Path(tmp)
        server = embedded_postgres(work / "pg")
        url = server.get_uri()
        env = {"DATABASE_URL": url, "RUNNER_CAPACITY": "64", "LOG_LEVEL": "WARNING"}
        system = LocalSystem(
            {**os.environ, **env},
            runners=args.runners,
            gateway_port=free_port(),
            scheduler_port=free_port(),
            log_dir=args.out.parent / "chaos-logs",
        )
        chaos = Chaos(system, url)
        log = work / "history.log"
        try:
            system.start()
            chaos.set_limit(8)
            for key in LIMITED_KEYS:
                chaos.set_key_limit(key, 3)
            started = time.monotonic()
            thread, result = submit_in_background(system.gateway_url, args.jobs, log)
            abuse(chaos, server, result)
            thread.join()
            figures = check(chaos, log, result.get("accepted", 0), time.monotonic() - started)
        finally:
            system.stop_all()
            server.cleanup()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(figures, indent=2))
    for key, value in figures.items():
        print(f"{key:32} {value}")
    ok = (
        figures["jobs_lost"]
        == figures["duplicate_starts"]
        == figures["starts_over_the_limit"]
        == figures["starts_over_a_key_limit"]
        == 0
    )
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
