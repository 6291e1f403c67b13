"""Measures recurring schedules at scale: 10,000 schedules of `every_seconds: 60` that all
fire on the same second, with two schedulers running, against the goal that every job is
made within 1 s of its fire time (p99), none twice and none missed.

Starts the system (`throwaway_system`: an embedded PostgreSQL, the scheduler and the
gateway as processes; no runner, so that the jobs stay queued and nothing but the fire
loop works) and a second scheduler beside the first. Creates the schedules through the
public gRPC API (`ScheduleService`, `overlap: allow`, so that a queued job does not
hold back the next fire), then waits for the first minute every one of them fires at.
Interval fire times are counted from the Unix epoch, so all fire at the same second.

For that fire time: each job's `created_at` (the start of the transaction that made it)
minus the fire time, as p50/p99/max; when the last of the jobs was seen committed,
polling the table every 10 ms; how many jobs, and how many fire times made two (names
are unique, so this must be 0). Prints one table and writes the figures as JSON."""

from __future__ import annotations

import argparse
import asyncio
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
from jobsched.v1 import jobs_pb2 as pb
from jobsched.v1 import jobs_pb2_grpc
from jobsched_launcher import free_port, port_open, throwaway_system, wait_for
from measure import RESULTS, Db, Json, machine, percentile, scratch, write_results

SCHEDULES = 10_000
EVERY_SECONDS = 60
IN_FLIGHT = 32  # CreateSchedule calls at once
GOAL_P99_MS = 1000.0
# The fire time must leave room to see every job appear after it.
SETTLE_SECONDS = 30.0
MADE = re.compile(r"Schedules made (\d+) job")


async def create_schedules(address: str, count: int, every: int) -> float:
    """Creates `count` schedules through the gRPC API; returns how long it took."""
    started = time.monotonic()
    names = iter(range(count))
    async with grpc.aio.insecure_channel(address) as channel:
        api = jobs_pb2_grpc.ScheduleServiceStub(channel)

        async def worker() -> None:
            for i in names:
                schedule = pb.Schedule(
                    name=f"bench-{i:05d}",
                    command="true",
                    every_seconds=every,
                    overlap=pb.OVERLAP_ALLOW,
                )
                await api.CreateSchedule(pb.CreateScheduleRequest(schedule=schedule))

        await asyncio.gather(*(worker() for _ in range(IN_FLIGHT)))
    return time.monotonic() - started


def common_fire_time(db: Db, count: int, every: int) -> datetime:
    """The fire time every schedule is due at; those created before an earlier minute
    fire there first, and then wait for this one with the rest."""

    def all_alike() -> bool:
        row = db.row("SELECT count(DISTINCT next_run_at), count(*) FROM schedules")
        return int(row[0]) == 1 and int(row[1]) == count

    wait_for(all_alike, every + 10, "every schedule due at one fire time")
    fire_at: datetime = db.one("SELECT min(next_run_at) FROM schedules")
    return fire_at


def watch_jobs(db: Db, fire_at: datetime, count: int) -> float:
    """Polls until `count` jobs of the fire time are committed; returns when the last
    ones were seen, in seconds after the fire time."""
    suffix = f"@{fire_at.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}"
    deadline = fire_at + timedelta(seconds=SETTLE_SECONDS)
    while datetime.now(UTC) < deadline:
        made = int(db.one("SELECT count(*) FROM jobs WHERE name LIKE %s", ("%" + suffix,)))
        if made >= count:
            return (datetime.now(UTC) - fire_at).total_seconds()
        time.sleep(0.01)
    return float("nan")


def fire_figures(db: Db, fire_at: datetime) -> Json:
    suffix = f"@{fire_at.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}"
    rows = db.conn.execute(
        "SELECT extract(epoch FROM created_at - %s)::float8 * 1000 FROM jobs WHERE name LIKE %s",
        (fire_at, "%" + suffix),
    ).fetchall()
    lags = [float(row[0]) for row in rows]
    duplicates = db.one(
        "SELECT count(*) - count(DISTINCT name) FROM jobs"
    )  # a unique index: a check of the check
    missing = db.one(
        "SELECT count(*) FROM schedules WHERE last_run_at IS DISTINCT FROM %s", (fire_at,)
    )
    return {
        "fire_at": fire_at.isoformat(),
        "jobs": len(lags),
        "duplicates": int(duplicates),
        "schedules_without_this_fire": int(missing),
        "p50_ms": round(percentile(lags, 50), 1) if lags else None,
        "p99_ms": round(percentile(lags, 99), 1) if lags else None,
        "max_ms": round(max(lags), 1) if lags else None,
    }


def jobs_made_by(log_dir: Path, names: list[str]) -> dict[str, int]:
    """Jobs each scheduler says it made, from its log (complete once it has stopped)."""
    made = {}
    for name in names:
        text = (log_dir / f"{name}.log").read_text(errors="replace")
        made[name] = sum(int(n) for n in MADE.findall(text))
    return made


def measure(count: int, every: int, keep: bool) -> Json:
    result: Json = {"meta": machine(), "schedules": count, "every_seconds": every}
    with scratch("jobsched-bench-schedules-", keep) as tmp:
        with throwaway_system(tmp, runners=0) as (system, server):
            second = f"127.0.0.1:{free_port()}"
            system.spawn("scheduler-b", "jobsched-scheduler", SCHEDULER_BIND=second)
            wait_for(lambda: port_open(second), 60, "second scheduler")
            db = Db(server.get_uri())
            try:
                created_s = asyncio.run(create_schedules(system.scheduler_addr, count, every))
                result["create_seconds"] = round(created_s, 1)
                fire_at = common_fire_time(db, count, every)
                seen_after = watch_jobs(db, fire_at, count)
                result["fire"] = fire_figures(db, fire_at)
                result["fire"]["all_committed_after_s"] = round(seen_after, 3)
            finally:
                db.close()
        result["made_by"] = jobs_made_by(tmp / "logs", ["scheduler", "scheduler-b"])
    return result


def render(result: Json) -> str:
    fire = result["fire"]
    meta = result["meta"]
    ok = (
        fire["jobs"] == result["schedules"]
        and fire["duplicates"] == 0
        and fire["p99_ms"] is not None
        and fire["p99_ms"] <= GOAL_P99_MS
    )
    return "\n".join(
        [
            f"schedules: {result['schedules']} x every {result['every_seconds']} s, "
            f"two schedulers; {meta['cpu']} ({meta['cores']} cores), "
            f"load {meta['load_average_at_start']}",
            f"created through gRPC in {result['create_seconds']} s",
            f"fire time {fire['fire_at']}: {fire['jobs']} jobs, {fire['duplicates']} "
            f"duplicates, {fire['schedules_without_this_fire']} schedules without it",
            f"job created_at - fire time: p50 {fire['p50_ms']} ms, p99 {fire['p99_ms']} ms, "
            f"max {fire['max_ms']} ms; all committed {fire['all_committed_after_s']} s after",
            f"jobs made by each scheduler (whole run): {result['made_by']}",
            f"goal (all made, none twice, p99 <= {GOAL_P99_MS:.0f} ms): "
            + ("met" if ok else "NOT met"),
        ]
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--schedules", type=int, default=SCHEDULES)
    parser.add_argument("--every", type=int, default=EVERY_SECONDS, help="seconds (60)")
    parser.add_argument("--out", type=Path, default=RESULTS / "schedules.json")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs)")
    args = parser.parse_args(argv)
    result = measure(args.schedules, args.every, args.keep)
    print(render(result), flush=True)
    write_results(args.out.resolve(), result)


if __name__ == "__main__":
    main()
