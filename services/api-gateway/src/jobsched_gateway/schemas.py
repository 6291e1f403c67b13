"""The REST shapes: the original's field names, plus what we add."""

from datetime import datetime
from typing import Any

import orjson
from google.protobuf.message import Message
from jobsched.v1 import jobs_pb2 as pb
from jobsched_common.limits import STATUSES
from jobsched_common.limits import Status as Status
from jobsched_common.timestamps import from_timestamp
from pydantic import BaseModel, Field
from starlette.responses import Response

# Ids travel as protobuf int64.
MAX_ID = 2**63 - 1

STATUS_TO_PB: dict[Status, pb.JobStatus.ValueType] = {
    status: pb.JobStatus.Value(f"JOB_STATUS_{status.upper()}") for status in STATUSES
}
STATUS_FROM_PB = {number: status for status, number in STATUS_TO_PB.items()}


class JobCreate(BaseModel):
    name: str = Field(min_length=1, max_length=255, pattern=r"\S")
    command: str = Field(min_length=1, max_length=65536, pattern=r"\S")
    max_attempts: int = Field(default=1, ge=1, le=100)
    timeout_seconds: int | None = Field(default=None, ge=1, le=7 * 24 * 3600)

    def to_pb(self) -> pb.CreateJobRequest:
        return pb.CreateJobRequest(
            name=self.name,
            command=self.command,
            max_attempts=self.max_attempts,
            timeout_seconds=self.timeout_seconds,
        )


class JobsCreate(BaseModel):
    jobs: list[JobCreate] = Field(min_length=1, max_length=1000)

    def to_pb(self) -> pb.CreateJobsRequest:
        return pb.CreateJobsRequest(jobs=[job.to_pb() for job in self.jobs])


class Job(BaseModel):
    id: int
    name: str
    command: str
    status: Status
    last_run: datetime | None
    created_at: datetime | None
    updated_at: datetime | None
    attempt: int
    max_attempts: int
    timeout_seconds: int | None
    runner_id: str | None
    started_at: datetime | None
    finished_at: datetime | None
    exit_code: int | None
    reason: str | None


class JobOutput(BaseModel):
    job_id: int
    attempt: int
    output: str
    truncated: bool


class Attempt(BaseModel):
    job_id: int
    attempt: int
    runner_id: str
    claimed_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    exit_code: int | None
    reason: str | None
    output_length: int
    output_truncated: bool


class Config(BaseModel):
    max_concurrent_jobs: int = Field(ge=1, le=10_000)


class Stats(BaseModel):
    queued: int
    running: int
    completed: int
    failed: int
    cancelled: int
    total: int
    max_concurrent_jobs: int
    runners_connected: int


def rest_time(message: Message, field: str) -> str | None:
    """A Timestamp field as pydantic writes an aware UTC datetime, `2025-01-01T05:33:20Z`
    with `.ffffff` only when there are microseconds; None when the field is unset."""
    if not message.HasField(field):
        return None
    return from_timestamp(getattr(message, field)).replace(tzinfo=None).isoformat() + "Z"


def job_json(job: pb.Job) -> dict[str, Any]:
    """A job in the shape of `Job`, ready for JSON. The REST API writes jobs from these
    directly, without building pydantic models."""
    return {
        "id": job.id,
        "name": job.name,
        "command": job.command,
        "status": STATUS_FROM_PB.get(job.status, "queued"),
        "last_run": rest_time(job, "last_run"),
        "created_at": rest_time(job, "created_at"),
        "updated_at": rest_time(job, "updated_at"),
        "attempt": job.attempt,
        "max_attempts": job.max_attempts,
        "timeout_seconds": job.timeout_seconds or None,
        "runner_id": job.runner_id or None,
        "started_at": rest_time(job, "started_at"),
        "finished_at": rest_time(job, "finished_at"),
        "exit_code": job.exit_code if job.HasField("exit_code") else None,
        "reason": job.reason or None,
    }


def attempt_json(attempt: pb.Attempt) -> dict[str, Any]:
    """An attempt in the shape of `Attempt`, ready for JSON."""
    return {
        "job_id": attempt.job_id,
        "attempt": attempt.attempt,
        "runner_id": attempt.runner_id,
        "claimed_at": rest_time(attempt, "claimed_at"),
        "started_at": rest_time(attempt, "started_at"),
        "finished_at": rest_time(attempt, "finished_at"),
        "exit_code": attempt.exit_code if attempt.HasField("exit_code") else None,
        "reason": attempt.reason or None,
        "output_length": attempt.output_length,
        "output_truncated": attempt.output_truncated,
    }


class JsonBody(Response):
    """A body of plain JSON values, written by orjson: a page of 100 jobs in 0.2 µs a
    row, against 0.7 for pydantic-core's `to_json`. Routes that return it declare their
    model with `response_model` for the OpenAPI schema; the unit tests check that these
    bodies validate against it."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)
