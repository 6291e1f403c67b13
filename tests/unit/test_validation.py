"""Every request value is checked once, in the scheduler, against jobsched_common.limits:
what the REST API answers 422 to is refused here first."""

import pytest
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
)
from jobsched_scheduler import validation
from jobsched_scheduler.errors import InvalidValue
from jobsched_scheduler.model import NewJob


def job(**fields: object) -> pb.CreateJobRequest:
    return pb.CreateJobRequest(**{"name": "n", "command": "true", **fields})  # type: ignore[arg-type]


def test_unset_values_take_the_defaults() -> None:
    assert validation.new_job(job()) == NewJob("n", "true", 1, None)
    assert validation.jobs_page(pb.ListJobsRequest()) == (None, DEFAULT_PAGE_SIZE, 0)


def test_values_at_the_limits_are_accepted() -> None:
    longest = job(
        name="n" * MAX_NAME_CHARS,
        command="é" * (MAX_COMMAND_BYTES // 2),
        max_attempts=MAX_ATTEMPTS,
        timeout_seconds=MAX_TIMEOUT_SECONDS,
    )
    created = validation.new_job(longest)
    assert (created.max_attempts, created.timeout_seconds) == (MAX_ATTEMPTS, MAX_TIMEOUT_SECONDS)
    assert validation.new_job(job(max_attempts=1, timeout_seconds=1))[2:4] == (1, 1)
    page = pb.ListJobsRequest(status=pb.JOB_STATUS_FAILED, limit=MAX_PAGE_SIZE, before_id=9)
    assert validation.jobs_page(page) == ("failed", MAX_PAGE_SIZE, 9)
    assert validation.max_concurrent_jobs(MAX_CONCURRENT_JOBS) == MAX_CONCURRENT_JOBS
    assert validation.job_id(1) == 1 and validation.attempt_number(0) == 0


@pytest.mark.parametrize(
    ("request_", "says"),
    [
        (job(name=""), "name: Input should not be blank"),
        (job(name="   "), "name: Input should not be blank"),
        (
            job(name="n" * (MAX_NAME_CHARS + 1)),
            f"name: Input should have at most {MAX_NAME_CHARS} characters",
        ),
        (job(name="nul\x00"), "name: Input should not contain control characters"),
        (job(name="fake\nlog line"), "control characters"),
        (job(name="\x1b[31mred"), "control characters"),
        (job(name="c1\x85"), "control characters"),
        (job(name="invoice\u202efdp.exe"), "name: Input should not contain invisible format"),
        (job(name="zero\u200bwidth"), "invisible format characters"),
        (job(concurrency_key="a\u2066b"), "concurrency_key: Input should not contain invisible"),
        (job(command=""), "command: Input should not be blank"),
        (job(command="\t\n"), "command: Input should not be blank"),
        (
            job(command="é" * (MAX_COMMAND_BYTES // 2 + 1)),
            f"command: .* at most {MAX_COMMAND_BYTES} bytes",
        ),
        (job(command="true\x00"), "NUL"),
        (job(max_attempts=0), "max_attempts: Input should be greater than or equal to 1"),
        (
            job(max_attempts=MAX_ATTEMPTS + 1),
            f"max_attempts: Input should be less than or equal to {MAX_ATTEMPTS}",
        ),
        (job(timeout_seconds=0), "timeout_seconds: Input should be greater than or equal to 1"),
        (job(timeout_seconds=-1), "timeout_seconds"),
    ],
)
def test_a_bad_job_is_refused(request_: pb.CreateJobRequest, says: str) -> None:
    with pytest.raises(InvalidValue, match=says):
        validation.new_job(request_)
    with pytest.raises(InvalidValue, match=f"job 1: .*{says}"):
        validation.new_jobs([job(name="fine"), request_])


def test_a_batch_is_refused_when_empty_too_big_or_naming_a_job_twice() -> None:
    with pytest.raises(InvalidValue, match=f"jobs: .* between 1 and {MAX_JOBS_PER_BATCH} items"):
        validation.new_jobs([])
    too_many = [job(name=f"j{i}") for i in range(MAX_JOBS_PER_BATCH + 1)]
    with pytest.raises(InvalidValue, match=f"not {MAX_JOBS_PER_BATCH + 1}"):
        validation.new_jobs(too_many)
    assert len(validation.new_jobs(too_many[:-1])) == MAX_JOBS_PER_BATCH
    with pytest.raises(InvalidValue, match=r"^job 2: name 'b' is given twice$"):
        validation.new_jobs([job(name="b"), job(name="c"), job(name="b")])


@pytest.mark.parametrize(
    "page",
    [
        pb.ListJobsRequest(limit=0),
        pb.ListJobsRequest(limit=MAX_PAGE_SIZE + 1),
        pb.ListJobsRequest(before_id=-1),
        pb.ListJobsRequest(before_id=0),
        pb.ListJobsRequest(status=99),  # type: ignore[arg-type]
    ],
)
def test_a_bad_page_is_refused(page: pb.ListJobsRequest) -> None:
    with pytest.raises(InvalidValue):
        validation.jobs_page(page)


def test_ids_attempts_and_the_limit_are_refused_out_of_range() -> None:
    for bad_id in (0, -1):
        with pytest.raises(InvalidValue, match=r"^id: Input should be greater than or equal to 1$"):
            validation.job_id(bad_id)
    with pytest.raises(InvalidValue):
        validation.attempt_number(-1)
    for limit in (0, MAX_CONCURRENT_JOBS + 1):
        with pytest.raises(InvalidValue, match="max_concurrent_jobs"):
            validation.max_concurrent_jobs(limit)
