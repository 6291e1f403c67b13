"""`/api/schedules` over the whole system: a schedule's life from create to delete, its
next run in its own time zone, the jobs it makes and how they are named, and the
refusals, each with the status and message a client can act on."""

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from jobsched_launcher import wait_for

from tests.conftest import LiveSystem

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

FINISHED = {"completed", "failed", "cancelled"}
FIRE_NAME = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"  # a fire time in UTC, to the second
BERLIN_3AM = r"\d{4}-\d\d-\d\dT03:00:00\+0[12]:00"
TRIGGER_NAME = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z"  # now in UTC, to the microsecond


def answer(system: LiveSystem, method: str, path: str, status: int, body: Any = None) -> Any:
    reply = system.api(method, path, body)
    assert reply.status_code == status, (method, path, reply.text)
    return reply.json() if reply.content else None


def jobs_of(system: LiveSystem, schedule: str) -> list[dict[str, Any]]:
    jobs = system.api("GET", "/api/jobs", params={"limit": 1000}).json()
    return [job for job in jobs if job["name"].startswith(f"{schedule}@")]


def test_a_schedule_from_create_to_delete(live_system: LiveSystem) -> None:
    body = {
        "name": "backup",
        "command": "echo backed up",
        "cron": "0 3 * * *",
        "timezone": "Europe/Berlin",
    }
    made = answer(live_system, "POST", "/api/schedules", 201, body)
    assert {key: made[key] for key in body} == body
    assert made | {"next_run_at": None, "created_at": None, "updated_at": None} == {
        **body,
        "every_seconds": None,
        "overlap": "skip",
        "catchup_window_seconds": 60,
        "paused": False,
        "priority": 0,
        "max_attempts": 1,
        "timeout_seconds": None,
        "concurrency_key": None,
        "next_run_at": None,
        "last_run_at": None,
        "last_job_id": None,
        "skipped_count": 0,
        "created_at": None,
        "updated_at": None,
    }
    # 03:00 in Berlin, written with Berlin's offset (+01:00 in winter, +02:00 in summer).
    next_run = datetime.fromisoformat(made["next_run_at"])
    assert re.fullmatch(BERLIN_3AM, made["next_run_at"]), made
    assert timedelta(0) < next_run - datetime.now(UTC) <= timedelta(days=1)

    assert answer(live_system, "GET", "/api/schedules", 200) == {"schedules": [made]}
    assert answer(live_system, "GET", "/api/schedules/backup", 200) == made

    paused = answer(live_system, "POST", "/api/schedules/backup/pause", 200)
    assert paused["paused"] is True and paused["next_run_at"] is None
    job = answer(live_system, "POST", "/api/schedules/backup/trigger", 201)
    assert re.fullmatch(f"backup@{TRIGGER_NAME}", job["name"]), job
    assert live_system.wait_for_job(job["id"], FINISHED)["status"] == "completed"
    assert answer(live_system, "GET", f"/api/jobs/{job['id']}/output", 200)["output"] == (
        "backed up\n"
    )
    resumed = answer(live_system, "POST", "/api/schedules/backup/resume", 200)
    assert resumed["paused"] is False
    assert re.fullmatch(BERLIN_3AM, resumed["next_run_at"]), resumed
    assert resumed["last_job_id"] == job["id"]

    # PUT replaces: what it omits takes its default again (UTC here).
    hourly = {"command": "true", "every_seconds": 3600, "priority": -3}
    changed = answer(live_system, "PUT", "/api/schedules/backup", 200, hourly)
    assert (changed["cron"], changed["every_seconds"], changed["timezone"]) == (None, 3600, "UTC")
    assert changed["priority"] == -3 and changed["next_run_at"].endswith(":00:00Z")
    assert answer(live_system, "PUT", "/api/schedules/backup", 200, {**hourly, "name": "backup"})
    renamed = answer(live_system, "PUT", "/api/schedules/backup", 422, {**hourly, "name": "x"})
    assert "path" in renamed["detail"]

    assert answer(live_system, "DELETE", "/api/schedules/backup", 204) is None
    for method, path in [
        ("GET", ""),
        ("DELETE", ""),
        ("POST", "/pause"),
        ("POST", "/resume"),
        ("POST", "/trigger"),
    ]:
        gone = answer(live_system, method, f"/api/schedules/backup{path}", 404)
        assert "backup" in gone["detail"]
    assert answer(live_system, "PUT", "/api/schedules/backup", 404, hourly)
    assert answer(live_system, "GET", "/api/schedules", 200) == {"schedules": []}
    # The jobs it made stay.
    assert answer(live_system, "GET", f"/api/jobs/{job['id']}", 200)["name"] == job["name"]


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({}, "cron"),
        ({"cron": "@daily", "every_seconds": 60}, "cron"),
        ({"every_seconds": 0}, "every_seconds"),
        ({"cron": "61 * * * *"}, "cron"),
        ({"cron": "@fortnightly"}, "cron"),
        ({"cron": "@daily", "timezone": "Mars/Olympus_Mons"}, "time zone"),
        ({"cron": "@daily", "name": "a@b"}, "@"),
        ({"every_seconds": 60, "overlap": "queue"}, "overlap"),
        ({"every_seconds": 60, "priority": 101}, "priority"),
        ({"every_seconds": 60, "catchup_window_seconds": -1}, "catchup_window_seconds"),
    ],
)
def test_a_bad_schedule_gets_a_422_that_says_why(
    live_system: LiveSystem, body: dict[str, Any], words: str
) -> None:
    refused = answer(
        live_system, "POST", "/api/schedules", 422, {"name": "s", "command": "true", **body}
    )
    assert words in str(refused["detail"]), refused
    assert answer(live_system, "GET", "/api/schedules", 200) == {"schedules": []}


def test_a_taken_name_is_a_409(live_system: LiveSystem) -> None:
    body = {"name": "once", "command": "true", "cron": "@monthly"}
    answer(live_system, "POST", "/api/schedules", 201, body)
    taken = answer(live_system, "POST", "/api/schedules", 409, {**body, "cron": "@daily"})
    assert "once" in taken["detail"]


def test_an_interval_schedule_makes_jobs_named_for_their_fire_times(
    live_system: LiveSystem,
) -> None:
    tick = {"name": "tick", "command": "true", "every_seconds": 1, "priority": 9}
    answer(live_system, "POST", "/api/schedules", 201, tick)
    wait_for(lambda: len(jobs_of(live_system, "tick")) >= 3, 20, "three fires of tick")
    paused = answer(live_system, "POST", "/api/schedules/tick/pause", 200)
    jobs = jobs_of(live_system, "tick")
    names = [job["name"] for job in jobs]
    assert all(re.fullmatch(f"tick@{FIRE_NAME}", name) for name in names), names
    assert len(set(names)) == len(names)
    assert {job["priority"] for job in jobs} == {9}
    assert paused["last_job_id"] in {job["id"] for job in jobs}
    fire_times = {datetime.fromisoformat(name.split("@")[1]) for name in names}
    assert datetime.fromisoformat(paused["last_run_at"]) in fire_times
    for job in jobs:
        assert live_system.wait_for_job(job["id"], FINISHED)["status"] == "completed"


def test_overlap_skip_counts_the_fires_it_skips(live_system: LiveSystem, tmp_path: Any) -> None:
    gate = tmp_path / "gate"
    slow = {"name": "slow", "command": f"while [ ! -e {gate} ]; do sleep 0.05; done"}
    answer(live_system, "POST", "/api/schedules", 201, {**slow, "every_seconds": 1})

    def skipped() -> int:
        count: int = answer(live_system, "GET", "/api/schedules/slow", 200)["skipped_count"]
        return count

    wait_for(lambda: skipped() >= 2, 20, "two fires skipped while the first job runs")
    answer(live_system, "POST", "/api/schedules/slow/pause", 200)
    gate.touch()
    jobs = jobs_of(live_system, "slow")
    assert len(jobs) == 1, [job["name"] for job in jobs]
    assert live_system.wait_for_job(jobs[0]["id"], FINISHED)["status"] == "completed"
