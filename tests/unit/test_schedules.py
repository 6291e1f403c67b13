"""A schedule's rules without a database: what a client may send, the names of the jobs
it makes, and what one pick of the fire loop does with a due schedule."""

import re
from datetime import UTC, datetime, timedelta

import pytest
from jobsched.v1 import jobs_pb2 as pb
from jobsched_common.limits import (
    DEFAULT_CATCHUP_WINDOW_SECONDS,
    MAX_CATCHUP_WINDOW_SECONDS,
    MAX_EVERY_SECONDS,
    MAX_SCHEDULE_NAME_CHARS,
)
from jobsched_scheduler import schedule_validation
from jobsched_scheduler.errors import InvalidValue
from jobsched_scheduler.events import SCHEDULES_CHANGED, EventHub
from jobsched_scheduler.fire_times import FireRule
from jobsched_scheduler.queries import queries
from jobsched_scheduler.schedule_model import DueSchedule, ScheduleSpec
from jobsched_scheduler.schedules import ON_TIME_SECONDS, job_name, plan, trigger_job_name

NOW = datetime(2026, 11, 29, 3, 0, 0, 250_000, tzinfo=UTC)


def schedule(**fields: object) -> pb.Schedule:
    values = {"name": "backup", "command": "true", "every_seconds": 60, **fields}
    return pb.Schedule(**values)  # type: ignore[arg-type]


def due(next_run_at: datetime | None, **fields: object) -> DueSchedule:
    values: dict[str, object] = {
        "name": "backup",
        "command": "true",
        "rule": FireRule(None, 60),
        "overlap": "skip",
        "catchup_window_seconds": 60,
        "priority": 0,
        "max_attempts": 1,
        "timeout_seconds": None,
        "next_run_at": next_run_at,
        "previous_finished": True,
        **fields,
    }
    return DueSchedule(**values)  # type: ignore[arg-type]


def test_unset_values_take_the_defaults() -> None:
    assert schedule_validation.new_schedule(schedule()) == ScheduleSpec(
        name="backup",
        command="true",
        cron=None,
        every_seconds=60,
        timezone="UTC",
        overlap="skip",
        catchup_window_seconds=DEFAULT_CATCHUP_WINDOW_SECONDS,
        paused=False,
        priority=0,
        max_attempts=1,
        timeout_seconds=None,
    )


def test_values_at_the_limits_are_accepted() -> None:
    spec = schedule_validation.new_schedule(
        schedule(
            name="n" * MAX_SCHEDULE_NAME_CHARS,
            every_seconds=MAX_EVERY_SECONDS,
            catchup_window_seconds=MAX_CATCHUP_WINDOW_SECONDS,
            overlap=pb.OVERLAP_ALLOW,
            priority=-100,
            max_attempts=100,
            timeout_seconds=1,
            timezone="Europe/Berlin",
        )
    )
    assert (spec.overlap, spec.catchup_window_seconds, spec.timeout_seconds) == (
        "allow",
        MAX_CATCHUP_WINDOW_SECONDS,
        1,
    )
    no_catchup = schedule_validation.new_schedule(schedule(catchup_window_seconds=0))
    assert no_catchup.catchup_window_seconds == 0
    cron = schedule_validation.new_schedule(schedule(every_seconds=0, cron=" @daily "))
    assert (cron.cron, cron.every_seconds) == ("@daily", None)


@pytest.mark.parametrize(
    ("request_", "says"),
    [
        (schedule(name=""), "name: Input should not be blank"),
        (schedule(name="a@b"), "name: Input should not contain '@'"),
        (schedule(name="a\nb"), "name: Input should not contain control characters"),
        (schedule(name="a\u202eb"), "name: Input should not contain invisible format"),
        (schedule(name="n" * (MAX_SCHEDULE_NAME_CHARS + 1)), "name: Input should have at most"),
        (schedule(command=" "), "command: Input should not be blank"),
        (schedule(every_seconds=0), "cron: Input should be given, or every_seconds"),
        (schedule(cron="* * * * *"), "cron: Input should be given, or every_seconds"),
        (schedule(every_seconds=-1), "every_seconds: Input should be greater than or equal to 1"),
        (schedule(every_seconds=MAX_EVERY_SECONDS + 1), "every_seconds: Input should be less"),
        (schedule(every_seconds=0, cron="61 * * * *"), "cron: Bad minute"),
        (schedule(every_seconds=0, cron="* * * *"), "cron: expected five fields"),
        (schedule(every_seconds=0, cron="0 0 */20 * 1L"), "cron: Input never fires"),
        (schedule(every_seconds=0, cron="*" * 256), "cron: Input should have at most 255"),
        (schedule(timezone="Mars/Olympus_Mons"), "timezone: unknown time zone"),
        (schedule(timezone="../../etc/passwd"), "timezone: unknown time zone"),
        (schedule(timezone="Europe"), "timezone: unknown time zone 'Europe'"),
        (schedule(timezone="ü" * 64), "timezone: unknown time zone"),
        (schedule(timezone="UTC\n"), "timezone: unknown time zone 'UTC\\n'"),
        (schedule(timezone="a" * 65), "timezone: Input should have at most 64 characters"),
        (schedule(catchup_window_seconds=-1), "catchup_window_seconds: Input should be greater"),
        (schedule(priority=101), "priority: Input should be less than or equal to 100"),
        (schedule(max_attempts=0), "max_attempts: Input should be greater than or equal to 1"),
        (schedule(timeout_seconds=0), "timeout_seconds: Input should be greater"),
        (schedule(overlap=7), "overlap: Input should be skip or allow"),
    ],
)
def test_bad_values_are_refused_field_first(request_: pb.Schedule, says: str) -> None:
    with pytest.raises(InvalidValue, match="^" + re.escape(says)):
        schedule_validation.new_schedule(request_)


def test_job_names_are_the_fire_time_in_utc() -> None:
    berlin = datetime(2026, 11, 29, 4, tzinfo=UTC).astimezone()
    assert job_name("backup", berlin) == "backup@2026-11-29T04:00:00Z"
    assert trigger_job_name("backup", NOW) == "backup@2026-11-29T03:00:00.250000Z"


def test_a_fire_time_reached_on_time_makes_its_job() -> None:
    fire = plan(due(NOW.replace(microsecond=0)), NOW)
    assert fire.job_name == "backup@2026-11-29T03:00:00Z" and not fire.skipped
    assert fire.next_run_at == datetime(2026, 11, 29, 3, 1, tzinfo=UTC)
    assert fire.missed is None and not fire.paused


def test_overlap_skip_counts_a_skip_while_the_previous_job_runs() -> None:
    fire = plan(due(NOW.replace(microsecond=0), previous_finished=False), NOW)
    assert (fire.job_name, fire.skipped) == (None, 1)
    assert fire.next_run_at == datetime(2026, 11, 29, 3, 1, tzinfo=UTC)
    allowed = plan(due(NOW.replace(microsecond=0), previous_finished=False, overlap="allow"), NOW)
    assert allowed.job_name and not allowed.skipped


def test_only_the_latest_missed_fire_time_is_made_up_inside_the_window() -> None:
    back = datetime(2026, 11, 29, 3, 0, 40, tzinfo=UTC)  # 40 s after 03:00, 3 fires missed
    fire = plan(due(datetime(2026, 11, 29, 2, 57, tzinfo=UTC)), back)
    assert fire.job_name == "backup@2026-11-29T03:00:00Z"
    assert fire.missed == (
        datetime(2026, 11, 29, 2, 57, tzinfo=UTC),
        datetime(2026, 11, 29, 2, 59, tzinfo=UTC),
    )
    assert fire.next_run_at == datetime(2026, 11, 29, 3, 1, tzinfo=UTC)


def test_a_fire_time_older_than_the_window_is_skipped() -> None:
    hourly = FireRule("0 * * * *", None, "UTC")
    back = datetime(2026, 11, 29, 3, 2, tzinfo=UTC)  # 120 s after 03:00
    fire = plan(due(datetime(2026, 11, 29, 1, tzinfo=UTC), rule=hourly), back)
    assert fire.job_name is None and not fire.skipped
    assert fire.missed == (
        datetime(2026, 11, 29, 1, tzinfo=UTC),
        datetime(2026, 11, 29, 3, tzinfo=UTC),
    )
    assert fire.next_run_at == datetime(2026, 11, 29, 4, tzinfo=UTC)
    wide = plan(
        due(datetime(2026, 11, 29, 1, tzinfo=UTC), rule=hourly, catchup_window_seconds=121), back
    )
    assert wide.job_name == "backup@2026-11-29T03:00:00Z"


def test_a_window_of_zero_still_fires_what_the_loop_reaches_on_time() -> None:
    on_time = NOW.replace(microsecond=0)
    late = on_time + timedelta(seconds=ON_TIME_SECONDS - 0.5)
    assert plan(due(on_time, catchup_window_seconds=0), late).job_name
    too_late = on_time + timedelta(seconds=ON_TIME_SECONDS)
    assert plan(due(on_time, catchup_window_seconds=0), too_late).job_name is None


def test_a_schedule_without_a_next_run_gets_one_and_fires_nothing() -> None:
    fire = plan(due(None), NOW)
    assert fire.job_name is None and fire.next_run_at == datetime(2026, 11, 29, 3, 1, tzinfo=UTC)


def test_a_schedules_notification_wakes_the_fire_loop_and_not_dispatch() -> None:
    woken: list[str] = []
    hub = EventHub("", lambda: woken.append("dispatch"), lambda: woken.append("schedules"))
    watcher = hub.subscribe()
    hub._handle(SCHEDULES_CHANGED)
    assert woken == ["schedules"] and watcher.queue.empty()
    hub._handle('[[1, "queued", 0]]')
    assert woken == ["schedules", "dispatch"] and watcher.queue.qsize() == 1


def test_schedule_queries_are_loaded() -> None:
    names = {"due_schedules", "fire_schedules", "next_schedule_due", "trigger_schedule"}
    assert names <= set(queries())
