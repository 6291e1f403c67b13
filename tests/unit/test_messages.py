"""The scheduler's rows as the public API's messages: times exact on both sides of
1970, unset when there is none or when a datetime cannot hold it; status names."""

from datetime import UTC, datetime
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp
from jobsched.v1 import jobs_pb2 as pb
from jobsched_common.limits import MAX_COMMAND_BYTES, MAX_PAGE_BYTES, STATUSES
from jobsched_scheduler.events import JobEvent
from jobsched_scheduler.messages import (
    STATUS_FROM_PB,
    STATUS_TO_PB,
    attempt_message,
    event_message,
    job_message,
    job_page,
)
from jobsched_scheduler.model import JobRow

BEFORE_1970 = datetime(1969, 7, 20, 20, 17, 40, 1, tzinfo=UTC)
AFTER_1970 = datetime(2031, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)


UNTIMED = JobRow(
    id=1,
    name="n",
    command="true",
    status="queued",
    last_run=None,
    created_at=None,
    updated_at=None,
    attempt=0,
    max_attempts=1,
    timeout_seconds=None,
    runner_id=None,
    started_at=None,
    finished_at=None,
    exit_code=None,
    reason=None,
    priority=0,
    run_at=None,
    depends_on=None,
    concurrency_key=None,
)


def a_job(**times: Any) -> JobRow:
    return UNTIMED._replace(**times)


def test_times_on_both_sides_of_1970_are_exact() -> None:
    job = job_message(a_job(last_run=BEFORE_1970, created_at=AFTER_1970))
    assert job.last_run == Timestamp(seconds=-14182940, nanos=1000)
    assert job.last_run.ToDatetime(tzinfo=UTC) == BEFORE_1970
    assert job.created_at.ToDatetime(tzinfo=UTC) == AFTER_1970
    for extreme in (datetime.min.replace(tzinfo=UTC), datetime.max.replace(tzinfo=UTC)):
        assert job_message(a_job(updated_at=extreme)).updated_at.ToDatetime(tzinfo=UTC) == extreme


def test_a_missing_time_is_unset() -> None:
    job = job_message(a_job(created_at=AFTER_1970))
    for field in ("last_run", "updated_at", "started_at", "finished_at"):
        assert not job.HasField(field), field
    assert job.HasField("created_at") and not job.HasField("exit_code")
    attempt = attempt_message(
        {
            "job_id": 1,
            "attempt": 1,
            "runner_id": "r",
            "claimed_at": BEFORE_1970,
            "started_at": None,
            "finished_at": None,
            "exit_code": 0,
            "reason": None,
            "output_length": 0,
            "output_truncated": False,
        }
    )
    assert attempt.claimed_at.ToDatetime(tzinfo=UTC) == BEFORE_1970
    assert not attempt.HasField("started_at") and attempt.HasField("exit_code")
    event = event_message(JobEvent(1, "running", 1, AFTER_1970))
    assert event.status == pb.JOB_STATUS_RUNNING
    assert event.at.ToDatetime(tzinfo=UTC) == AFTER_1970


def test_every_status_has_its_enum_value_and_back() -> None:
    assert list(STATUS_TO_PB) == list(STATUSES)
    assert STATUS_TO_PB["cancelled"] == pb.JOB_STATUS_CANCELLED
    assert {STATUS_FROM_PB[number] for number in STATUS_TO_PB.values()} == set(STATUSES)
    assert pb.JOB_STATUS_UNSPECIFIED not in STATUS_FROM_PB


def test_a_page_ends_before_its_byte_budget_and_is_never_empty() -> None:
    command = "c" * MAX_COMMAND_BYTES
    rows = [UNTIMED._replace(id=n, command=command) for n in range(1000, 0, -1)]
    page = job_page(rows)
    assert 0 < len(page) < len(rows)
    assert sum(job.ByteSize() for job in page) <= MAX_PAGE_BYTES
    assert [job.id for job in page] == [row.id for row in rows[: len(page)]]
    huge = UNTIMED._replace(id=5, command="c" * (MAX_PAGE_BYTES + 1))
    assert [job.id for job in job_page([huge, UNTIMED])] == [5]
    assert job_page([]) == []
