"""Recurring schedules over a real database: the ScheduleService served in-process over
real gRPC, and the fire loop making jobs, skipping overlaps and catching up."""

import asyncio
import itertools
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import grpc
import psycopg
import pytest
from jobsched.v1 import jobs_pb2 as pb
from jobsched.v1 import jobs_pb2_grpc
from jobsched_common.timestamps import from_timestamp
from jobsched_scheduler.events import EventHub
from jobsched_scheduler.schedule_api import ScheduleApi
from jobsched_scheduler.schedule_store import PgSchedules
from jobsched_scheduler.schedules import FireLoop
from jobsched_scheduler.store import new_pool

from tests.integration.serving import refused, served

pytestmark = pytest.mark.timeout(60)
TRIGGERED = re.compile(r"^nightly@\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


async def _service(url: str) -> AsyncIterator[tuple[Any, PgSchedules]]:
    """The ScheduleService served in-process, a client stub for it, and its store."""
    pool = new_pool(url, max_size=4)
    await pool.open(wait=True)
    schedules = PgSchedules(pool)
    api = ScheduleApi(schedules)
    try:
        async with served(
            lambda server: jobs_pb2_grpc.add_ScheduleServiceServicer_to_server(api, server)
        ) as channel:
            yield jobs_pb2_grpc.ScheduleServiceStub(channel), schedules
    finally:
        await pool.close()


def _sql(url: str, query: str, params: Any = None) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(query.encode(), params)
        return cur.fetchall() if cur.description else []


def _jobs(url: str, schedule: str) -> list[tuple[str, str]]:
    return [
        (name, status)
        for name, status in _sql(
            url, "SELECT name, status FROM jobs WHERE name LIKE %s ORDER BY id", (schedule + "@%",)
        )
    ]


def nightly(**fields: Any) -> pb.Schedule:
    values = {
        "name": "nightly",
        "command": "echo backup",
        "cron": "0 4 * * *",
        "timezone": "Europe/Berlin",
        **fields,
    }
    return pb.Schedule(**values)


def test_create_get_list_update_delete(database_url: str) -> None:
    async def scenario() -> None:
        async for api, _ in _service(database_url):
            made = await api.CreateSchedule(pb.CreateScheduleRequest(schedule=nightly()))
            assert (made.name, made.cron, made.every_seconds) == ("nightly", "0 4 * * *", 0)
            assert made.overlap == pb.OVERLAP_SKIP and made.catchup_window_seconds == 60
            assert made.max_attempts == 1 and not made.HasField("timeout_seconds")
            assert not made.paused and made.last_job_id == 0 and made.skipped_count == 0
            next_run = from_timestamp(made.next_run_at)
            assert next_run > datetime.now(UTC)
            berlin = next_run.astimezone(ZoneInfo("Europe/Berlin"))
            assert (berlin.hour, berlin.minute) == (4, 0)
            assert made.HasField("created_at") and made.HasField("updated_at")
            assert not made.HasField("last_run_at")

            got = await api.GetSchedule(pb.ScheduleRef(name="nightly"))
            assert got == made
            await api.CreateSchedule(
                pb.CreateScheduleRequest(schedule=nightly(name="a-first", cron="", every_seconds=5))
            )
            listed = await api.ListSchedules(pb.ListSchedulesRequest())
            assert [s.name for s in listed.schedules] == ["a-first", "nightly"]

            changed = await api.UpdateSchedule(
                pb.UpdateScheduleRequest(
                    schedule=nightly(
                        cron="",
                        every_seconds=3600,
                        overlap=pb.OVERLAP_ALLOW,
                        priority=5,
                        timeout_seconds=30,
                        catchup_window_seconds=0,
                    )
                )
            )
            assert (changed.cron, changed.every_seconds, changed.priority) == ("", 3600, 5)
            assert changed.overlap == pb.OVERLAP_ALLOW and changed.timeout_seconds == 30
            assert changed.catchup_window_seconds == 0
            assert from_timestamp(changed.next_run_at).timestamp() % 3600 == 0
            assert changed.created_at == made.created_at

            await api.DeleteSchedule(pb.ScheduleRef(name="nightly"))
            assert (await refused(api.GetSchedule(pb.ScheduleRef(name="nightly"))))[
                0
            ] == grpc.StatusCode.NOT_FOUND

    asyncio.run(scenario())


def test_each_refusal_has_its_status_code(database_url: str) -> None:
    code = grpc.StatusCode

    async def scenario() -> None:
        async for api, schedules in _service(database_url):
            await api.CreateSchedule(pb.CreateScheduleRequest(schedule=nightly()))
            assert await refused(
                api.CreateSchedule(pb.CreateScheduleRequest(schedule=nightly()))
            ) == (code.ALREADY_EXISTS, "schedule 'nightly' already exists")
            for bad, says in [
                (nightly(cron="0 25 * * *"), "cron: Bad hour"),
                (nightly(cron="", every_seconds=0), "cron: Input should be given"),
                (nightly(every_seconds=5), "cron: Input should be given"),
                (nightly(timezone="Mars/Base"), "timezone: unknown time zone 'Mars/Base'"),
                (nightly(name="a@b"), "name: Input should not contain '@'"),
            ]:
                create = api.CreateSchedule(pb.CreateScheduleRequest(schedule=bad))
                refused_code, details = await refused(create)
                assert refused_code == code.INVALID_ARGUMENT and details.startswith(says), details
            for missing in (
                api.GetSchedule(pb.ScheduleRef(name="nope")),
                api.DeleteSchedule(pb.ScheduleRef(name="nope")),
                api.PauseSchedule(pb.ScheduleRef(name="nope")),
                api.ResumeSchedule(pb.ScheduleRef(name="nope")),
                api.TriggerSchedule(pb.ScheduleRef(name="nope")),
                api.UpdateSchedule(pb.UpdateScheduleRequest(schedule=nightly(name="nope"))),
            ):
                assert await refused(missing) == (code.NOT_FOUND, "schedule 'nope' not found")
            assert await refused(api.GetSchedule(pb.ScheduleRef(name=""))) == (
                code.INVALID_ARGUMENT,
                "name: Input should not be blank",
            )
            for unfit in ("n" * 100_000, "a\x1b[31mb"):
                refused_code, _ = await refused(api.DeleteSchedule(pb.ScheduleRef(name=unfit)))
                assert refused_code == code.INVALID_ARGUMENT
            await schedules.pool.close()
            assert await refused(api.ListSchedules(pb.ListSchedulesRequest())) == (
                code.UNAVAILABLE,
                "database unavailable",
            )

    asyncio.run(scenario())


def test_pause_resume_and_trigger(database_url: str) -> None:
    async def scenario() -> None:
        async for api, _ in _service(database_url):
            with_job_fields = nightly(paused=True, priority=5, max_attempts=3, timeout_seconds=30)
            await api.CreateSchedule(pb.CreateScheduleRequest(schedule=with_job_fields))
            paused = await api.GetSchedule(pb.ScheduleRef(name="nightly"))
            assert paused.paused and not paused.HasField("next_run_at")

            job = await api.TriggerSchedule(pb.ScheduleRef(name="nightly"))  # paused: still
            assert TRIGGERED.match(job.name), job.name
            assert job.command == "echo backup" and job.status == pb.JOB_STATUS_QUEUED
            assert (job.priority, job.max_attempts, job.timeout_seconds) == (5, 3, 30)
            after = await api.GetSchedule(pb.ScheduleRef(name="nightly"))
            assert after.last_job_id == job.id and after.last_run_at == job.created_at

            resumed = await api.ResumeSchedule(pb.ScheduleRef(name="nightly"))
            assert not resumed.paused and from_timestamp(resumed.next_run_at) > datetime.now(UTC)
            assert await api.ResumeSchedule(pb.ScheduleRef(name="nightly")) == resumed
            again = await api.PauseSchedule(pb.ScheduleRef(name="nightly"))
            assert again.paused and not again.HasField("next_run_at")

    asyncio.run(scenario())


async def _fire_until(loop: FireLoop, reached: Any, timeout: float) -> None:
    """Runs the loop's picks until `reached()` or the deadline."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not reached():
        assert asyncio.get_running_loop().time() < deadline, "deadline passed"
        await asyncio.sleep(min(await loop.fire_due(), 0.2))


def test_every_second_makes_a_job_at_each_fire_time(database_url: str) -> None:
    async def scenario() -> None:
        async for api, schedules in _service(database_url):
            await api.CreateSchedule(
                pb.CreateScheduleRequest(
                    schedule=pb.Schedule(
                        name="tick",
                        command="true",
                        every_seconds=1,
                        overlap=pb.OVERLAP_ALLOW,
                        priority=-7,
                        max_attempts=2,
                    )
                )
            )
            loop = FireLoop(schedules, safety_net=1.0)
            await _fire_until(loop, lambda: len(_jobs(database_url, "tick")) >= 3, 10)
            names = [name for name, _ in _jobs(database_url, "tick")]
            times = [datetime.fromisoformat(n.split("@")[1]) for n in names]
            assert len(set(names)) == len(names)
            made_as = "SELECT DISTINCT status, priority, max_attempts, timeout_seconds FROM jobs"
            assert _sql(database_url, made_as) == [("queued", -7, 2, None)]
            assert all(b - a == timedelta(seconds=1) for a, b in itertools.pairwise(times))
            ticked = await api.GetSchedule(pb.ScheduleRef(name="tick"))
            last_id, last_name = _sql(
                database_url, "SELECT id, name FROM jobs ORDER BY id DESC LIMIT 1"
            )[0]
            assert ticked.last_job_id == last_id
            assert from_timestamp(ticked.last_run_at) == datetime.fromisoformat(
                last_name.split("@")[1]
            )

    asyncio.run(scenario())


def _due_now(url: str, name: str, ago: float) -> None:
    """Makes a schedule due `ago` seconds ago, as if no scheduler had run since."""
    _sql(
        url,
        "UPDATE schedules SET next_run_at = now() - make_interval(secs => %s) WHERE name = %s",
        (ago, name),
    )


def test_overlap_skip_waits_for_the_previous_job_and_allow_does_not(database_url: str) -> None:
    async def scenario() -> None:
        async for api, schedules in _service(database_url):
            for name, overlap in (("careful", pb.OVERLAP_SKIP), ("eager", pb.OVERLAP_ALLOW)):
                await api.CreateSchedule(
                    pb.CreateScheduleRequest(
                        schedule=pb.Schedule(
                            name=name, command="true", every_seconds=1, overlap=overlap
                        )
                    )
                )

            # No runner: every job stays queued, so each fire time after the first one
            # finds careful's previous job unfinished.
            loop = FireLoop(schedules, safety_net=1.0)
            await _fire_until(loop, lambda: len(_jobs(database_url, "eager")) >= 3, 10)
            assert len(_jobs(database_url, "careful")) == 1
            careful = await api.GetSchedule(pb.ScheduleRef(name="careful"))
            assert careful.skipped_count >= 2
            assert (await api.GetSchedule(pb.ScheduleRef(name="eager"))).skipped_count == 0
            # Once it has finished, the next fire time makes a job again.
            _sql(database_url, "UPDATE jobs SET status = 'completed' WHERE name LIKE 'careful@%'")
            await _fire_until(loop, lambda: len(_jobs(database_url, "careful")) == 2, 10)

    asyncio.run(scenario())


def test_catch_up_makes_the_latest_missed_fire_time_once_inside_the_window(
    database_url: str,
) -> None:
    async def scenario() -> None:
        async for api, schedules in _service(database_url):
            for name, window in (("inside", 600), ("outside", 10)):
                await api.CreateSchedule(
                    pb.CreateScheduleRequest(
                        schedule=pb.Schedule(
                            name=name,
                            command="true",
                            every_seconds=60,
                            catchup_window_seconds=window,
                            overlap=pb.OVERLAP_ALLOW,
                        )
                    )
                )
                # Away for ten minutes: ten fire times missed.
                _due_now(database_url, name, 600)
            await FireLoop(schedules, safety_net=1.0).fire_due()
            (latest,) = _sql(
                database_url,
                "SELECT to_timestamp(floor(extract(epoch FROM now()) / 60) * 60)",
            )[0]
            # The latest one made up once; unless it is older than the window (it may be,
            # up to 60 s old, so the outside schedule's window is 10 s below that): none.
            inside = _jobs(database_url, "inside")
            assert [name for name, _ in inside] == [f"inside@{latest:%Y-%m-%dT%H:%M:%SZ}"]
            age = (datetime.now(UTC) - latest).total_seconds()
            outside = _jobs(database_url, "outside")
            assert len(outside) == (1 if age < 10 else 0)
            for name in ("inside", "outside"):
                row = await api.GetSchedule(pb.ScheduleRef(name=name))
                assert from_timestamp(row.next_run_at) == latest + timedelta(seconds=60)

    asyncio.run(scenario())


def test_a_schedule_inserted_by_hand_gets_a_next_run_and_fires(database_url: str) -> None:
    async def scenario() -> None:
        async for api, schedules in _service(database_url):
            _sql(
                database_url,
                "INSERT INTO schedules (name, command, every_seconds, overlap) "
                "VALUES ('by-hand', 'true', 1, 'allow')",
            )
            loop = FireLoop(schedules, safety_net=1.0)
            await _fire_until(loop, lambda: len(_jobs(database_url, "by-hand")) >= 1, 10)
            _sql(
                database_url,
                "INSERT INTO schedules (name, command, cron, timezone) "
                "VALUES ('broken', 'true', 'not a cron', 'UTC')",
            )
            await loop.fire_due()
            broken = await api.GetSchedule(pb.ScheduleRef(name="broken"))
            assert broken.paused and not broken.HasField("next_run_at")

    asyncio.run(scenario())


def test_the_loop_wakes_on_a_schedule_change_from_another_scheduler(database_url: str) -> None:
    """The NOTIFY of migration 008 wakes an idle loop at once, long before its timer."""

    async def scenario() -> None:
        async for api, schedules in _service(database_url):
            loop = FireLoop(schedules, safety_net=30.0)
            hub = EventHub(database_url, lambda: None, loop.wake)
            stop = asyncio.Event()
            tasks = [asyncio.create_task(hub.run(stop)), asyncio.create_task(loop.run(stop))]
            try:
                await api.CreateSchedule(
                    pb.CreateScheduleRequest(
                        schedule=pb.Schedule(name="soon", command="true", every_seconds=3600)
                    )
                )
                await asyncio.sleep(0.5)  # the loop is asleep, for up to an hour
                _due_now(database_url, "soon", 0.1)
                deadline = asyncio.get_running_loop().time() + 5
                while not _jobs(database_url, "soon"):
                    assert asyncio.get_running_loop().time() < deadline, "loop not woken"
                    await asyncio.sleep(0.05)
            finally:
                stop.set()
                await asyncio.wait(tasks, timeout=5)

    asyncio.run(scenario())


def test_two_loops_racing_make_each_fire_time_once(database_url: str) -> None:
    async def scenario() -> None:
        async for _, schedules in _service(database_url):
            _sql(
                database_url,
                "INSERT INTO schedules (name, command, every_seconds, overlap, next_run_at) "
                "SELECT 'race-' || i, 'true', 3600, 'allow', now() - interval '1 second' "
                "FROM generate_series(1, 1200) AS i",
            )
            first, second = FireLoop(schedules, 1.0, batch=100), FireLoop(schedules, 1.0, batch=100)
            await asyncio.gather(first.fire_due(), second.fire_due())
            (made, distinct) = _sql(
                database_url, "SELECT count(*), count(DISTINCT name) FROM jobs"
            )[0]
            assert made == distinct == 1200
            assert _sql(database_url, "SELECT count(*) FROM schedules WHERE last_job_id IS NULL")[
                0
            ] == (0,)

    asyncio.run(scenario())
