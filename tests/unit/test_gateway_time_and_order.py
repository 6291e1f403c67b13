"""Priorities, run_at, delays, dependencies and the pause through the gateway, against
a fake scheduler: what a client gives reaches the scheduler as given, what cannot
travel is a 422 before any call, and every answer carries the new fields."""

from datetime import UTC, datetime
from typing import Any

import grpc
import pytest
from jobsched.v1 import jobs_pb2 as pb
from jobsched_common.timestamps import from_timestamp, to_timestamp

from tests.unit.gateway_fakes import FakeScheduler, exchange, only_sent

RUN_AT = datetime(2026, 11, 29, 3, 0, tzinfo=UTC)
WAITING = pb.Job(
    id=9,
    name="later",
    command="true",
    status=pb.JOB_STATUS_SCHEDULED,
    priority=-5,
    run_at=to_timestamp(RUN_AT),
    depends_on=[7, 8],
)


def fake() -> FakeScheduler:
    return FakeScheduler(
        {
            "CreateJob": WAITING,
            "CreateJobs": pb.CreateJobsResponse(jobs=[WAITING, WAITING]),
            "GetJob": WAITING,
            "ListJobs": pb.ListJobsResponse(jobs=[WAITING]),
            "GetConfig": pb.Config(max_concurrent_jobs=4, paused=True),
            "UpdateConfig": pb.Config(max_concurrent_jobs=4, paused=True),
            "GetStats": pb.Stats(queued=1, scheduled=2, total=3, paused=True),
        }
    )


def create(body: Any) -> tuple[int, Any, FakeScheduler]:
    scheduler = fake()
    status, answer, _ = exchange(scheduler, "POST", "/api/jobs/create", body)
    return status, answer, scheduler


def test_a_job_carries_priority_run_at_and_dependencies_both_ways() -> None:
    body = {"name": "later", "command": "true", "priority": -5, "depends_on": [7, 8]}
    status, answer, scheduler = create({**body, "run_at": "2026-11-29T04:00:00+01:00"})
    assert status == 201
    ((method, sent),) = scheduler.sent
    assert method == "CreateJob" and isinstance(sent, pb.CreateJobRequest)
    assert (sent.priority, list(sent.depends_on)) == (-5, [7, 8])
    assert from_timestamp(sent.run_at) == RUN_AT
    assert not sent.HasField("delay_seconds")
    assert answer["status"] == "scheduled"
    assert (answer["priority"], answer["run_at"], answer["depends_on"]) == (
        -5,
        "2026-11-29T03:00:00Z",
        [7, 8],
    )


def test_a_delay_is_sent_as_given_and_only_when_given() -> None:
    for delay in [0, 2.5, 86400]:
        status, _, scheduler = create({"name": "a", "command": "true", "delay_seconds": delay})
        assert status == 201
        sent = only_sent(scheduler, pb.CreateJobRequest)
        assert sent.HasField("delay_seconds") and sent.delay_seconds == delay
        assert not sent.HasField("run_at")
    status, _, scheduler = create({"name": "a", "command": "true", "delay_seconds": None})
    assert status == 201
    sent = only_sent(scheduler, pb.CreateJobRequest)
    assert not sent.HasField("delay_seconds") and not sent.HasField("run_at")
    assert (sent.priority, list(sent.depends_on)) == (0, [])


def test_a_delay_with_a_run_at_is_the_schedulers_to_refuse() -> None:
    """The message carries both; the scheduler's one rule answers (INVALID_ARGUMENT)."""
    scheduler = fake()
    scheduler.replies["CreateJob"] = grpc.StatusCode.INVALID_ARGUMENT
    body = {"name": "a", "command": "true", "delay_seconds": 5, "run_at": "2026-11-29T03:00:00Z"}
    status, answer, _ = exchange(scheduler, "POST", "/api/jobs/create", body)
    assert status == 422 and answer == {"detail": "said INVALID_ARGUMENT"}
    sent = only_sent(scheduler, pb.CreateJobRequest)
    assert sent.HasField("delay_seconds") and sent.HasField("run_at")


@pytest.mark.parametrize(
    ("run_at", "problem"),
    [
        ("2026-11-29T03:00:00", "timezone"),  # no offset: whose 03:00?
        ("2026-11-29", "timezone"),
        (1796007600, "RFC 3339"),  # Unix seconds are not RFC 3339
        ("tomorrow", "datetime"),
        ("0001-01-01T00:30:00+01:00", "years 1 and 9999"),  # before a Timestamp's range
        ("9999-12-31T23:30:00-01:00", "years 1 and 9999"),
    ],
)
def test_a_run_at_that_is_not_an_aware_rfc_3339_time_is_a_422(run_at: Any, problem: str) -> None:
    status, answer, scheduler = create({"name": "a", "command": "true", "run_at": run_at})
    assert status == 422 and scheduler.sent == []
    (error,) = answer["detail"]
    assert error["loc"] == ["body", "run_at"] and problem in error["msg"], error


@pytest.mark.parametrize(
    "options",
    [
        {"priority": 2**31},
        {"priority": "high"},
        {"delay_seconds": float("nan")},  # Python's JSON reader takes NaN and Infinity
        {"delay_seconds": float("inf")},
        {"max_attempts": float("nan")},
        {"delay_seconds": "soon"},
        {"depends_on": 7},
        {"depends_on": [2**63]},
        {"depends_on": ["seven"]},
    ],
)
def test_options_that_cannot_be_sent_are_a_422(options: dict[str, Any]) -> None:
    status, answer, scheduler = create({"name": "a", "command": "true", **options})
    assert status == 422, options
    assert scheduler.sent == []
    ((field, _),) = options.items()
    assert [error["loc"][1] for error in answer["detail"]] == [field]


def test_rules_of_the_api_are_left_to_the_scheduler() -> None:
    """Out of range, yet carried by the message: the scheduler judges (and says why)."""
    beyond_the_rules: list[dict[str, Any]] = [
        {"priority": 101},
        {"delay_seconds": -1},
        {"depends_on": [0]},
        {"depends_on": list(range(1, 102))},
    ]
    for options in beyond_the_rules:
        status, _, scheduler = create({"name": "a", "command": "true", **options})
        assert status == 201, options
        assert len(scheduler.sent) == 1


def test_bulk_jobs_carry_the_same_fields() -> None:
    scheduler = fake()
    jobs = [
        {"name": "a", "command": "true", "priority": 3, "depends_on": [1]},
        {"name": "b", "command": "true", "run_at": "2026-11-29T03:00:00Z"},
        {"name": "c", "command": "true", "delay_seconds": 1.5},
    ]
    status, answer, _ = exchange(scheduler, "POST", "/api/jobs/bulk", {"jobs": jobs})
    assert status == 201 and [job["depends_on"] for job in answer] == [[7, 8], [7, 8]]
    a, b, c = only_sent(scheduler, pb.CreateJobsRequest).jobs
    assert (a.priority, list(a.depends_on)) == (3, [1])
    assert from_timestamp(b.run_at) == RUN_AT and not b.HasField("delay_seconds")
    assert c.delay_seconds == 1.5 and not c.HasField("run_at")
    naive = [{"name": "n", "command": "true", "run_at": "2026-11-29T03:00:00"}]
    status, answer, _ = exchange(scheduler, "POST", "/api/jobs/bulk", {"jobs": naive})
    assert status == 422 and answer["detail"][0]["loc"] == ["body", "jobs", 0, "run_at"]


def test_scheduled_is_a_status_to_list_by() -> None:
    scheduler = fake()
    status, answer, _ = exchange(scheduler, "GET", "/api/jobs?status=scheduled")
    assert status == 200 and [job["status"] for job in answer] == ["scheduled"]
    assert only_sent(scheduler, pb.ListJobsRequest).status == pb.JOB_STATUS_SCHEDULED


def test_config_shows_and_sets_the_pause() -> None:
    status, answer, _ = exchange(fake(), "GET", "/api/config")
    assert (status, answer) == (200, {"max_concurrent_jobs": 4, "paused": True})
    for body, given in [
        ({"paused": True}, {"paused": True}),
        ({"paused": False}, {"paused": False}),
        ({"max_concurrent_jobs": 5}, {"max_concurrent_jobs": 5}),
        ({"max_concurrent_jobs": 5, "paused": False}, {"max_concurrent_jobs": 5, "paused": False}),
        ({"max_concurrent_jobs": None, "paused": True}, {"paused": True}),
    ]:
        scheduler = fake()
        status, answer, _ = exchange(scheduler, "PUT", "/api/config", body)
        assert (status, answer) == (200, {"max_concurrent_jobs": 4, "paused": True}), body
        ((method, sent),) = scheduler.sent
        assert method == "UpdateConfig"
        assert {f.name: value for f, value in sent.ListFields()} == given, body


@pytest.mark.parametrize(
    "body", [{}, {"paused": None}, {"max_concurrent_jobs": None}, {"paused": "maybe"}]
)
def test_a_config_update_without_anything_to_set_is_a_422(body: dict[str, Any]) -> None:
    scheduler = fake()
    status, answer, _ = exchange(scheduler, "PUT", "/api/config", body)
    assert status == 422 and scheduler.sent == []
    assert len(answer["detail"]) == 1, answer


def test_stats_count_scheduled_jobs_and_show_the_pause() -> None:
    status, answer, _ = exchange(fake(), "GET", "/api/stats")
    assert status == 200
    assert (answer["queued"], answer["scheduled"], answer["total"]) == (1, 2, 3)
    assert answer["paused"] is True
