"""The JobService: the public gRPC API used by the gateway and any gRPC client."""

import asyncio
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

import grpc
import psycopg
import psycopg_pool
from jobsched.v1 import jobs_pb2 as pb
from jobsched.v1 import jobs_pb2_grpc
from jobsched_common.timestamps import to_micros

from . import metrics
from .dispatch import Dispatcher
from .events import EventHub
from .model import AttemptKey, JobRow, NewJob
from .store import DuplicateName, PgStore

log = logging.getLogger(__name__)

MAX_NAME = 255
MAX_COMMAND = 64 * 1024
MAX_LIMIT = 1000
MAX_BATCH = 1000  # jobs in one CreateJobs
DEFAULT_LIMIT = 100
MAX_CONCURRENT = 10_000
MAX_ATTEMPTS = 100
MAX_TIMEOUT = 7 * 24 * 3600

STATUS_TO_PB = {
    "queued": pb.JOB_STATUS_QUEUED,
    "running": pb.JOB_STATUS_RUNNING,
    "completed": pb.JOB_STATUS_COMPLETED,
    "failed": pb.JOB_STATUS_FAILED,
    "cancelled": pb.JOB_STATUS_CANCELLED,
}
PB_TO_STATUS = {v: k for k, v in STATUS_TO_PB.items()}

Req = TypeVar("Req")
Resp = TypeVar("Resp")
Ctx = grpc.aio.ServicerContext[Any, Any]
Handler = Callable[[Any, Req, Ctx], Awaitable[Resp]]


class InvalidArgument(Exception):
    pass


class NotFound(Exception):
    pass


class FailedPrecondition(Exception):
    pass


def _changed(outcome: tuple[JobRow | None, bool], job_id: int, refusal: str) -> JobRow:
    """The job a cancel or retry changed; else why it could not be changed."""
    row, changed = outcome
    if row is None:
        raise NotFound(f"job {job_id} not found")
    if not changed:
        raise FailedPrecondition(f"job {job_id} " + refusal.format(status=row.status))
    return row


def rpc(handler: Handler[Req, Resp]) -> Handler[Req, Resp]:
    """Maps our exceptions to gRPC status codes, so that no RPC fails as UNKNOWN."""

    @functools.wraps(handler)
    async def wrapper(self: Any, request: Req, context: Ctx) -> Resp:
        try:
            return await handler(self, request, context)
        except InvalidArgument as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except NotFound as exc:
            await context.abort(grpc.StatusCode.NOT_FOUND, str(exc))
        except DuplicateName as exc:
            await context.abort(grpc.StatusCode.ALREADY_EXISTS, str(exc))
        except FailedPrecondition as exc:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
        except psycopg.DataError as exc:  # e.g. an id beyond the column's range
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"invalid value: {exc}")
        except (psycopg.OperationalError, psycopg_pool.PoolTimeout) as exc:
            log.warning("Database unavailable: %s", exc)
            await context.abort(grpc.StatusCode.UNAVAILABLE, "database unavailable")
        raise AssertionError("unreachable")

    return wrapper


def validate_job(name: str, command: str, max_attempts: int, timeout_seconds: int) -> None:
    if not name.strip():
        raise InvalidArgument("name must not be empty")
    if len(name) > MAX_NAME:
        raise InvalidArgument(f"name must be at most {MAX_NAME} characters")
    if not command.strip():
        raise InvalidArgument("command must not be empty")
    if len(command.encode()) > MAX_COMMAND:
        raise InvalidArgument(f"command must be at most {MAX_COMMAND} bytes")
    if "\x00" in name or "\x00" in command:
        raise InvalidArgument("name and command must not contain NUL characters")
    if not 0 <= max_attempts <= MAX_ATTEMPTS:
        raise InvalidArgument(f"max_attempts must be between 1 and {MAX_ATTEMPTS}")
    if not 0 <= timeout_seconds <= MAX_TIMEOUT:
        raise InvalidArgument(f"timeout_seconds must be between 1 and {MAX_TIMEOUT}")


def _micros(value: datetime | None) -> int:
    return 0 if value is None else to_micros(value)


PG_EPOCH_US = 946_684_800_000_000  # 2000-01-01 UTC in Unix microseconds: JobRow's epoch
# What the API sends, years 1 to 9999, in JobRow's microseconds: what a client can turn
# into a date. PostgreSQL also has years up to 294276 and ±infinity, which a row set by
# hand may carry; those are sent as unset.
PG_TIME_MIN = -63_082_281_600_000_000
PG_TIME_MAX = 252_455_615_999_999_999


def unix_us(pg_us: int | None) -> int:
    """A JobRow time as the API's Unix microseconds; 0 (unset) for None or a time outside
    years 1 to 9999."""
    if pg_us is None or not PG_TIME_MIN <= pg_us <= PG_TIME_MAX:
        return 0
    return pg_us + PG_EPOCH_US


def fill_job(job: pb.Job, row: JobRow) -> pb.Job:
    """Sets a Job's fields from a row, one assignment each, and leaves what the row
    leaves empty unset. Pages of jobs are the API's hottest conversion: with upb this
    costs 1.7 µs a row where keyword arguments to `add` cost 2.3 (bench/listcost.py)."""
    (id, name, command, status, last_run, created_at, updated_at, attempt, max_attempts,
     timeout_seconds, runner_id, started_at, finished_at, exit_code, reason) = row  # fmt: skip
    job.id = id
    job.name = name
    job.command = command
    job.status = STATUS_TO_PB.get(status or "queued", pb.JOB_STATUS_UNSPECIFIED)
    job.last_run_us = unix_us(last_run)
    job.created_at_us = unix_us(created_at)
    job.updated_at_us = unix_us(updated_at)
    job.attempt = attempt
    job.max_attempts = max_attempts
    if timeout_seconds:
        job.timeout_seconds = timeout_seconds
    if runner_id:
        job.runner_id = runner_id
    job.started_at_us = unix_us(started_at)
    job.finished_at_us = unix_us(finished_at)
    if exit_code is not None:
        job.exit_code = exit_code
    if reason:
        job.reason = reason
    return job


def job_to_pb(row: JobRow) -> pb.Job:
    return fill_job(pb.Job(), row)


def add_jobs(jobs: Any, rows: list[JobRow]) -> None:
    """Appends rows to a repeated Job field, filling each message in place."""
    add = jobs.add
    for row in rows:
        fill_job(add(), row)


def new_jobs(requests: Sequence[pb.CreateJobRequest]) -> list[NewJob]:
    """The jobs of a CreateJobs request, each validated, and no name given twice."""
    if not 1 <= len(requests) <= MAX_BATCH:
        raise InvalidArgument(f"give between 1 and {MAX_BATCH} jobs, not {len(requests)}")
    names: set[str] = set()
    jobs = []
    for index, r in enumerate(requests):
        try:
            validate_job(r.name, r.command, r.max_attempts, r.timeout_seconds)
        except InvalidArgument as exc:
            raise InvalidArgument(f"job {index}: {exc}") from None
        if r.name in names:
            raise InvalidArgument(f"job {index}: name '{r.name}' is given twice")
        names.add(r.name)
        jobs.append(NewJob(r.name, r.command, r.max_attempts or 1, r.timeout_seconds or None))
    return jobs


class JobApi(jobs_pb2_grpc.JobServiceServicer):
    def __init__(self, store: PgStore, dispatcher: Dispatcher, events: EventHub):
        self.store = store
        self.dispatcher = dispatcher
        self.events = events

    @rpc
    async def CreateJob(self, request: pb.CreateJobRequest, context: Ctx) -> pb.Job:
        validate_job(request.name, request.command, request.max_attempts, request.timeout_seconds)
        row = await self.store.create_job(
            request.name,
            request.command,
            request.max_attempts or 1,
            request.timeout_seconds or None,
        )
        log.info("Created new job: %s", request.name, extra={"job_id": row.id})
        metrics.JOBS_CREATED.inc()
        return job_to_pb(row)

    @rpc
    async def CreateJobs(
        self, request: pb.CreateJobsRequest, context: Ctx
    ) -> pb.CreateJobsResponse:
        rows = await self.store.create_jobs(new_jobs(request.jobs))
        log.info("Created %d new jobs (ids %d to %d)", len(rows), rows[0].id, rows[-1].id)
        metrics.JOBS_CREATED.inc(len(rows))
        reply = pb.CreateJobsResponse()
        add_jobs(reply.jobs, rows)
        return reply

    @rpc
    async def GetJob(self, request: pb.GetJobRequest, context: Ctx) -> pb.Job:
        row = await self.store.get_job(request.id)
        if row is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"job {request.id} not found")
        return job_to_pb(row)

    @rpc
    async def ListJobs(self, request: pb.ListJobsRequest, context: Ctx) -> pb.ListJobsResponse:
        if not 0 <= request.limit <= MAX_LIMIT:
            raise InvalidArgument(f"limit must be between 1 and {MAX_LIMIT}")
        if request.before_id < 0:
            raise InvalidArgument("before_id must not be negative")
        limit = request.limit or DEFAULT_LIMIT
        status = PB_TO_STATUS.get(request.status)
        rows = await self.store.list_jobs(status, limit, request.before_id)
        reply = pb.ListJobsResponse(next_before_id=rows[-1].id if len(rows) == limit else 0)
        add_jobs(reply.jobs, rows)
        return reply

    @rpc
    async def GetJobOutput(self, request: pb.GetJobOutputRequest, context: Ctx) -> pb.JobOutput:
        row = await self.store.get_output(request.id, request.attempt)
        if row is None:
            if await self.store.get_job(request.id) is None:
                await context.abort(grpc.StatusCode.NOT_FOUND, f"job {request.id} not found")
            return pb.JobOutput(job_id=request.id)
        return pb.JobOutput(
            job_id=row["job_id"],
            attempt=row["attempt"],
            output=row["output"],
            truncated=row["output_truncated"],
        )

    @rpc
    async def CancelJob(self, request: pb.CancelJobRequest, context: Ctx) -> pb.Job:
        row = _changed(await self.store.cancel(request.id), request.id, "is already {status}")
        if row.status == "running":
            self.dispatcher.kill(row.runner_id or "", AttemptKey(row.id, row.attempt), "cancelled")
        log.info("Cancelled job %d (%s)", row.id, row.status, extra={"job_id": row.id})
        return job_to_pb(row)

    @rpc
    async def RetryJob(self, request: pb.RetryJobRequest, context: Ctx) -> pb.Job:
        row = _changed(
            await self.store.retry(request.id),
            request.id,
            "is {status}: only a finished job can be retried",
        )
        log.info("Queued job %d again", row.id, extra={"job_id": row.id})
        return job_to_pb(row)

    @rpc
    async def ListAttempts(
        self, request: pb.ListAttemptsRequest, context: Ctx
    ) -> pb.ListAttemptsResponse:
        rows = await self.store.list_attempts(request.job_id)
        if not rows and await self.store.get_job(request.job_id) is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"job {request.job_id} not found")
        return pb.ListAttemptsResponse(
            attempts=[
                pb.Attempt(
                    job_id=r["job_id"],
                    attempt=r["attempt"],
                    runner_id=r["runner_id"],
                    claimed_at_us=_micros(r["claimed_at"]),
                    started_at_us=_micros(r["started_at"]),
                    finished_at_us=_micros(r["finished_at"]),
                    exit_code=r["exit_code"],
                    reason=r["reason"] or "",
                    output_length=r["output_length"],
                    output_truncated=r["output_truncated"],
                )
                for r in rows
            ]
        )

    @rpc
    async def GetConfig(self, request: pb.GetConfigRequest, context: Ctx) -> pb.Config:
        return pb.Config(max_concurrent_jobs=await self.store.get_max_concurrent())

    @rpc
    async def UpdateConfig(self, request: pb.UpdateConfigRequest, context: Ctx) -> pb.Config:
        if not 1 <= request.max_concurrent_jobs <= MAX_CONCURRENT:
            raise InvalidArgument(f"max_concurrent_jobs must be between 1 and {MAX_CONCURRENT}")
        value = await self.store.set_max_concurrent(request.max_concurrent_jobs)
        log.info("Updated max_concurrent_jobs to %d", value)
        return pb.Config(max_concurrent_jobs=value)

    @rpc
    async def GetStats(self, request: pb.GetStatsRequest, context: Ctx) -> pb.Stats:
        counts = await self.store.count_by_status()
        return pb.Stats(
            queued=counts["queued"],
            running=counts["running"],
            completed=counts["completed"],
            failed=counts["failed"],
            cancelled=counts["cancelled"],
            total=sum(counts.values()),
            max_concurrent_jobs=await self.store.get_max_concurrent(),
            runners_connected=len(self.dispatcher.runners),
        )

    async def WatchEvents(
        self, request: pb.WatchEventsRequest, context: Ctx
    ) -> AsyncIterator[pb.JobEvent]:
        watcher = self.events.subscribe()
        try:
            while not watcher.dropped:
                try:
                    event = await asyncio.wait_for(watcher.queue.get(), 1.0)
                except TimeoutError:
                    continue
                yield pb.JobEvent(
                    job_id=event.job_id,
                    status=STATUS_TO_PB.get(event.status, pb.JOB_STATUS_UNSPECIFIED),
                    attempt=event.attempt,
                    at_us=_micros(event.at),
                )
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "watcher fell behind")
        finally:
            self.events.unsubscribe(watcher)
