"""Concurrency keys over REST against a fake scheduler: jobs and schedules carry their
key, `/api/limits` makes one LimitService call each, `/why` and `/api/series` one
JobService call, and keys travel whole in paths."""

from typing import Any

import grpc
import pytest
from jobsched.v1 import jobs_pb2 as pb
from jobsched_gateway.app import create_app
from jobsched_gateway.settings import Settings

from tests.unit.gateway_fakes import FakeScheduler, exchange, only_sent

LIMITED = pb.KeyLimit(key="migrations", max_concurrent_jobs=2, running=1, queued=5)
UNLIMITED = pb.KeyLimit(key="tenant/42", paused=True, queued=3)
LIMITED_JSON = {"key": "migrations", "max_concurrent_jobs": 2, "paused": False}
LIMITED_JSON |= {"running": 1, "queued": 5}
WAITING = pb.JobExplanation(
    job_id=9,
    status=pb.JOB_STATUS_QUEUED,
    runnable=False,
    position=3,
    message="Job 9 is queued behind the limit of key migrations.",
    blockers=[
        pb.Blocker(kind="key_limit", message="Key migrations runs 2 of 2.", key="migrations")
    ],
)
WAITING.blockers[0].limit, WAITING.blockers[0].running = 2, 2
WAITING.blockers[0].holders.extend([4, 5])


def fake(**errors: grpc.StatusCode) -> FakeScheduler:
    replies: dict[str, Any] = {
        "CreateJob": pb.Job(id=1, name="m", concurrency_key="migrations"),
        "CreateJobs": pb.CreateJobsResponse(jobs=[pb.Job(id=1), pb.Job(id=2)]),
        "CreateSchedule": pb.Schedule(name="s", every_seconds=60, concurrency_key="reports"),
        "ListLimits": pb.ListLimitsResponse(limits=[LIMITED, UNLIMITED]),
        "GetLimit": LIMITED,
        "SetLimit": LIMITED,
        "DeleteLimit": pb.DeleteLimitResponse(),
        "ExplainJob": WAITING,
        "GetSeries": pb.Series(points=[pb.SeriesPoint(running=2, limit=4, key_limit=2)]),
    }
    return FakeScheduler({**replies, **errors})


def test_a_job_carries_its_key_both_ways() -> None:
    scheduler = fake()
    body = {"name": "m", "command": "true", "concurrency_key": "migrations"}
    status, answer, _ = exchange(scheduler, "POST", "/api/jobs/create", body)
    assert (status, answer["concurrency_key"]) == (201, "migrations")
    assert only_sent(scheduler, pb.CreateJobRequest).concurrency_key == "migrations"
    scheduler = fake()
    exchange(scheduler, "POST", "/api/jobs/create", {"name": "n", "command": "true"})
    assert only_sent(scheduler, pb.CreateJobRequest).concurrency_key == ""


def test_bulk_items_carry_their_keys() -> None:
    scheduler = fake()
    jobs = [{"name": "a", "command": "true", "concurrency_key": "k/1"}]
    jobs.append({"name": "b", "command": "true"})
    status, answer, _ = exchange(scheduler, "POST", "/api/jobs/bulk", {"jobs": jobs})
    assert status == 201 and [job["concurrency_key"] for job in answer] == [None, None]
    sent = only_sent(scheduler, pb.CreateJobsRequest)
    assert [job.concurrency_key for job in sent.jobs] == ["k/1", ""]


def test_a_schedule_carries_its_key_both_ways() -> None:
    scheduler = fake()
    body = {"name": "s", "command": "true", "every_seconds": 60, "concurrency_key": "reports"}
    status, answer, _ = exchange(scheduler, "POST", "/api/schedules", body)
    assert (status, answer["concurrency_key"]) == (201, "reports")
    assert only_sent(scheduler, pb.CreateScheduleRequest).schedule.concurrency_key == "reports"


@pytest.mark.parametrize("key", [7, ["k"], "\ud800"])
def test_a_key_that_cannot_be_sent_is_a_422(key: Any) -> None:
    scheduler = fake()
    body = {"name": "m", "command": "true", "concurrency_key": key}
    status, answer, _ = exchange(scheduler, "POST", "/api/jobs/create", body)
    assert status == 422 and "concurrency_key" in str(answer), answer
    assert scheduler.sent == []


def test_the_schedulers_refusal_of_a_key_is_a_422() -> None:
    scheduler = fake(CreateJob=grpc.StatusCode.INVALID_ARGUMENT)
    body = {"name": "m", "command": "true", "concurrency_key": "x" * 256}
    assert exchange(scheduler, "POST", "/api/jobs/create", body)[:2] == (
        422,
        {"detail": "said INVALID_ARGUMENT"},
    )


def test_limits_are_listed_by_key() -> None:
    scheduler = fake()
    status, answer, _ = exchange(scheduler, "GET", "/api/limits")
    assert status == 200
    assert answer == {
        "limits": [
            LIMITED_JSON,
            {"key": "tenant/42", "max_concurrent_jobs": None, "paused": True}
            | {"running": 0, "queued": 3},
        ]
    }
    assert scheduler.sent == [("ListLimits", pb.ListLimitsRequest())]


@pytest.mark.parametrize(
    ("method", "rpc", "answer_status"),
    [("GET", "GetLimit", 200), ("DELETE", "DeleteLimit", 204)],
)
def test_keys_travel_whole_in_the_path(method: str, rpc: str, answer_status: int) -> None:
    for encoded, key in [
        ("migrations", "migrations"),
        ("tenant%2F42", "tenant/42"),
        ("n%C3%A4chtlich%20%E2%9C%93", "nächtlich ✓"),
    ]:
        scheduler = fake()
        status, answer, _ = exchange(scheduler, method, f"/api/limits/{encoded}")
        assert status == answer_status
        assert answer == (LIMITED_JSON if method == "GET" else None)
        assert scheduler.sent == [(rpc, pb.LimitRef(key=key))]


def test_put_sets_both_the_limit_and_the_pause() -> None:
    scheduler = fake()
    body = {"max_concurrent_jobs": 2, "paused": True}
    status, answer, _ = exchange(scheduler, "PUT", "/api/limits/tenant%2F42", body)
    assert (status, answer) == (200, LIMITED_JSON)
    assert only_sent(scheduler, pb.SetLimitRequest) == pb.SetLimitRequest(
        key="tenant/42", max_concurrent_jobs=2, paused=True
    )
    for unlimited in [{"max_concurrent_jobs": None}, {}]:
        scheduler = fake()
        assert exchange(scheduler, "PUT", "/api/limits/k", unlimited)[0] == 200
        sent = only_sent(scheduler, pb.SetLimitRequest)
        assert not sent.HasField("max_concurrent_jobs") and not sent.paused


@pytest.mark.parametrize(
    "body", [{"max_concurrent_jobs": "two"}, {"max_concurrent_jobs": 2**31}, {"paused": "x"}]
)
def test_a_limit_that_cannot_be_sent_is_a_422(body: dict[str, Any]) -> None:
    scheduler = fake()
    assert exchange(scheduler, "PUT", "/api/limits/k", body)[0] == 422
    assert scheduler.sent == []


@pytest.mark.parametrize(
    ("method", "path", "code", "status"),
    [
        ("GET", "/api/limits/nothing", grpc.StatusCode.NOT_FOUND, 404),
        ("DELETE", "/api/limits/nothing", grpc.StatusCode.NOT_FOUND, 404),
        ("PUT", "/api/limits/k", grpc.StatusCode.INVALID_ARGUMENT, 422),
        ("GET", "/api/limits", grpc.StatusCode.UNAVAILABLE, 503),
    ],
)
def test_the_schedulers_refusals_of_limits(method: str, path: str, code: Any, status: int) -> None:
    rpc = {"GET": "GetLimit", "DELETE": "DeleteLimit", "PUT": "SetLimit"}[method]
    rpc = "ListLimits" if path == "/api/limits" else rpc
    body = {"max_concurrent_jobs": 0} if method == "PUT" else None
    assert exchange(fake(**{rpc: code}), method, path, body)[0] == status


def test_why_answers_the_explanation() -> None:
    scheduler = fake()
    status, answer, _ = exchange(scheduler, "GET", "/api/jobs/9/why")
    assert status == 200
    assert answer == {
        "job_id": 9,
        "status": "queued",
        "runnable": False,
        "position": 3,
        "message": "Job 9 is queued behind the limit of key migrations.",
        "blockers": [
            {
                "kind": "key_limit",
                "message": "Key migrations runs 2 of 2.",
                "key": "migrations",
                "limit": 2,
                "running": 2,
                "holders": [4, 5],
            }
        ],
    }
    assert scheduler.sent == [("ExplainJob", pb.ExplainJobRequest(id=9))]
    assert exchange(fake(ExplainJob=grpc.StatusCode.NOT_FOUND), "GET", "/api/jobs/8/why")[0] == 404
    assert exchange(fake(), "GET", "/api/jobs/0x/why")[0] == 422


def test_series_sends_the_window_and_the_key() -> None:
    scheduler = fake()
    status, answer, _ = exchange(scheduler, "GET", "/api/series?window=600&key=tenant%2F42")
    assert status == 200
    assert answer["points"] == [
        {
            "at": None,
            "running": 2,
            "limit": 4,
            "key_running": 0,
            "key_limit": 2,
            "completed": 0,
            "failed": 0,
            "cancelled": 0,
            "wait_p50_seconds": 0.0,
            "wait_p95_seconds": 0.0,
        }
    ]
    assert scheduler.sent == [
        ("GetSeries", pb.GetSeriesRequest(window_seconds=600, key="tenant/42"))
    ]
    scheduler = fake()
    exchange(scheduler, "GET", "/api/series")
    assert scheduler.sent == [("GetSeries", pb.GetSeriesRequest(window_seconds=3600))]


def test_the_openapi_documents_the_bounds() -> None:
    schema = create_app(Settings(API_TOKEN="", WEB_DIR="/nonexistent")).openapi()
    paths, models = schema["paths"], schema["components"]["schemas"]
    assert {"/api/limits", "/api/limits/{key}", "/api/jobs/{job_id}/why", "/api/series"} <= set(
        paths
    )
    assert set(paths["/api/limits/{key}"]) == {"get", "put", "delete"}
    key = models["JobCreate"]["properties"]["concurrency_key"]["anyOf"][0]
    assert (key["minLength"], key["maxLength"]) == (1, 255)
    assert "concurrency_key" in models["ScheduleBody"]["properties"]
    limit = models["KeyLimitBody"]["properties"]["max_concurrent_jobs"]["anyOf"][0]
    assert (limit["minimum"], limit["maximum"]) == (1, 10_000)
    kinds = models["Explanation"]["properties"]["blockers"]["items"]["discriminator"]["mapping"]
    assert set(kinds) == {
        "global_limit",
        "key_limit",
        "paused",
        "key_paused",
        "not_before",
        "dependencies",
        "no_runners",
        "runner_capacity",
        "behind",
    }
