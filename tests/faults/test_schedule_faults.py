"""Schedules with two schedulers, one killed with SIGKILL while firing: no fire time makes
two jobs, and none inside the catch-up window is missed. The jobs table is the witness."""

import itertools
import signal
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from jobsched.v1 import jobs_pb2 as pb
from jobsched.v1 import jobs_pb2_grpc
from jobsched_launcher import free_port, port_open, wait_for

from tests.conftest import LiveSystem

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

TICKS = 30
EVERY = 2


def fire_times(system: LiveSystem) -> dict[str, list[datetime]]:
    """The fire times each schedule made a job for, in order, from the job names."""
    found: dict[str, list[datetime]] = defaultdict(list)
    for (name,) in system.sql("SELECT name FROM jobs ORDER BY name"):
        schedule, _, at = name.partition("@")
        found[schedule].append(datetime.fromisoformat(at))
    return found


def last_fire(system: LiveSystem) -> datetime | None:
    rows = system.sql("SELECT max(last_run_at) FROM schedules WHERE every_seconds IS NOT NULL")
    found: datetime | None = rows[0][0]
    return found


def test_kill_9_of_a_scheduler_mid_fire_makes_no_fire_time_twice_and_misses_none(
    live_system: LiveSystem,
) -> None:
    for index in (1, 2):  # no job needs to run: the schedules allow overlaps
        live_system.stop(f"runner-{index}")
    backup = f"127.0.0.1:{free_port()}"
    live_system.spawn("scheduler-b", "jobsched-scheduler", SCHEDULER_BIND=backup)
    wait_for(lambda: port_open(backup), 30, "second scheduler")
    with grpc.insecure_channel(live_system.scheduler_addr) as channel:
        served = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service="jobsched.v1.ScheduleService"), timeout=5
        )
        assert served.status == health_pb2.HealthCheckResponse.SERVING
        api = jobs_pb2_grpc.ScheduleServiceStub(channel)
        for i in range(TICKS):
            tick = pb.Schedule(
                name=f"tick-{i:02d}", command="true", every_seconds=EVERY, overlap=pb.OVERLAP_ALLOW
            )
            api.CreateSchedule(pb.CreateScheduleRequest(schedule=tick))
        minutely = pb.Schedule(
            name="minutely", command="true", cron="* * * * *", overlap=pb.OVERLAP_ALLOW
        )
        api.CreateSchedule(pb.CreateScheduleRequest(schedule=minutely))

    # Both fire for a while; then one dies just after a fire time, while its batch is
    # in flight.
    wait_for(lambda: len(fire_times(live_system)["tick-00"]) >= 3, 20, "three fire times")
    fire = last_fire(live_system)
    assert fire is not None
    next_fire = fire + timedelta(seconds=EVERY)
    while datetime.now(UTC) < next_fire + timedelta(milliseconds=5):
        time.sleep(0.001)
    live_system.procs["scheduler"].send_signal(signal.SIGKILL)
    live_system.procs.pop("scheduler").wait(5)
    killed_at = datetime.now(UTC)

    # The survivor goes on: every tick fires well past the kill, the cron one at its
    # next minute.
    def survivor_fired() -> bool:
        times = fire_times(live_system)
        ticks_done = all(
            times[f"tick-{i:02d}"] and times[f"tick-{i:02d}"][-1] > killed_at + timedelta(seconds=6)
            for i in range(TICKS)
        )
        return ticks_done and bool(times["minutely"]) and times["minutely"][-1] > killed_at

    wait_for(survivor_fired, 90, "the surviving scheduler to fire past the kill")

    duplicates = live_system.sql("SELECT count(*) - count(DISTINCT name) FROM jobs")
    assert duplicates == [(0,)]
    times = fire_times(live_system)
    for i in range(TICKS):
        ticks = times[f"tick-{i:02d}"]
        gaps = [b - a for a, b in itertools.pairwise(ticks)]
        assert set(gaps) == {timedelta(seconds=EVERY)}, (f"tick-{i:02d}", ticks)
        assert ticks[0] < killed_at < ticks[-1]
    minutes = times["minutely"]
    assert all(t.second == 0 for t in minutes)
    assert all(b - a == timedelta(minutes=1) for a, b in itertools.pairwise(minutes)), minutes
