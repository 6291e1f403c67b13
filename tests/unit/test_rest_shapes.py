"""The gateway writes jobs and attempts as plain JSON values, not through its pydantic
models: those bodies must still be exactly what the models (and so the OpenAPI schema)
say, down to how times are written."""

import json
import random
from datetime import UTC, datetime, timedelta

from jobsched.v1 import jobs_pb2 as pb
from jobsched_common.timestamps import EPOCH, to_micros
from jobsched_gateway.live import job_event
from jobsched_gateway.schemas import (
    Attempt,
    Job,
    JsonBody,
    attempt_json,
    job_json,
    rest_time,
)
from pydantic import TypeAdapter

TIME = TypeAdapter(datetime)


def some_time(rng: random.Random) -> int:
    """Unix microseconds, some before 1970, some in whole seconds; 0 (unset) for some."""
    choice = rng.random()
    if choice < 0.2:
        return 0
    instant = datetime.fromtimestamp(rng.uniform(-6e10, 2.5e11), UTC)
    if choice < 0.4:
        instant = instant.replace(microsecond=0)
    return to_micros(instant)


def some_job(rng: random.Random) -> pb.Job:
    job = pb.Job(
        id=rng.randint(1, 2**63 - 1),
        name=rng.choice(["a", "nightly backup", "Überweisung ✓", 'quote " and \\ back']),
        command=rng.choice(["true", "echo 'x'\nexit 3", "printf '\\t'"]),
        status=rng.choice(list(pb.JobStatus.values())),
        attempt=rng.randint(0, 100),
        max_attempts=rng.randint(1, 100),
        timeout_seconds=rng.choice([0, 1, 604800]),
        runner_id=rng.choice(["", "runner-1"]),
        reason=rng.choice(["", "exit code 1", "lease expired"]),
    )
    if rng.random() < 0.5:
        job.exit_code = rng.randint(-128, 255)
    for field in ("last_run", "created_at", "updated_at", "started_at", "finished_at"):
        setattr(job, f"{field}_us", some_time(rng))
    return job


def some_attempt(rng: random.Random) -> pb.Attempt:
    attempt = pb.Attempt(
        job_id=rng.randint(1, 2**31 - 1),
        attempt=rng.randint(1, 100),
        runner_id="runner-2",
        reason=rng.choice(["", "timed out after 5 s"]),
        output_length=rng.randint(0, 2**40),
        output_truncated=rng.random() < 0.5,
    )
    if rng.random() < 0.5:
        attempt.exit_code = rng.randint(-128, 255)
    for field in ("claimed_at", "started_at", "finished_at"):
        setattr(attempt, f"{field}_us", some_time(rng))
    return attempt


def test_job_bodies_are_what_the_job_model_writes() -> None:
    rng = random.Random(3)
    jobs = [some_job(rng) for _ in range(2000)]
    bodies = [job_json(job) for job in jobs]
    for body in bodies:
        assert Job.model_validate(body).model_dump(mode="json") == body
    assert json.loads(bytes(JsonBody(bodies).body)) == bodies
    assert JsonBody(bodies).headers["content-type"] == "application/json"


def test_attempt_bodies_are_what_the_attempt_model_writes() -> None:
    rng = random.Random(4)
    for _ in range(1000):
        body = attempt_json(some_attempt(rng))
        assert Attempt.model_validate(body).model_dump(mode="json") == body


def test_times_are_written_as_pydantic_writes_them_beyond_the_cache() -> None:
    rng = random.Random(5)
    # More distinct seconds than the formatter keeps, and the same seconds again; years
    # 1 to 9999, before 1970 too.
    seconds = [rng.randint(-62135596800, 253402300799) for _ in range(6000)]
    for second in seconds + seconds[:100]:
        for micros in (0, 1, 999_999, rng.randrange(0, 10**6)):
            us = second * 1_000_000 + micros
            written = TIME.dump_python(EPOCH + timedelta(microseconds=us), mode="json")
            assert rest_time(us) == written


def test_events_write_their_times_as_jobs_do() -> None:
    at = 1735709600_020000
    event = job_event(pb.JobEvent(job_id=7, status=pb.JOB_STATUS_RUNNING, attempt=1, at_us=at))
    assert event == {"job_id": 7, "status": "running", "attempt": 1, "at": rest_time(at)}
    assert event["at"] == "2025-01-01T05:33:20.020000Z"
    assert job_event(pb.JobEvent(job_id=7))["at"] is None
    assert rest_time(0) is None
