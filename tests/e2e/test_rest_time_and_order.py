"""Priorities, run_at and delays, dependencies and the pause through the REST API of
the whole system: the fields travel both ways, bad ones get a 422 that says why, and
the claim honours what they ask."""

import time
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from jobsched_launcher import wait_for

from tests.conftest import LiveSystem

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

FINISHED = {"completed", "failed", "cancelled"}


def created(system: LiveSystem, body: dict[str, Any]) -> dict[str, Any]:
    reply = system.api("POST", "/api/jobs/create", body)
    assert reply.status_code == 201, reply.text
    job: dict[str, Any] = reply.json()
    return job


def refused(system: LiveSystem, body: dict[str, Any]) -> str:
    """The message of a 422 to a job create."""
    reply = system.api("POST", "/api/jobs/create", body)
    assert reply.status_code == 422, reply.text
    detail = reply.json()["detail"]
    return detail if isinstance(detail, str) else "; ".join(d["msg"] for d in detail)


def at(text: str | None) -> datetime:
    assert text is not None
    return datetime.fromisoformat(text)


def test_a_job_in_the_future_is_scheduled_and_shows_its_fields(live_system: LiveSystem) -> None:
    later = (datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=0)
    in_berlin = later.astimezone(timezone(timedelta(hours=1))).isoformat()  # an offset, not Z
    job = created(
        live_system,
        {"name": "later", "command": "true", "priority": 7, "run_at": in_berlin},
    )
    assert job["status"] == "scheduled" and job["priority"] == 7 and job["depends_on"] == []
    assert at(job["run_at"]) == later and job["run_at"].endswith("Z")
    assert live_system.api("GET", f"/api/jobs/{job['id']}").json() == job
    delayed = created(live_system, {"name": "delayed", "command": "true", "delay_seconds": 3600})
    assert delayed["status"] == "scheduled"
    waits = at(delayed["run_at"]) - at(delayed["created_at"])
    assert abs(waits - timedelta(seconds=3600)) < timedelta(seconds=1), waits

    listed = live_system.api("GET", "/api/jobs", params={"status": "scheduled"}).json()
    assert [j["name"] for j in listed] == ["delayed", "later"]
    stats = live_system.api("GET", "/api/stats").json()
    assert (stats["scheduled"], stats["queued"], stats["total"]) == (2, 0, 2)
    # A scheduled job can be cancelled like a queued one.
    cancelled = live_system.api("POST", f"/api/jobs/{job['id']}/cancel").json()
    assert cancelled["status"] == "cancelled"


def test_a_short_delay_is_honoured(live_system: LiveSystem) -> None:
    job = created(live_system, {"name": "soon", "command": "true", "delay_seconds": 1.5})
    assert job["status"] == "scheduled"
    done = live_system.wait_for_job(job["id"], FINISHED, timeout=20)
    assert done["status"] == "completed" and done["run_at"] is None
    assert at(done["started_at"]) >= at(job["created_at"]) + timedelta(seconds=1.5)


def test_bad_times_and_dependencies_get_a_422_that_says_why(live_system: LiveSystem) -> None:
    base = {"name": "bad", "command": "true"}
    assert "timezone" in refused(live_system, {**base, "run_at": "2026-11-29T03:00:00"})
    assert "RFC 3339" in refused(live_system, {**base, "run_at": 1796007600})
    both = {**base, "run_at": "2030-01-01T00:00:00Z", "delay_seconds": 5}
    assert "delay_seconds" in refused(live_system, both)
    assert "delay_seconds" in refused(live_system, {**base, "delay_seconds": -1})
    assert "priority" in refused(live_system, {**base, "priority": 101})
    assert refused(live_system, {**base, "depends_on": [999999]}) == (
        "depends_on: job 999999 does not exist"
    )
    bulk = {"jobs": [base, {**base, "name": "b2", "depends_on": [999999]}]}
    reply = live_system.api("POST", "/api/jobs/bulk", bulk)
    assert reply.status_code == 422 and "999999" in reply.text
    assert live_system.api("GET", "/api/stats").json()["total"] == 0


def test_dependencies_wait_for_completion_and_cancel_on_failure(live_system: LiveSystem) -> None:
    first = created(live_system, {"name": "first", "command": "sleep 0.5"})
    then = created(live_system, {"name": "then", "command": "true", "depends_on": [first["id"]]})
    assert then["depends_on"] == [first["id"]] and then["status"] in {"queued", "scheduled"}
    done = live_system.wait_for_job(then["id"], FINISHED)
    assert done["status"] == "completed"
    before = live_system.wait_for_job(first["id"], FINISHED)
    assert at(done["started_at"]) >= at(before["finished_at"])

    failed = created(live_system, {"name": "fails", "command": "exit 3"})
    assert live_system.wait_for_job(failed["id"], FINISHED)["status"] == "failed"
    orphan = created(
        live_system, {"name": "orphan", "command": "true", "depends_on": [failed["id"]]}
    )
    assert orphan["status"] == "cancelled"
    assert orphan["reason"] == f"dependency {failed['id']} failed"
    stopped = created(live_system, {"name": "stopped", "command": "true", "delay_seconds": 600})
    live_system.api("POST", f"/api/jobs/{stopped['id']}/cancel")
    bulk = [{"name": "late", "command": "true", "depends_on": [stopped["id"]]}]
    (late,) = live_system.api("POST", "/api/jobs/bulk", {"jobs": bulk}).json()
    assert late["status"] == "cancelled"
    assert late["reason"] == f"dependency {stopped['id']} cancelled"


def config(system: LiveSystem, body: dict[str, Any]) -> dict[str, Any]:
    reply = system.api("PUT", "/api/config", body)
    assert reply.status_code == 200, reply.text
    answer: dict[str, Any] = reply.json()
    return answer


def test_pause_holds_new_starts_and_priorities_order_the_queue(live_system: LiveSystem) -> None:
    assert config(live_system, {"paused": True}) == {"max_concurrent_jobs": 2, "paused": True}
    assert config(live_system, {"max_concurrent_jobs": 1}) == {
        "max_concurrent_jobs": 1,
        "paused": True,
    }
    assert live_system.api("PUT", "/api/config", {}).status_code == 422
    assert live_system.api("GET", "/api/stats").json()["paused"] is True
    ids = {
        priority: created(
            live_system, {"name": f"p{priority}", "command": "true", "priority": priority}
        )["id"]
        for priority in (-5, 0, 50, 100, -100)
    }
    # Held: none starts while paused, however long it is given (here 2 s).
    held_until = datetime.now(UTC) + timedelta(seconds=2)
    while datetime.now(UTC) < held_until:
        statuses = {j["status"] for j in live_system.api("GET", "/api/jobs").json()}
        assert statuses == {"queued"}, statuses
        time.sleep(0.1)
    assert config(live_system, {"paused": False}) == {"max_concurrent_jobs": 1, "paused": False}
    jobs = [live_system.wait_for_job(ids[p], FINISHED) for p in (100, 50, 0, -5, -100)]
    starts = [at(job["started_at"]) for job in jobs]
    assert starts == sorted(starts), [(j["name"], j["started_at"]) for j in jobs]


def test_pause_lets_running_jobs_finish(live_system: LiveSystem, tmp_path: Any) -> None:
    gate = tmp_path / "gate"
    running = created(
        live_system,
        {"name": "running", "command": f"while [ ! -e {gate} ]; do sleep 0.05; done"},
    )
    live_system.wait_for_job(running["id"], {"running"})
    config(live_system, {"paused": True})
    waiting = created(live_system, {"name": "waiting", "command": "true"})
    gate.touch()
    assert live_system.wait_for_job(running["id"], FINISHED)["status"] == "completed"
    assert live_system.api("GET", f"/api/jobs/{waiting['id']}").json()["status"] == "queued"
    config(live_system, {"paused": False})
    assert live_system.wait_for_job(waiting["id"], FINISHED)["status"] == "completed"
    wait_for(
        lambda: live_system.api("GET", "/api/stats").json()["completed"] == 2, 10, "the counts"
    )
