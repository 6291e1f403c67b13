"""The REST shapes: the original's field names, plus what we add."""

from datetime import datetime
from typing import Literal

from google.protobuf.timestamp_pb2 import Timestamp
from jobsched.v1 import jobs_pb2 as pb
from jobsched_common.timestamps import from_timestamp
from pydantic import BaseModel, Field

# Ids travel as protobuf int64.
MAX_ID = 2**63 - 1

Status = Literal["queued", "running", "completed", "failed", "cancelled"]
STATUS_FROM_PB: dict[pb.JobStatus.ValueType, Status] = {
    pb.JOB_STATUS_QUEUED: "queued",
    pb.JOB_STATUS_RUNNING: "running",
    pb.JOB_STATUS_COMPLETED: "completed",
    pb.JOB_STATUS_FAILED: "failed",
    pb.JOB_STATUS_CANCELLED: "cancelled",
}
STATUS_TO_PB = {v: k for k, v in STATUS_FROM_PB.items()}


class JobCreate(BaseModel):
    name: str = Field(min_length=1, max_length=255, pattern=r"\S")
    command: str = Field(min_length=1, max_length=65536, pattern=r"\S")
    max_attempts: int = Field(default=1, ge=1, le=100)
    timeout_seconds: int | None = Field(default=None, ge=1, le=7 * 24 * 3600)


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


def _time(message: pb.Job | pb.Attempt, field: str) -> datetime | None:
    if not message.HasField(field):  # type: ignore[arg-type]
        return None
    ts: Timestamp = getattr(message, field)
    return from_timestamp(ts)


def job_from_pb(job: pb.Job) -> Job:
    return Job(
        id=job.id,
        name=job.name,
        command=job.command,
        status=STATUS_FROM_PB.get(job.status, "queued"),
        last_run=_time(job, "last_run"),
        created_at=_time(job, "created_at"),
        updated_at=_time(job, "updated_at"),
        attempt=job.attempt,
        max_attempts=job.max_attempts,
        timeout_seconds=job.timeout_seconds or None,
        runner_id=job.runner_id or None,
        started_at=_time(job, "started_at"),
        finished_at=_time(job, "finished_at"),
        exit_code=job.exit_code if job.HasField("exit_code") else None,
        reason=job.reason or None,
    )


def attempt_from_pb(attempt: pb.Attempt) -> Attempt:
    return Attempt(
        job_id=attempt.job_id,
        attempt=attempt.attempt,
        runner_id=attempt.runner_id,
        claimed_at=_time(attempt, "claimed_at"),
        started_at=_time(attempt, "started_at"),
        finished_at=_time(attempt, "finished_at"),
        exit_code=attempt.exit_code if attempt.HasField("exit_code") else None,
        reason=attempt.reason or None,
        output_length=attempt.output_length,
        output_truncated=attempt.output_truncated,
    )
