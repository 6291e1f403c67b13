"""`GET /api/jobs/{id}/why`, `jobsctl why` and `GET /api/series` against the whole
system: each situation a job waits in is named with its fields, and the series counts
what ran, one point a minute."""

from datetime import datetime, timedelta
from typing import Any

import pytest
from jobsched_launcher import wait_for

from tests.conftest import LiveSystem
from tests.e2e.test_cli import ok
from tests.e2e.test_rest_keys import answer, create

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

SERIES = "/api/series?window=600&key=s"


def why(system: LiveSystem, job_id: int) -> dict[str, Any]:
    explained: dict[str, Any] = answer(system, "GET", f"/api/jobs/{job_id}/why", 200)
    assert explained["job_id"] == job_id
    return explained


def blocker(explained: dict[str, Any], kind: str) -> dict[str, Any]:
    found = [b for b in explained["blockers"] if b["kind"] == kind]
    assert found, explained
    assert found[0]["message"], explained
    one: dict[str, Any] = found[0]
    return one


def running(system: LiveSystem, name: str, key: str | None = None) -> int:
    job_id = create(system, name, "sleep 60", key)
    system.wait_for_job(job_id, {"running"})
    return job_id


def test_why_names_each_situation(live_system: LiveSystem) -> None:
    answer(live_system, "PUT", "/api/config", 200, {"max_concurrent_jobs": 4})
    answer(live_system, "PUT", "/api/limits/m", 200, {"max_concurrent_jobs": 1})
    holder = running(live_system, "holder", "m")
    waiting = why(live_system, create(live_system, "second", "true", "m"))
    assert (waiting["status"], waiting["runnable"]) == ("queued", False)
    assert blocker(waiting, "key_limit") | {"message": ""} == {
        "kind": "key_limit",
        "message": "",
        "key": "m",
        "limit": 1,
        "running": 1,
        "holders": [holder],
    }
    answer(live_system, "PUT", "/api/limits/p", 200, {"paused": True})
    paused = blocker(why(live_system, create(live_system, "p1", "true", "p")), "key_paused")
    assert paused == {"kind": "key_paused", "message": paused["message"], "key": "p"}
    body: dict[str, Any] = {"name": "child", "command": "true", "depends_on": [holder]}
    child = answer(live_system, "POST", "/api/jobs/create", 201, body)["id"]
    assert blocker(why(live_system, child), "dependencies")["waiting_on"] == [holder]
    body = {"name": "later", "command": "true", "delay_seconds": 3600}
    later = answer(live_system, "POST", "/api/jobs/create", 201, body)
    run_at = blocker(why(live_system, later["id"]), "not_before")["run_at"]
    assert run_at == later["run_at"]
    answer(live_system, "PUT", "/api/config", 200, {"paused": True})
    assert blocker(why(live_system, create(live_system, "free", "true")), "paused")
    answer(live_system, "PUT", "/api/config", 200, {"paused": False})
    done = create(live_system, "done", "true")
    live_system.wait_for_job(done, {"completed"})
    finished = why(live_system, done)
    assert (finished["status"], finished["position"], finished["blockers"]) == (
        "completed",
        None,
        [],
    )
    assert finished["message"]
    shown = ok(live_system, "why", str(child)).splitlines()
    assert shown[0].startswith(f"job {child}: queued, not runnable")
    assert any(line.startswith("  dependencies: ") for line in shown[2:]), shown
    assert ok(live_system, "why", str(done)).startswith(f"job {done}: completed, not runnable\n")


def test_the_series_counts_what_ran(live_system: LiveSystem) -> None:
    answer(live_system, "PUT", "/api/config", 200, {"max_concurrent_jobs": 3})
    answer(live_system, "PUT", "/api/limits/s", 200, {"max_concurrent_jobs": 2})
    ids = [create(live_system, f"s{i}", "true", "s") for i in range(2)]
    ids.append(create(live_system, "bad", "exit 1"))
    for job_id in ids:
        live_system.wait_for_job(job_id, {"completed", "failed"})

    def counted() -> bool:
        points: list[dict[str, int]] = answer(live_system, "GET", SERIES, 200)["points"]
        return sum(p["completed"] for p in points) == 2 and sum(p["failed"] for p in points) == 1

    wait_for(counted, 10, "the series to count 2 completed and 1 failed")
    points = answer(live_system, "GET", SERIES, 200)["points"]
    assert 10 <= len(points) <= 11, points
    times = [datetime.fromisoformat(p["at"]) for p in points]
    assert times == sorted(times) and times[1] - times[0] == timedelta(minutes=1)
    assert {(p["limit"], p["key_limit"]) for p in points[-1:]} == {(3, 2)}
    unkeyed = answer(live_system, "GET", "/api/series", 200)["points"]
    assert len(unkeyed) in (60, 61) and unkeyed[-1]["key_limit"] is None
    answer(live_system, "GET", "/api/series?window=0", 422)
    answer(live_system, "GET", "/api/series?window=86401", 422)
