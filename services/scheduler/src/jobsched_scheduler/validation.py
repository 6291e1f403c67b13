"""Every value a client sends, checked in one place against the rules in
`jobsched_common.limits`; what breaks one is refused as `InvalidValue("field: problem")`."""

import math
import unicodedata
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from jobsched.v1 import jobs_pb2 as pb
from jobsched_common.limits import (
    DEFAULT_PAGE_SIZE,
    MAX_ATTEMPTS,
    MAX_COMMAND_BYTES,
    MAX_CONCURRENT_JOBS,
    MAX_DELAY_SECONDS,
    MAX_DEPENDENCIES,
    MAX_JOBS_PER_BATCH,
    MAX_KEY_CHARS,
    MAX_KEY_LIMIT,
    MAX_NAME_CHARS,
    MAX_PAGE_SIZE,
    MAX_PRIORITY,
    MAX_TIMEOUT_SECONDS,
    MIN_CONCURRENT_JOBS,
    MIN_KEY_LIMIT,
    MIN_PRIORITY,
)
from jobsched_common.timestamps import from_timestamp

from .errors import InvalidValue
from .messages import STATUS_FROM_PB
from .model import JobFilter, NewJob

MAX_JOB_ID = 2**31 - 1  # ids are SERIAL (int4)


MAX_SEARCH_CHARS = 255


class JobsPage(NamedTuple):
    status: str | None  # None: every status
    limit: int
    before_id: int  # 0: from the newest job


def new_job(request: pb.CreateJobRequest) -> NewJob:
    """The job a CreateJob asks for, with the defaults for what it leaves unset."""
    _name(request.name)
    _command(request.command)
    max_attempts = 1
    if request.HasField("max_attempts"):
        max_attempts = _in_range("max_attempts", request.max_attempts, 1, MAX_ATTEMPTS)
    timeout = None
    if request.HasField("timeout_seconds"):
        timeout = _in_range("timeout_seconds", request.timeout_seconds, 1, MAX_TIMEOUT_SECONDS)
    return NewJob(
        request.name,
        request.command,
        max_attempts,
        timeout,
        priority(request.priority),
        _run_at(request),
        _delay(request),
        _depends_on(request.depends_on),
        concurrency_key(request.concurrency_key) if request.concurrency_key else None,
    )


def concurrency_key(key: str) -> str:
    """A key as a job, a schedule or a limit names it."""
    if not key.strip():
        raise InvalidValue("concurrency_key: Input should not be blank")
    if len(key) > MAX_KEY_CHARS:
        raise InvalidValue(f"concurrency_key: Input should have at most {MAX_KEY_CHARS} characters")
    shown_as_is("concurrency_key", key)
    return key


def key_limit(request: pb.SetLimitRequest) -> tuple[str, int | None, bool]:
    """The key, limit and pause a SetLimit sets."""
    limit = None
    if request.HasField("max_concurrent_jobs"):
        limit = _in_range(
            "max_concurrent_jobs", request.max_concurrent_jobs, MIN_KEY_LIMIT, MAX_KEY_LIMIT
        )
    return concurrency_key(request.key), limit, request.paused


def priority(value: int) -> int:
    return _in_range("priority", value, MIN_PRIORITY, MAX_PRIORITY)


def _run_at(request: pb.CreateJobRequest) -> datetime | None:
    if not request.HasField("run_at"):
        return None
    if request.HasField("delay_seconds"):
        raise InvalidValue("run_at: give run_at or delay_seconds, not both")
    try:
        run_at = from_timestamp(request.run_at)
    except (OverflowError, ValueError):
        run_at = None
    latest = datetime.now(UTC) + timedelta(seconds=MAX_DELAY_SECONDS)
    if run_at is None or run_at > latest:
        raise InvalidValue(f"run_at: Input should be a time before {latest:%Y-%m-%d}")
    return run_at


def _delay(request: pb.CreateJobRequest) -> float | None:
    if not request.HasField("delay_seconds"):
        return None
    delay = request.delay_seconds
    if not math.isfinite(delay) or not 0 <= delay <= MAX_DELAY_SECONDS:
        raise InvalidValue(
            f"delay_seconds: Input should be between 0 and {MAX_DELAY_SECONDS} seconds"
        )
    return delay


def _depends_on(ids: Sequence[int]) -> tuple[int, ...]:
    if len(ids) > MAX_DEPENDENCIES:
        raise InvalidValue(f"depends_on: Input should have at most {MAX_DEPENDENCIES} items")
    return tuple(sorted({_in_range("depends_on", i, 1, MAX_JOB_ID) for i in ids}))


def batch_size(count: int) -> None:
    """How many jobs one CreateJobs may carry."""
    if not 1 <= count <= MAX_JOBS_PER_BATCH:
        raise InvalidValue(
            f"jobs: Input should have between 1 and {MAX_JOBS_PER_BATCH} items, not {count}"
        )


def new_jobs(requests: Sequence[pb.CreateJobRequest]) -> list[NewJob]:
    """The jobs of a CreateJobs request, each valid, and no name given twice."""
    batch_size(len(requests))
    names: set[str] = set()
    jobs = []
    for index, request in enumerate(requests):
        try:
            job = new_job(request)
        except InvalidValue as exc:
            raise InvalidValue(f"job {index}: {exc}") from None
        if job.name in names:
            raise InvalidValue(f"job {index}: name '{job.name}' is given twice")
        names.add(job.name)
        jobs.append(job)
    return jobs


def job_id(value: int) -> int:
    return _in_range("id", value, 1, None)


def config_change(request: pb.UpdateConfigRequest) -> tuple[int | None, bool | None]:
    """The limit and the pause an UpdateConfig sets; at least one of them."""
    if not (request.HasField("max_concurrent_jobs") or request.HasField("paused")):
        raise InvalidValue("config: give max_concurrent_jobs, paused, or both")
    limit = None
    if request.HasField("max_concurrent_jobs"):
        limit = max_concurrent_jobs(request.max_concurrent_jobs)
    return limit, request.paused if request.HasField("paused") else None


def attempt_number(value: int) -> int:
    """An attempt of a job, 0 for its latest."""
    return _in_range("attempt", value, 0, None)


def _status(value: pb.JobStatus.ValueType) -> str | None:
    """A job status, None for any."""
    if value == pb.JOB_STATUS_UNSPECIFIED:
        return None
    status = STATUS_FROM_PB.get(value)
    if status is None:
        raise InvalidValue(f"status: Input should be a job status, not {value}")
    return status


def search_text(text: str) -> str:
    """What a search looks for in names and commands: "" for everything."""
    if len(text) > MAX_SEARCH_CHARS:
        raise InvalidValue(f"q: Input should have at most {MAX_SEARCH_CHARS} characters")
    if "\x00" in text:
        raise InvalidValue("q: Input should not contain NUL characters")
    return text


def bulk_target(request: pb.BulkJobsRequest) -> tuple[list[int] | None, JobFilter | None]:
    """The ids, or else the filter, a CancelJobs or RetryJobs applies to: exactly one."""
    if request.ids and request.HasField("filter"):
        raise InvalidValue("give ids or a filter, not both")
    if request.HasField("filter"):
        text = search_text(request.filter.q)
        return None, JobFilter(_status(request.filter.status), text or None)
    if not 1 <= len(request.ids) <= MAX_JOBS_PER_BATCH:
        raise InvalidValue(
            f"ids: Input should have between 1 and {MAX_JOBS_PER_BATCH} items, "
            f"not {len(request.ids)} (or give a filter)"
        )
    return sorted({_in_range("ids", i, 1, MAX_JOB_ID) for i in request.ids}), None


def jobs_page(request: pb.ListJobsRequest) -> JobsPage:
    status = _status(request.status)
    limit = DEFAULT_PAGE_SIZE
    if request.HasField("limit"):
        limit = _in_range("limit", request.limit, 1, MAX_PAGE_SIZE)
    before_id = 0
    if request.HasField("before_id"):
        before_id = _in_range("before_id", request.before_id, 1, None)
    return JobsPage(status, limit, before_id)


def max_concurrent_jobs(value: int) -> int:
    return _in_range("max_concurrent_jobs", value, MIN_CONCURRENT_JOBS, MAX_CONCURRENT_JOBS)


def _name(name: str) -> None:
    if not name.strip():
        raise InvalidValue("name: Input should not be blank")
    if len(name) > MAX_NAME_CHARS:
        raise InvalidValue(f"name: Input should have at most {MAX_NAME_CHARS} characters")
    shown_as_is("name", name)


def shown_as_is(field: str, text: str) -> None:
    """Refuses what would not show as itself in a log line, a table or a terminal: control
    characters (a newline, an escape sequence, a NUL forge lines and output) and invisible
    format characters (a right-to-left override, a zero-width space make one name look
    like another). Commands may hold them; names and keys need not."""
    categories = {unicodedata.category(char) for char in text}
    if "Cc" in categories:
        raise InvalidValue(f"{field}: Input should not contain control characters")
    if "Cf" in categories:
        raise InvalidValue(f"{field}: Input should not contain invisible format characters")


def _command(command: str) -> None:
    if not command.strip():
        raise InvalidValue("command: Input should not be blank")
    if len(command.encode()) > MAX_COMMAND_BYTES:
        raise InvalidValue(f"command: Input should have at most {MAX_COMMAND_BYTES} bytes")
    if "\x00" in command:
        raise InvalidValue("command: Input should not contain NUL characters")


def _in_range(field: str, value: int, low: int, high: int | None) -> int:
    """The value, or a refusal worded as the gateway's own type checks word theirs:
    `field: problem`."""
    if value < low:
        raise InvalidValue(f"{field}: Input should be greater than or equal to {low}")
    if high is not None and value > high:
        raise InvalidValue(f"{field}: Input should be less than or equal to {high}")
    return value
