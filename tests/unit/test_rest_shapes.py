"""The gateway writes jobs and attempts as plain JSON values, not through its pydantic
models: those bodies must still be exactly what the models (and so the OpenAPI schema)
say, down to how times are written."""

import json
import random
from datetime import UTC, datetime, timedelta

from google.protobuf.timestamp_pb2 import Timestamp
from jobsched.v1 import jobs_pb2 as pb
from jobsched_common.timestamps import EPOCH, to_timestamp
from jobsched_gateway.live import job_event, sse
from jobsched_gateway.schemas import (
    Attempt,
    Job,
    JsonBody,
    attempt_json,
    job_json,
    json_bytes,
    time_of,
)
from pydantic import TypeAdapter

TIME = TypeAdapter(datetime)


def some_time(rng: random.Random) -> Timestamp | None:
    """A time, some before 1970, some in whole seconds; None (unset) for some."""
    choice = rng.random()
    if choice < 0.2:
        return None
    instant = datetime.fromtimestamp(rng.uniform(-6e10, 2.5e11), UTC)
    if choice < 0.4:
        instant = instant.replace(microsecond=0)
    return to_timestamp(instant)


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
        time = some_time(rng)
        if time is not None:
            getattr(job, field).CopyFrom(time)
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
        time = some_time(rng)
        if time is not None:
            getattr(attempt, field).CopyFrom(time)
    return attempt


def test_job_bodies_are_what_the_job_model_writes() -> None:
    rng = random.Random(3)
    jobs = [some_job(rng) for _ in range(2000)]
    bodies = json.loads(bytes(JsonBody([job_json(job) for job in jobs]).body))
    assert len(bodies) == len(jobs)
    for body in bodies:
        assert Job.model_validate(body).model_dump(mode="json") == body
    assert JsonBody(bodies).headers["content-type"] == "application/json"


def test_attempt_bodies_are_what_the_attempt_model_writes() -> None:
    rng = random.Random(4)
    for _ in range(1000):
        body = json.loads(json_bytes(attempt_json(some_attempt(rng))))
        assert Attempt.model_validate(body).model_dump(mode="json") == body


def test_times_are_written_as_pydantic_writes_them() -> None:
    rng = random.Random(5)
    # Years 1 to 9999, before 1970 too.
    seconds = [rng.randint(-62135596800, 253402300799) for _ in range(6000)]
    for second in seconds + seconds[:100]:
        for micros in (0, 1, 999_999, rng.randrange(0, 10**6)):
            event = pb.JobEvent(at=Timestamp(seconds=second, nanos=micros * 1000))
            instant = EPOCH + timedelta(seconds=second, microseconds=micros)
            written = json.loads(json_bytes(time_of(event, "at")))
            assert written == TIME.dump_python(instant, mode="json")


def test_events_write_their_times_as_jobs_do() -> None:
    at = Timestamp(seconds=1735709600, nanos=20_000_000)
    message = pb.JobEvent(job_id=7, status=pb.JOB_STATUS_RUNNING, attempt=1, at=at)
    event = job_event(message)
    assert event == {"job_id": 7, "status": "running", "attempt": 1, "at": time_of(message, "at")}
    written = sse("job", event)
    assert written.startswith("event: job\ndata: ") and written.endswith("\n\n")
    assert json.loads(written.split("data: ", 1)[1])["at"] == "2025-01-01T05:33:20.020000Z"
    assert job_event(pb.JobEvent(job_id=7))["at"] is None
    assert time_of(pb.JobEvent(), "at") is None
