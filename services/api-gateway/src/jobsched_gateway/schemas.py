"""The REST shapes: the original's field names, plus what we add."""

from datetime import UTC, datetime
from typing import Annotated, Any, Self

import orjson
from google.protobuf.message import Message
from jobsched.v1 import jobs_pb2 as pb
from jobsched_common.limits import (
    MAX_ATTEMPTS,
    MAX_COMMAND_BYTES,
    MAX_CONCURRENT_JOBS,
    MAX_DELAY_SECONDS,
    MAX_DEPENDENCIES,
    MAX_JOBS_PER_BATCH,
    MAX_KEY_CHARS,
    MAX_NAME_CHARS,
    MAX_PRIORITY,
    MAX_TIMEOUT_SECONDS,
    MIN_CONCURRENT_JOBS,
    MIN_PRIORITY,
    STATUSES,
    Status,
)
from jobsched_common.timestamps import from_timestamp, set_timestamp
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    model_validator,
)
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


def _written_time(value: Any) -> Any:
    """Refuses a number, which pydantic would take as Unix seconds: the API takes
    RFC 3339 text only."""
    if not isinstance(value, str):
        raise ValueError("must be an RFC 3339 time with an offset, e.g. 2026-11-29T03:00:00Z")
    return value


def _fits_timestamp(value: datetime) -> datetime:
    """Refuses a time outside a protobuf Timestamp's years 1 to 9999 in UTC."""
    try:
        value.astimezone(UTC)
    except OverflowError:
        raise ValueError("must lie between the years 1 and 9999 in UTC") from None
    return value


# A time that a client gives: RFC 3339 with an offset (a time without one is refused).
GivenTime = Annotated[
    AwareDatetime, BeforeValidator(_written_time), AfterValidator(_fits_timestamp)
]


def schema_only(**keywords: Any) -> Any:
    """JSON Schema keywords that document a rule the scheduler enforces."""
    return Field(json_schema_extra=keywords)


STATUS_TO_PB: dict[Status, pb.JobStatus.ValueType] = {
    status: pb.JobStatus.Value(f"JOB_STATUS_{status.upper()}") for status in STATUSES
}
STATUS_FROM_PB = {number: status for status, number in STATUS_TO_PB.items()}

Priority = Annotated[
    Int32,
    schema_only(minimum=MIN_PRIORITY, maximum=MAX_PRIORITY),
    Field(description="Higher runs first; within one priority, oldest first."),
]
JobRef = Annotated[Int64, schema_only(minimum=1)]
# Not blank, no control characters (Unicode's Cc), as the scheduler checks.
KEY_PATTERN = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
# Checked here for its length of 0: an empty key is not told from none in the message.
ConcurrencyKey = Annotated[
    Text,
    schema_only(maxLength=MAX_KEY_CHARS, pattern=KEY_PATTERN),
    Field(
        min_length=1,
        description="Jobs of one key share its limit (`/api/limits/{key}`), if it has one, "
        "and take turns with the jobs of other keys. Not blank; no control characters.",
        examples=["migrations"],
    ),
]


class JobCreate(BaseModel):
    name: Annotated[Text, schema_only(minLength=1, maxLength=MAX_NAME_CHARS, pattern=r"\S")]
    command: Annotated[Text, schema_only(minLength=1, pattern=r"\S")] = Field(
        description=f"Run with `/bin/sh -c`; at most {MAX_COMMAND_BYTES} bytes of UTF-8."
    )
    max_attempts: Annotated[Int32, schema_only(minimum=1, maximum=MAX_ATTEMPTS)] = 1
    timeout_seconds: (
        Annotated[Int32, schema_only(minimum=1, maximum=MAX_TIMEOUT_SECONDS)] | None
    ) = None
    priority: Priority = 0
    run_at: GivenTime | None = Field(
        None,
        description="Not started before this time (RFC 3339 with an offset; a time "
        "without one is refused). The job is `scheduled` until then. Not with "
        "`delay_seconds`.",
        examples=["2026-11-29T03:00:00+01:00"],
    )
    delay_seconds: (
        Annotated[
            float, Field(allow_inf_nan=False), schema_only(minimum=0, maximum=MAX_DELAY_SECONDS)
        ]
        | None
    ) = Field(None, description="Not started before this many seconds from now.", examples=[30])
    depends_on: Annotated[list[JobRef], schema_only(maxItems=MAX_DEPENDENCIES)] = Field(
        default_factory=list,
        description="Ids of existing jobs: this one starts once every one of them has "
        "completed. If one fails or is cancelled for good, this job ends `cancelled` "
        "(reason `dependency 7 failed`) and never starts; retrying that dependency "
        "later does not revive it.",
        examples=[[7, 8]],
    )
    concurrency_key: ConcurrencyKey | None = None

    def to_pb(self) -> pb.CreateJobRequest:
        """Sends only the optional fields the client gave, so that the scheduler tells an
        explicit value from its default."""
        given = {
            field: getattr(self, field)
            for field in ("max_attempts", "timeout_seconds", "delay_seconds")
            if field in self.model_fields_set and getattr(self, field) is not None
        }
        request = pb.CreateJobRequest(
            name=self.name,
            command=self.command,
            priority=self.priority,
            depends_on=self.depends_on,
            concurrency_key=self.concurrency_key or "",
            **given,
        )
        set_timestamp(request.run_at, self.run_at)
        return request


class JobsCreate(BaseModel):
    jobs: Annotated[list[JobCreate], schema_only(minItems=1, maxItems=MAX_JOBS_PER_BATCH)]
    each_alone: bool = Field(
        False,
        description="Each job created or refused on its own (200, one result a job) "
        "instead of all or none (201).",
    )

    def to_pb(self) -> pb.CreateJobsRequest:
        jobs = [job.to_pb() for job in self.jobs]
        return pb.CreateJobsRequest(jobs=jobs, each_alone=self.each_alone)


class Job(BaseModel):
    id: int
    name: str
    command: str
    status: Status = Field(
        description="`scheduled`: waiting for its `run_at` (a delay, or a retry's backoff)."
    )
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
    priority: int = Field(description="-100..100: higher runs first.")
    run_at: datetime | None = Field(
        description="Not started before this time; null once started, or when it had none."
    )
    depends_on: list[int] = Field(description="Jobs that must complete before this one.")
    concurrency_key: str | None = Field(description="Its key; null when it has none.")


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


ConcurrencyLimit = Annotated[
    Int32,
    schema_only(minimum=MIN_CONCURRENT_JOBS, maximum=MAX_CONCURRENT_JOBS),
    Field(description="Commands running at once, at most; a change takes effect at once."),
]
Paused = Annotated[
    bool,
    Field(
        description="While true nothing new starts: running jobs go on, and schedules "
        "still make jobs, which wait."
    ),
]


class Config(BaseModel):
    max_concurrent_jobs: ConcurrencyLimit
    paused: Paused


class ConfigUpdate(BaseModel):
    """Sets what is given: either field or both."""

    model_config = ConfigDict(json_schema_extra={"minProperties": 1})

    max_concurrent_jobs: ConcurrencyLimit | None = None
    paused: Paused | None = None

    @model_validator(mode="after")
    def _something_to_set(self) -> Self:
        if self.max_concurrent_jobs is None and self.paused is None:
            raise ValueError("give max_concurrent_jobs, paused or both")
        return self

    def to_pb(self) -> pb.UpdateConfigRequest:
        request = pb.UpdateConfigRequest()
        if self.max_concurrent_jobs is not None:
            request.max_concurrent_jobs = self.max_concurrent_jobs
        if self.paused is not None:
            request.paused = self.paused
        return request


class Stats(BaseModel):
    queued: int
    scheduled: int = Field(description="Waiting for their `run_at`.")
    running: int
    completed: int
    failed: int
    cancelled: int
    total: int
    max_concurrent_jobs: int
    paused: bool
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
        "priority": job.priority,
        "run_at": time_of(job, "run_at"),
        "depends_on": list(job.depends_on),
        "concurrency_key": job.concurrency_key or None,
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


def stats_json(stats: pb.Stats) -> dict[str, int | bool]:
    """The counts in the shape of `Stats`, ready for JSON."""
    return {
        "queued": stats.queued,
        "scheduled": stats.scheduled,
        "running": stats.running,
        "completed": stats.completed,
        "failed": stats.failed,
        "cancelled": stats.cancelled,
        "total": stats.total,
        "max_concurrent_jobs": stats.max_concurrent_jobs,
        "paused": stats.paused,
        "runners_connected": stats.runners_connected,
    }


def config_json(config: pb.Config) -> dict[str, int | bool]:
    """The configuration in the shape of `Config`."""
    return {"max_concurrent_jobs": config.max_concurrent_jobs, "paused": config.paused}
