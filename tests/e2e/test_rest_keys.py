"""Concurrency keys over REST against the whole system: a key's limit and pause hold
its jobs, `/api/limits` counts them, schedules pass their key on, and the refusals
come with the status a client can act on."""

from typing import Any

import pytest
from jobsched_launcher import wait_for

from tests.conftest import LiveSystem

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

FINISHED = {"completed", "failed", "cancelled"}
KEY_PATH = "/api/limits/tenant%2F42"


def answer(system: LiveSystem, method: str, path: str, status: int, body: Any = None) -> Any:
    reply = system.api(method, path, body)
    assert reply.status_code == status, (method, path, reply.text)
    return reply.json() if reply.content else None


def create(system: LiveSystem, name: str, command: str, key: str | None = None) -> int:
    body = {"name": name, "command": command, "concurrency_key": key}
    job = answer(system, "POST", "/api/jobs/create", 201, body)
    assert job["concurrency_key"] == key
    job_id: int = job["id"]
    return job_id


def test_a_keys_limit_holds_its_jobs_inside_the_global_one(live_system: LiveSystem) -> None:
    answer(live_system, "PUT", "/api/config", 200, {"max_concurrent_jobs": 4})
    made = answer(live_system, "PUT", KEY_PATH, 200, {"max_concurrent_jobs": 1})
    assert made == {
        "key": "tenant/42",
        "max_concurrent_jobs": 1,
        "paused": False,
        "running": 0,
        "queued": 0,
    }
    ids = [create(live_system, f"t{i}", "sleep 0.4", "tenant/42") for i in range(3)]
    most = 0

    def all_done() -> bool:
        nonlocal most
        limit = answer(live_system, "GET", KEY_PATH, 200)
        assert limit["running"] <= 1, limit
        most = max(most, limit["running"])
        jobs = [answer(live_system, "GET", f"/api/jobs/{i}", 200) for i in ids]
        return all(job["status"] in FINISHED for job in jobs)

    wait_for(all_done, 30, "the key's 3 jobs to finish")
    assert most == 1
    jobs = [answer(live_system, "GET", f"/api/jobs/{i}", 200) for i in ids]
    assert {(job["status"], job["concurrency_key"]) for job in jobs} == {("completed", "tenant/42")}
    runs = sorted((job["started_at"], job["finished_at"]) for job in jobs)
    assert all(runs[n][1] <= runs[n + 1][0] for n in range(2)), runs  # one after another


def test_a_paused_key_starts_nothing_until_resumed(live_system: LiveSystem) -> None:
    answer(live_system, "PUT", KEY_PATH, 200, {"max_concurrent_jobs": 3, "paused": True})
    held = create(live_system, "held", "true", "tenant/42")
    # A later job without a key runs: the claim passed the held one over.
    live_system.wait_for_job(create(live_system, "free", "true"), {"completed"})
    assert answer(live_system, "GET", f"/api/jobs/{held}", 200)["status"] == "queued"
    listed = answer(live_system, "GET", "/api/limits", 200)["limits"]
    assert listed == [
        {"key": "tenant/42", "max_concurrent_jobs": 3, "paused": True, "running": 0, "queued": 1}
    ]
    resumed = answer(live_system, "PUT", KEY_PATH, 200, {"max_concurrent_jobs": 3})
    assert (resumed["paused"], resumed["max_concurrent_jobs"]) == (False, 3)
    live_system.wait_for_job(held, {"completed"})


def test_a_limit_from_set_to_removed(live_system: LiveSystem) -> None:
    answer(live_system, "GET", "/api/limits/nothing", 404)
    answer(live_system, "DELETE", "/api/limits/nothing", 404)
    answer(live_system, "PUT", "/api/limits/n%C3%A4chtlich%20%E2%9C%93", 200, {})
    unlimited = answer(live_system, "GET", "/api/limits/n%C3%A4chtlich%20%E2%9C%93", 200)
    assert (unlimited["key"], unlimited["max_concurrent_jobs"]) == ("nächtlich ✓", None)
    answer(live_system, "DELETE", "/api/limits/n%C3%A4chtlich%20%E2%9C%93", 204)
    answer(live_system, "GET", "/api/limits/n%C3%A4chtlich%20%E2%9C%93", 404)
    assert answer(live_system, "GET", "/api/limits", 200) == {"limits": []}


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("PUT", "/api/limits/k", {"max_concurrent_jobs": 0}),
        ("PUT", "/api/limits/k", {"max_concurrent_jobs": 10_001}),
        ("PUT", "/api/limits/%20", {"max_concurrent_jobs": 1}),
        ("PUT", "/api/limits/" + "x" * 256, {"max_concurrent_jobs": 1}),
        ("PUT", "/api/limits/a%01b", {}),
        ("POST", "/api/jobs/create", {"name": "j", "command": "true", "concurrency_key": ""}),
        ("POST", "/api/jobs/create", {"name": "j", "command": "true", "concurrency_key": "\t"}),
        (
            "POST",
            "/api/jobs/create",
            {"name": "j", "command": "true", "concurrency_key": "x" * 256},
        ),
    ],
)
def test_bad_keys_and_limits_are_a_422(
    live_system: LiveSystem, method: str, path: str, body: Any
) -> None:
    reply = answer(live_system, method, path, 422, body)
    assert reply["detail"], reply


def test_a_schedule_passes_its_key_on(live_system: LiveSystem) -> None:
    body = {"name": "reports", "command": "true", "every_seconds": 3600}
    made = answer(live_system, "POST", "/api/schedules", 201, body | {"concurrency_key": "r"})
    assert made["concurrency_key"] == "r"
    assert answer(live_system, "GET", "/api/schedules/reports", 200)["concurrency_key"] == "r"
    job = answer(live_system, "POST", "/api/schedules/reports/trigger", 201)
    assert job["concurrency_key"] == "r"
    put = answer(live_system, "PUT", "/api/schedules/reports", 200, body)
    assert put["concurrency_key"] is None
