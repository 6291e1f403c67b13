"""The public API's messages made from the scheduler's values: jobs, attempts, events,
status names and times."""

from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

from google.protobuf.message import Message
from jobsched.v1 import jobs_pb2 as pb
from jobsched_common.limits import MAX_PAGE_BYTES, STATUSES
from jobsched_common.timestamps import set_timestamp

from .events import JobEvent
from .model import JobRow, KeyLimit

M = TypeVar("M", bound=Message)

STATUS_TO_PB: dict[str, pb.JobStatus.ValueType] = {
    status: pb.JobStatus.Value(f"JOB_STATUS_{status.upper()}") for status in STATUSES
}
STATUS_FROM_PB = {number: status for status, number in STATUS_TO_PB.items()}


def job_message(row: JobRow) -> pb.Job:
    job = pb.Job(
        id=row.id,
        name=row.name,
        command=row.command,
        # The original's column allows NULL, which a row inserted by hand may hold.
        status=STATUS_TO_PB.get(row.status or "queued", pb.JOB_STATUS_UNSPECIFIED),
        attempt=row.attempt,
        max_attempts=row.max_attempts,
        timeout_seconds=row.timeout_seconds or 0,
        runner_id=row.runner_id or "",
        exit_code=row.exit_code,
        reason=row.reason or "",
        priority=row.priority,
        depends_on=row.depends_on,
        concurrency_key=row.concurrency_key or "",
    )
    set_timestamp(job.run_at, row.run_at)
    set_timestamp(job.last_run, row.last_run)
    set_timestamp(job.created_at, row.created_at)
    set_timestamp(job.updated_at, row.updated_at)
    set_timestamp(job.started_at, row.started_at)
    set_timestamp(job.finished_at, row.finished_at)
    return job


def job_page(rows: list[JobRow]) -> list[pb.Job]:
    """The jobs of a page, cut short before MAX_PAGE_BYTES (but never empty): the caller
    pages on from the last one."""
    return next(within_bytes(map(job_message, rows), MAX_PAGE_BYTES), [])


def within_bytes(messages: Iterable[M], limit: int) -> Iterator[list[M]]:
    """The messages in order, in batches of at most `limit` bytes, but for a message
    larger than that alone, which is a batch of its own."""
    batch: list[M] = []
    size = 0
    for message in messages:
        message_size = message.ByteSize()
        size += message_size
        if batch and size > limit:
            yield batch
            batch, size = [], message_size
        batch.append(message)
    if batch:
        yield batch


def attempt_message(row: dict[str, Any]) -> pb.Attempt:
    """An attempt from a row of `list_attempts`."""
    attempt = pb.Attempt(
        job_id=row["job_id"],
        attempt=row["attempt"],
        runner_id=row["runner_id"],
        exit_code=row["exit_code"],
        reason=row["reason"] or "",
        output_length=row["output_length"],
        output_truncated=row["output_truncated"],
    )
    set_timestamp(attempt.claimed_at, row["claimed_at"])
    set_timestamp(attempt.started_at, row["started_at"])
    set_timestamp(attempt.finished_at, row["finished_at"])
    return attempt


def output_message(job_id: int, row: dict[str, Any] | None) -> pb.JobOutput:
    """The output of an attempt from a row of `get_output`; empty when none has run."""
    if row is None:
        return pb.JobOutput(job_id=job_id)
    return pb.JobOutput(
        job_id=row["job_id"],
        attempt=row["attempt"],
        output=row["output"],
        truncated=row["output_truncated"],
    )


def event_message(event: JobEvent) -> pb.JobEvent:
    message = pb.JobEvent(
        job_id=event.job_id,
        status=STATUS_TO_PB.get(event.status, pb.JOB_STATUS_UNSPECIFIED),
        attempt=event.attempt,
        config_changed=event.config_changed,
        resync=event.resync,
    )
    set_timestamp(message.at, event.at)
    return message


def limit_message(limit: KeyLimit) -> pb.KeyLimit:
    return pb.KeyLimit(
        key=limit.key,
        max_concurrent_jobs=limit.max_concurrent_jobs,
        paused=limit.paused,
        running=limit.running,
        queued=limit.queued,
    )
