"""Every value a client sends, checked in one place against the rules in
`jobsched_common.limits`; what breaks one is refused as `InvalidValue`."""

from collections.abc import Sequence
from typing import NamedTuple

from jobsched.v1 import jobs_pb2 as pb
from jobsched_common.limits import (
    DEFAULT_PAGE_SIZE,
    MAX_ATTEMPTS,
    MAX_COMMAND_BYTES,
    MAX_CONCURRENT_JOBS,
    MAX_JOBS_PER_BATCH,
    MAX_NAME_CHARS,
    MAX_PAGE_SIZE,
    MAX_TIMEOUT_SECONDS,
    MIN_CONCURRENT_JOBS,
)

from .errors import InvalidValue
from .messages import STATUS_FROM_PB
from .model import NewJob


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
    return NewJob(request.name, request.command, max_attempts, timeout)


def new_jobs(requests: Sequence[pb.CreateJobRequest]) -> list[NewJob]:
    """The jobs of a CreateJobs request, each valid, and no name given twice."""
    if not 1 <= len(requests) <= MAX_JOBS_PER_BATCH:
        raise InvalidValue(f"give between 1 and {MAX_JOBS_PER_BATCH} jobs, not {len(requests)}")
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
    if value < 1:
        raise InvalidValue(f"a job id is at least 1, not {value}")
    return value


def attempt_number(value: int) -> int:
    """An attempt of a job, 0 for its latest."""
    if value < 0:
        raise InvalidValue(f"attempt must not be negative, not {value}")
    return value


def jobs_page(request: pb.ListJobsRequest) -> JobsPage:
    status = None
    if request.status != pb.JOB_STATUS_UNSPECIFIED:
        status = STATUS_FROM_PB.get(request.status)
        if status is None:
            raise InvalidValue(f"unknown job status {request.status}")
    limit = DEFAULT_PAGE_SIZE
    if request.HasField("limit"):
        limit = _in_range("limit", request.limit, 1, MAX_PAGE_SIZE)
    if request.before_id < 0:
        raise InvalidValue("before_id must not be negative")
    return JobsPage(status, limit, request.before_id)


def max_concurrent_jobs(value: int) -> int:
    return _in_range("max_concurrent_jobs", value, MIN_CONCURRENT_JOBS, MAX_CONCURRENT_JOBS)


def _name(name: str) -> None:
    if not name.strip():
        raise InvalidValue("name must not be empty")
    if len(name) > MAX_NAME_CHARS:
        raise InvalidValue(f"name must be at most {MAX_NAME_CHARS} characters")
    if "\x00" in name:
        raise InvalidValue("name must not contain NUL characters")


def _command(command: str) -> None:
    if not command.strip():
        raise InvalidValue("command must not be empty")
    if len(command.encode()) > MAX_COMMAND_BYTES:
        raise InvalidValue(f"command must be at most {MAX_COMMAND_BYTES} bytes")
    if "\x00" in command:
        raise InvalidValue("command must not contain NUL characters")


def _in_range(field: str, value: int, low: int, high: int) -> int:
    if not low <= value <= high:
        raise InvalidValue(f"{field} must be between {low} and {high}")
    return value
