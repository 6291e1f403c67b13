"""`/api/schedules` against a fake ScheduleService: each endpoint makes its one call
with what the client gave, answers in the documented shape, and maps the scheduler's
errors as the jobs' endpoints do."""

from datetime import UTC, datetime
from typing import Any

import grpc
import pytest
from jobsched.v1 import jobs_pb2 as pb
from jobsched_common.timestamps import to_timestamp

from tests.unit.gateway_fakes import FakeScheduler, exchange

BACKUP = pb.Schedule(
    name="backup",
    command="pg_dump app",
    cron="0 3 * * *",
    timezone="Europe/Berlin",
    overlap=pb.OVERLAP_SKIP,
    catchup_window_seconds=60,
    max_attempts=2,
    next_run_at=to_timestamp(datetime(2026, 11, 30, 2, 0, tzinfo=UTC)),
    created_at=to_timestamp(datetime(2026, 11, 29, 19, 0, tzinfo=UTC)),
    updated_at=to_timestamp(datetime(2026, 11, 29, 19, 0, tzinfo=UTC)),
)
TRIGGERED = pb.Job(id=12, name="backup@2026-11-29T19:30:00.123456Z", status=pb.JOB_STATUS_QUEUED)
ANSWER = {
    "name": "backup",
    "command": "pg_dump app",
    "cron": "0 3 * * *",
    "every_seconds": None,
    "timezone": "Europe/Berlin",
    "overlap": "skip",
    "catchup_window_seconds": 60,
    "paused": False,
    "priority": 0,
    "max_attempts": 2,
    "timeout_seconds": None,
    "concurrency_key": None,
    "next_run_at": "2026-11-30T03:00:00+01:00",
    "last_run_at": None,
    "last_job_id": None,
    "skipped_count": 0,
    "created_at": "2026-11-29T19:00:00Z",
    "updated_at": "2026-11-29T19:00:00Z",
}


def fake(**errors: grpc.StatusCode) -> FakeScheduler:
    replies: dict[str, Any] = {
        "CreateSchedule": BACKUP,
        "ListSchedules": pb.ListSchedulesResponse(schedules=[BACKUP, BACKUP]),
        "GetSchedule": BACKUP,
        "UpdateSchedule": BACKUP,
        "DeleteSchedule": pb.DeleteScheduleResponse(),
        "PauseSchedule": BACKUP,
        "ResumeSchedule": BACKUP,
        "TriggerSchedule": TRIGGERED,
    }
    return FakeScheduler({**replies, **errors})


def sent_schedule(scheduler: FakeScheduler, method: str) -> pb.Schedule:
    ((called, request),) = scheduler.sent
    assert called == method
    assert isinstance(request, pb.CreateScheduleRequest | pb.UpdateScheduleRequest)
    return request.schedule


def test_create_sends_the_schedule_and_answers_it() -> None:
    scheduler = fake()
    body: dict[str, Any] = {"name": "backup", "command": "pg_dump app", "cron": "0 3 * * *"}
    body |= {"timezone": "Europe/Berlin", "overlap": "allow", "priority": 7, "paused": True}
    status, answer, _ = exchange(scheduler, "POST", "/api/schedules", body)
    assert (status, answer) == (201, ANSWER)
    sent = sent_schedule(scheduler, "CreateSchedule")
    assert (sent.name, sent.command, sent.cron, sent.every_seconds) == (
        "backup",
        "pg_dump app",
        "0 3 * * *",
        0,
    )
    assert (sent.timezone, sent.overlap, sent.priority, sent.paused) == (
        "Europe/Berlin",
        pb.OVERLAP_ALLOW,
        7,
        True,
    )


def test_create_sends_only_the_options_the_client_gave() -> None:
    scheduler = fake()
    body = {"name": "tick", "command": "true", "every_seconds": 60}
    assert exchange(scheduler, "POST", "/api/schedules", body)[0] == 201
    sent = sent_schedule(scheduler, "CreateSchedule")
    assert (sent.every_seconds, sent.cron, sent.timezone, sent.overlap) == (
        60,
        "",
        "UTC",
        pb.OVERLAP_SKIP,
    )
    for optional in ("catchup_window_seconds", "max_attempts", "timeout_seconds"):
        assert not sent.HasField(optional)
    scheduler = fake()
    body |= {"catchup_window_seconds": 0, "max_attempts": 3, "timeout_seconds": 30}
    assert exchange(scheduler, "POST", "/api/schedules", body)[0] == 201
    sent = sent_schedule(scheduler, "CreateSchedule")
    assert (sent.catchup_window_seconds, sent.max_attempts, sent.timeout_seconds) == (0, 3, 30)


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({"name": "s", "command": "true"}, "exactly one of cron and every_seconds"),
        (
            {"name": "s", "command": "true", "cron": "@daily", "every_seconds": 0},
            "exactly one of cron and every_seconds",
        ),
        ({"name": "s", "command": "true", "cron": "@daily", "overlap": "queue"}, "'skip'"),
        ({"command": "true", "cron": "@daily"}, "Field required"),
        ({"name": "s", "command": "true", "every_seconds": 2**31}, "less than or equal"),
        ({"name": "\ud800", "command": "true", "every_seconds": 5}, "lone surrogates"),
    ],
)
def test_a_schedule_that_cannot_be_sent_is_a_422(body: dict[str, Any], problem: str) -> None:
    """Neither or both of cron and every_seconds is told here too: in the message an
    every_seconds of 0 reads as none."""
    scheduler = fake()
    status, answer, _ = exchange(scheduler, "POST", "/api/schedules", body)
    assert status == 422 and scheduler.sent == []
    assert problem in str(answer["detail"]), answer


@pytest.mark.parametrize(
    ("code", "status"),
    [
        (grpc.StatusCode.ALREADY_EXISTS, 409),
        (grpc.StatusCode.INVALID_ARGUMENT, 422),  # a bad cron, an unknown time zone
        (grpc.StatusCode.UNAVAILABLE, 503),
    ],
)
def test_the_schedulers_refusals_of_a_create(code: grpc.StatusCode, status: int) -> None:
    scheduler = fake(CreateSchedule=code)
    body = {"name": "backup", "command": "true", "cron": "61 * * * *"}
    answered, answer, _ = exchange(scheduler, "POST", "/api/schedules", body)
    assert answered == status and code.name in answer["detail"]


def test_list_get_pause_resume_answer_schedules() -> None:
    status, answer, _ = exchange(fake(), "GET", "/api/schedules")
    assert (status, answer) == (200, {"schedules": [ANSWER, ANSWER]})
    for method, path, rpc in [
        ("GET", "/api/schedules/backup", "GetSchedule"),
        ("POST", "/api/schedules/backup/pause", "PauseSchedule"),
        ("POST", "/api/schedules/backup/resume", "ResumeSchedule"),
    ]:
        scheduler = fake()
        assert exchange(scheduler, method, path)[:2] == (200, ANSWER)
        assert scheduler.sent == [(rpc, pb.ScheduleRef(name="backup"))]


@pytest.mark.parametrize(
    ("method", "path", "rpc"),
    [
        ("GET", "", "GetSchedule"),
        ("DELETE", "", "DeleteSchedule"),
        ("POST", "/pause", "PauseSchedule"),
        ("POST", "/resume", "ResumeSchedule"),
        ("POST", "/trigger", "TriggerSchedule"),
    ],
)
def test_names_travel_whole_in_the_path(method: str, path: str, rpc: str) -> None:
    for encoded, name in [
        ("nightly%20b%C3%A4ckup", "nightly bäckup"),
        ("reports%2Fdaily", "reports/daily"),
        ("a%2Fpause", "a/pause"),
    ]:
        scheduler = fake()
        assert exchange(scheduler, method, f"/api/schedules/{encoded}{path}")[0] < 300
        assert scheduler.sent == [(rpc, pb.ScheduleRef(name=name))]
    scheduler = fake()
    body = {"name": "reports/daily", "command": "true", "every_seconds": 60}
    assert exchange(scheduler, "PUT", "/api/schedules/reports%2Fdaily", body)[0] == 200
    assert sent_schedule(scheduler, "UpdateSchedule").name == "reports/daily"


def test_trigger_answers_the_job_it_made() -> None:
    scheduler = fake()
    status, answer, _ = exchange(scheduler, "POST", "/api/schedules/backup/trigger")
    assert status == 201
    assert (answer["id"], answer["name"], answer["status"]) == (12, TRIGGERED.name, "queued")
    assert scheduler.sent == [("TriggerSchedule", pb.ScheduleRef(name="backup"))]


def test_delete_answers_204_without_a_body() -> None:
    scheduler = fake()
    status, answer, raw = exchange(scheduler, "DELETE", "/api/schedules/backup")
    assert (status, answer, raw) == (204, None, b"")
    assert scheduler.sent == [("DeleteSchedule", pb.ScheduleRef(name="backup"))]


@pytest.mark.parametrize(
    ("method", "path", "rpc"),
    [
        ("GET", "/api/schedules/gone", "GetSchedule"),
        ("PUT", "/api/schedules/gone", "UpdateSchedule"),
        ("DELETE", "/api/schedules/gone", "DeleteSchedule"),
        ("POST", "/api/schedules/gone/pause", "PauseSchedule"),
        ("POST", "/api/schedules/gone/resume", "ResumeSchedule"),
        ("POST", "/api/schedules/gone/trigger", "TriggerSchedule"),
    ],
)
def test_an_unknown_schedule_is_a_404(method: str, path: str, rpc: str) -> None:
    body = {"command": "true", "every_seconds": 5} if method == "PUT" else None
    status, answer, _ = exchange(fake(**{rpc: grpc.StatusCode.NOT_FOUND}), method, path, body)
    assert status == 404 and answer == {"detail": "said NOT_FOUND"}


def test_put_replaces_the_schedule_named_by_the_path() -> None:
    for named in [{}, {"name": "backup"}]:
        scheduler = fake()
        body = {**named, "command": "pg_dump app", "every_seconds": 3600, "paused": True}
        assert exchange(scheduler, "PUT", "/api/schedules/backup", body)[:2] == (200, ANSWER)
        sent = sent_schedule(scheduler, "UpdateSchedule")
        assert (sent.name, sent.every_seconds, sent.cron, sent.paused) == (
            "backup",
            3600,
            "",
            True,
        )


def test_put_cannot_rename() -> None:
    scheduler = fake()
    body = {"name": "other", "command": "true", "every_seconds": 5}
    status, answer, _ = exchange(scheduler, "PUT", "/api/schedules/backup", body)
    assert status == 422 and scheduler.sent == []
    assert answer == {"detail": "name: 'other' is not the path's 'backup'"}
