"""jobsctl's commands of issue 14 against the whole system: submit's time, priority and
dependency flags, pause and resume, and `schedule ...`."""

import json
import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from tests.conftest import LiveSystem
from tests.e2e.test_cli import as_json, jobsctl, ok

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

FINISHED = {"completed", "failed", "cancelled"}


def refused(system: LiveSystem, *args: str) -> str:
    """The message of a command that the API (or the command line) refused."""
    result = jobsctl(system.gateway_url, *args)
    assert result.returncode == 2 and result.stdout == "", (args, result.stdout, result.stderr)
    return result.stderr


def test_submit_with_a_time_a_priority_and_dependencies(live_system: LiveSystem) -> None:
    later = (datetime.now(UTC) + timedelta(hours=2)).replace(microsecond=0)
    at = later.astimezone(timezone(timedelta(hours=-5))).isoformat()
    job = as_json(live_system, "submit", "later", "true", "--at", at, "--priority", "5")
    assert (job["status"], job["priority"]) == ("scheduled", 5)
    assert datetime.fromisoformat(job["run_at"]) == later
    soon = ok(live_system, "submit", "soon", "true", "--delay", "3600")
    assert re.fullmatch(r"submitted job \d+ \(soon\), scheduled for [\d-]+ [\d:]+\n", soon), soon
    listed = ok(live_system, "list", "--status", "scheduled").splitlines()
    assert [line.split()[1:3] for line in listed[1:]] == [
        ["soon", "scheduled"],
        ["later", "scheduled"],
    ]

    first = as_json(live_system, "submit", "first", "sleep 0.3")["id"]
    second = as_json(live_system, "submit", "second", "true")["id"]
    after = ok(
        live_system, "submit", "after", "echo after", "--after", str(first), "--after", str(second)
    )
    assert after.endswith(f", after jobs {first}, {second}\n"), after
    after_id = int(after.split()[2])
    done = live_system.wait_for_job(after_id, FINISHED)
    assert done["status"] == "completed" and done["depends_on"] == [first, second]

    waited = jobsctl(live_system.gateway_url, "submit", "failing", "exit 1", "--wait", "--json")
    failing = json.loads(waited.stdout)
    assert waited.returncode == 1 and failing["status"] == "failed"
    orphan = ok(live_system, "submit", "orphan", "true", "--after", str(failing["id"]))
    assert orphan.endswith(f", cancelled: dependency {failing['id']} failed\n"), orphan


def test_submit_refusals_say_why(live_system: LiveSystem) -> None:
    naive = refused(live_system, "submit", "x", "true", "--at", "2030-01-01T03:00:00")
    assert naive.startswith("jobsctl: run_at: ") and "timezone" in naive
    missing = refused(live_system, "submit", "x", "true", "--after", "999999")
    assert missing == "jobsctl: depends_on: job 999999 does not exist\n"
    assert "priority" in refused(live_system, "submit", "x", "true", "--priority", "101")
    both = refused(
        live_system, "submit", "x", "true", "--at", "2030-01-01T03:00:00Z", "--delay", "5"
    )
    assert "not allowed with argument" in both
    assert as_json(live_system, "stats")["total"] == 0


def test_pause_and_resume(live_system: LiveSystem, tmp_path: Path) -> None:
    assert ok(live_system, "pause") == "paused: nothing new starts; running jobs go on\n"
    assert ok(live_system, "config", "get") == "max_concurrent_jobs: 2\npaused:              yes\n"
    assert as_json(live_system, "stats")["paused"] is True
    held = as_json(live_system, "submit", "held", "echo held")
    assert held["status"] == "queued"
    # The limit can change while paused, and the pause stays.
    assert as_json(live_system, "config", "set", "3") == {"max_concurrent_jobs": 3, "paused": True}
    assert live_system.api("GET", f"/api/jobs/{held['id']}").json()["status"] == "queued"
    assert ok(live_system, "resume") == "resumed: jobs start again\n"
    assert live_system.wait_for_job(held["id"], FINISHED)["status"] == "completed"
    assert as_json(live_system, "pause") == {"max_concurrent_jobs": 3, "paused": True}
    assert as_json(live_system, "resume") == {"max_concurrent_jobs": 3, "paused": False}


def test_schedule_commands(live_system: LiveSystem) -> None:
    created = ok(
        live_system,
        *("schedule", "create", "backup", "echo backed up", "--cron", "0 3 * * *"),
        *("--tz", "Europe/Berlin", "--overlap", "allow", "--catchup", "120"),
        *("--priority", "2", "--attempts", "3", "--timeout", "60"),
    )
    assert re.fullmatch(
        r"created schedule backup; next run [\d-]+ 03:00:00\+0[12]:00\n", created
    ), created
    backup = as_json(live_system, "schedule", "show", "backup")
    assert backup == live_system.api("GET", "/api/schedules/backup").json()
    assert {key: backup[key] for key in ("cron", "every_seconds", "timezone", "overlap")} == {
        "cron": "0 3 * * *",
        "every_seconds": None,
        "timezone": "Europe/Berlin",
        "overlap": "allow",
    }
    assert (backup["catchup_window_seconds"], backup["priority"]) == (120, 2)
    assert (backup["max_attempts"], backup["timeout_seconds"]) == (3, 60)

    paused = ok(
        live_system, "schedule", "create", "reports/daily", "true", "--every", "3600", "--paused"
    )
    assert paused == "created schedule reports/daily; paused\n"
    table = ok(live_system, "schedule", "list").splitlines()
    assert table[0].split() == [
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
    assert table[1].startswith("backup ") and "0 3 * * *" in table[1]
    assert "Europe/Berlin" in table[1] and backup["next_run_at"][11:19] in table[1]
    assert table[2].split()[:6] == ["reports/daily", "every", "3600s", "UTC", "paused", "-"]
    assert [s["name"] for s in as_json(live_system, "schedule", "list")] == [
        "backup",
        "reports/daily",
    ]

    shown = ok(live_system, "schedule", "show", "reports/daily")
    assert re.search(r"^paused: +yes$", shown, re.M) and re.search(
        r"^next_run_at: +-$", shown, re.M
    )
    triggered = ok(live_system, "schedule", "trigger", "reports/daily")
    match = re.fullmatch(
        r"schedule reports/daily: submitted job (\d+) \(reports/daily@\S+Z\)\n", triggered
    )
    assert match, triggered
    assert live_system.wait_for_job(int(match[1]), FINISHED)["status"] == "completed"
    resumed = ok(live_system, "schedule", "resume", "reports/daily")
    assert re.fullmatch(r"schedule reports/daily active; next run [\d-]+ [\d:]+\+00:00\n", resumed)
    assert ok(live_system, "schedule", "pause", "backup") == "schedule backup paused\n"
    assert as_json(live_system, "schedule", "pause", "backup")["next_run_at"] is None

    assert ok(live_system, "schedule", "delete", "reports/daily") == (
        "schedule reports/daily deleted\n"
    )
    gone = refused(live_system, "schedule", "show", "reports/daily")
    assert gone == "jobsctl: schedule 'reports/daily' not found\n"
    assert "not found" in refused(live_system, "schedule", "delete", "reports/daily")
    assert [s["name"] for s in as_json(live_system, "schedule", "list")] == ["backup"]


def test_schedule_refusals_say_why(live_system: LiveSystem) -> None:
    assert "one of the arguments --cron --every is required" in refused(
        live_system, "schedule", "create", "x", "true"
    )
    assert refused(
        live_system, "schedule", "create", "x", "true", "--cron", "61 * * * *"
    ).startswith("jobsctl: cron: ")
    assert "time zone" in refused(
        live_system, "schedule", "create", "x", "true", "--every", "5", "--tz", "Mars/Base"
    )
    ok(live_system, "schedule", "create", "x", "true", "--every", "3600", "--paused")
    taken = refused(live_system, "schedule", "create", "x", "true", "--every", "60")
    assert "x" in taken and "exists" in taken
    assert ok(live_system, "schedule", "list").count("\n") == 2
