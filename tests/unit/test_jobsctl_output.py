"""What jobsctl prints for schedules and new jobs: next runs keep the schedule's own
offset, and a job just submitted says why it waits or has already ended."""

from typing import Any

from jobsctl import output
from jobsctl.main import parser
from jobsctl.schedule_commands import schedule_body


def schedule(**fields: Any) -> dict[str, Any]:
    base = {
        "name": "backup",
        "command": "pg_dump app",
        "cron": "0 3 * * *",
        "every_seconds": None,
        "timezone": "Europe/Berlin",
        "paused": False,
        "next_run_at": "2026-11-30T03:00:00+01:00",
        "last_job_id": None,
        "skipped_count": 0,
    }
    return base | fields


def test_next_runs_keep_the_schedules_own_offset() -> None:
    assert output.own_offset("2026-11-30T03:00:00.250000+01:00") == "2026-11-30 03:00:00+01:00"
    assert output.own_offset("2026-11-30T02:00:00Z") == "2026-11-30 02:00:00+00:00"
    assert output.own_offset(None) == "-"
    assert output.own_offset("soon") == "soon"


def test_the_schedules_table() -> None:
    rows = [
        schedule(),
        schedule(
            name="tick",
            cron=None,
            every_seconds=60,
            timezone="UTC",
            paused=True,
            next_run_at=None,
            last_job_id=12,
            skipped_count=3,
            command="true",
        ),
    ]
    lines = output.schedules_table(rows).splitlines()
    assert lines[0].split() == [
        "NAME",
        "WHEN",
        "TIMEZONE",
        "NEXT",
        "RUN",
        "LAST",
        "JOB",
        "SKIPPED",
        "COMMAND",
    ]
    assert lines[1].split() == [
        "backup",
        "0",
        "3",
        "*",
        "*",
        "*",
        "Europe/Berlin",
        "2026-11-30",
        "03:00:00+01:00",
        "-",
        "0",
        "pg_dump",
        "app",
    ]
    assert lines[2].split() == ["tick", "every", "60s", "UTC", "paused", "12", "3", "true"]
    assert output.schedules_table([]) == "no schedules"


def test_a_submitted_job_says_why_it_waits() -> None:
    job = {"id": 7, "name": "a", "status": "queued", "depends_on": []}
    assert output.submitted(job) == "submitted job 7 (a)"
    assert output.submitted(job | {"depends_on": [3]}) == "submitted job 7 (a), after job 3"
    assert output.submitted(job | {"depends_on": [3, 4]}).endswith(", after jobs 3, 4")
    cancelled = job | {"status": "cancelled", "reason": "dependency 3 failed"}
    assert output.submitted(cancelled) == "submitted job 7 (a), cancelled: dependency 3 failed"
    scheduled = job | {"status": "scheduled", "run_at": "2026-11-30T02:00:00Z"}
    assert output.submitted(scheduled).startswith("submitted job 7 (a), scheduled for 2026-11-")


def test_schedule_create_sends_only_the_flags_given() -> None:
    args = parser().parse_args(["schedule", "create", "tick", "true", "--every", "60"])
    assert schedule_body(args) == {"name": "tick", "command": "true", "every_seconds": 60}
    every_flag = [
        *("schedule", "create", "b", "x", "--cron", "@daily", "--tz", "Asia/Tokyo"),
        *("--overlap", "allow", "--catchup", "0", "--paused", "--priority", "-2"),
        *("--attempts", "3", "--timeout", "9"),
    ]
    assert schedule_body(parser().parse_args(every_flag)) == {
        "name": "b",
        "command": "x",
        "cron": "@daily",
        "timezone": "Asia/Tokyo",
        "overlap": "allow",
        "catchup_window_seconds": 0,
        "paused": True,
        "priority": -2,
        "max_attempts": 3,
        "timeout_seconds": 9,
    }
