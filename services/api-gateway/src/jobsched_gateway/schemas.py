"""The REST shapes: the original's field names, plus what we add."""

from datetime import datetime
from typing import Annotated, Any

import orjson
from google.protobuf.message import Message
from jobsched.v1 import jobs_pb2 as pb
from jobsched_common.limits import (
    MAX_ATTEMPTS,
    MAX_COMMAND_BYTES,
    MAX_CONCURRENT_JOBS,
    MAX_JOBS_PER_BATCH,
    MAX_NAME_CHARS,
    MAX_TIMEOUT_SECONDS,
    MIN_CONCURRENT_JOBS,
    STATUSES,
    Status,
)
from jobsched_common.timestamps import from_timestamp
from pydantic import AfterValidator, BaseModel, Field
from starlette.responses import Response

# What fits the protobuf fields a value travels in: anything else is a 422 here, as it
# cannot be sent. The API's own rules (jobsched_common.limits) are the scheduler's to
# check; the models only describe them in the OpenAPI schema.
Int32 = Annotated[int, Field(ge=-(2**31), le=2**31 - 1)]
Int64 = Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]


def _encodable(text: str) -> str:
    """Refuses a lone surrogate: JSON's \\u escapes allow one, UTF-8 (protobuf's) does not."""
    try:
        text.encode()
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text (no lone surrogates)") from None
    return text


Text = Annotated[str, AfterValidator(_encodable)]


def schema_only(**keywords: Any) -> Any:
    """JSON Schema keywords that document a rule the scheduler enforces."""
    return Field(json_schema_extra=keywords)


STATUS_TO_PB: dict[Status, pb.JobStatus.ValueType] = {
    status: pb.JobStatus.Value(f"JOB_STATUS_{status.upper()}") for status in STATUSES
}
STATUS_FROM_PB = {number: status for status, number in STATUS_TO_PB.items()}


class JobCreate(BaseModel):
    name: Annotated[Text, schema_only(minLength=1, maxLength=MAX_NAME_CHARS, pattern=r"\S")]
    command: Annotated[Text, schema_only(minLength=1, pattern=r"\S")] = Field(
        description=f"Run with `/bin/sh -c`; at most {MAX_COMMAND_BYTES} bytes of UTF-8."
    )
    max_attempts: Annotated[Int32, schema_only(minimum=1, maximum=MAX_ATTEMPTS)] = 1
    timeout_seconds: (
        Annotated[Int32, schema_only(minimum=1, maximum=MAX_TIMEOUT_SECONDS)] | None
    ) = None

    def to_pb(self) -> pb.CreateJobRequest:
        """Sends only the optional fields the client gave, so that the scheduler tells an
        explicit value from its default."""
        given = {
            field: getattr(self, field)
            for field in ("max_attempts", "timeout_seconds")
            if field in self.model_fields_set and getattr(self, field) is not None
        }
        return pb.CreateJobRequest(name=self.name, command=self.command, **given)


class JobsCreate(BaseModel):
    jobs: Annotated[list[JobCreate], schema_only(minItems=1, maxItems=MAX_JOBS_PER_BATCH)]

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
    max_concurrent_jobs: Annotated[
        Int32, schema_only(minimum=MIN_CONCURRENT_JOBS, maximum=MAX_CONCURRENT_JOBS)
    ]


class Stats(BaseModel):
    queued: int
    running: int
    completed: int
    failed: int
    cancelled: int
    total: int
    max_concurrent_jobs: int
    runners_connected: int


def time_of(message: Message, field: str) -> datetime | None:
    """A Timestamp field as an aware UTC datetime; None when it is unset."""
    return from_timestamp(getattr(message, field)) if message.HasField(field) else None


def json_bytes(content: Any) -> bytes:
    """JSON as the REST API and the event stream write it. Times come out as pydantic
    writes an aware UTC datetime: `2025-01-01T05:33:20Z`, with `.ffffff` only when
    there are microseconds."""
    return orjson.dumps(content, option=orjson.OPT_UTC_Z)


def job_json(job: pb.Job) -> dict[str, Any]:
    """A job in the shape of `Job`, ready for `json_bytes`. The REST API writes jobs
    from these directly, without building pydantic models."""
    return {
        "id": job.id,
        "name": job.name,
        "command": job.command,
        "status": STATUS_FROM_PB.get(job.status, "queued"),
        "last_run": time_of(job, "last_run"),
        "created_at": time_of(job, "created_at"),
        "updated_at": time_of(job, "updated_at"),
        "attempt": job.attempt,
        "max_attempts": job.max_attempts,
        "timeout_seconds": job.timeout_seconds or None,
        "runner_id": job.runner_id or None,
        "started_at": time_of(job, "started_at"),
        "finished_at": time_of(job, "finished_at"),
        "exit_code": job.exit_code if job.HasField("exit_code") else None,
        "reason": job.reason or None,
    }


def attempt_json(attempt: pb.Attempt) -> dict[str, Any]:
    """An attempt in the shape of `Attempt`, ready for `json_bytes`."""
    return {
        "job_id": attempt.job_id,
        "attempt": attempt.attempt,
        "runner_id": attempt.runner_id,
        "claimed_at": time_of(attempt, "claimed_at"),
        "started_at": time_of(attempt, "started_at"),
        "finished_at": time_of(attempt, "finished_at"),
        "exit_code": attempt.exit_code if attempt.HasField("exit_code") else None,
        "reason": attempt.reason or None,
        "output_length": attempt.output_length,
        "output_truncated": attempt.output_truncated,
    }


class JsonBody(Response):
    """A body of plain JSON values, written by orjson (see the README's dependencies).
    Routes that return it declare their model with `response_model` for the OpenAPI
    schema; the unit tests check that these bodies validate against it."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return json_bytes(content)


def stats_json(stats: pb.Stats) -> dict[str, int]:
    """The counts in the shape of `Stats`, ready for JSON."""
    return {
        "queued": stats.queued,
        "running": stats.running,
        "completed": stats.completed,
        "failed": stats.failed,
        "cancelled": stats.cancelled,
        "total": stats.total,
        "max_concurrent_jobs": stats.max_concurrent_jobs,
        "runners_connected": stats.runners_connected,
    }
