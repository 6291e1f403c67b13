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
from jobsched_gateway.schedule_schemas import Schedule, Schedules, schedule_json
from jobsched_gateway.schemas import (
    Attempt,
    Config,
    Job,
    JsonBody,
    Stats,
    attempt_json,
    config_json,
    job_json,
    json_bytes,
    stats_json,
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
        concurrency_key=rng.choice(["", "migrations", "tenant/42 ✓"]),
    )
    if rng.random() < 0.5:
        job.exit_code = rng.randint(-128, 255)
    job.priority = rng.randint(-100, 100)
    job.depends_on.extend(rng.randint(1, 2**63 - 1) for _ in range(rng.choice([0, 0, 1, 3])))
    for field in ("last_run", "created_at", "updated_at", "started_at", "finished_at", "run_at"):
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


# Offsets of whole hours, half hours, 45 minutes; local mean times of old years; names
# this machine does not know (a folder of the zone database, a path, one too long for a
# file name); none (UTC).
ZONES = ["", "UTC", "Europe/Berlin", "Asia/Kolkata", "Pacific/Chatham", "America/St_Johns"]
ZONES += ["Nowhere/Atlantis", "Europe", "../etc/passwd", "x" * 300]


def some_schedule(rng: random.Random) -> pb.Schedule:
    schedule = pb.Schedule(
        name=rng.choice(["backup", "nächtlich ✓", 'quote " and \\ back']),
        command=rng.choice(["pg_dump app", "echo 'x'\nexit 3"]),
        timezone=rng.choice(ZONES),
        overlap=rng.choice(list(pb.Overlap.values())),
        paused=rng.random() < 0.3,
        priority=rng.randint(-100, 100),
        last_job_id=rng.choice([0, rng.randint(1, 2**63 - 1)]),
        skipped_count=rng.randint(0, 2**40),
        concurrency_key=rng.choice(["", "reports"]),
    )
    if rng.random() < 0.5:
        schedule.cron = rng.choice(["0 3 * * *", "@hourly", "*/5 9-17 * * 1-5"])
    else:
        schedule.every_seconds = rng.randint(1, 366 * 24 * 3600)
    for field, values in [
        ("catchup_window_seconds", [0, 60, 604800]),
        ("max_attempts", [1, 100]),
        ("timeout_seconds", [0, 1, 604800]),
    ]:
        if rng.random() < 0.5:
            setattr(schedule, field, rng.choice(values))
    for field in ("next_run_at", "last_run_at", "created_at", "updated_at"):
        time = some_time(rng)
        if time is not None:
            getattr(schedule, field).CopyFrom(time)
    return schedule


def test_schedule_bodies_are_what_the_schedule_model_writes() -> None:
    rng = random.Random(6)
    schedules = [some_schedule(rng) for _ in range(2000)]
    body = json.loads(json_bytes({"schedules": [schedule_json(s) for s in schedules]}))
    assert Schedules.model_validate(body).model_dump(mode="json") == body
    for one in body["schedules"]:
        assert (one["cron"] is None) != (one["every_seconds"] is None)
        assert one["timeout_seconds"] != 0 and one["last_job_id"] != 0


def next_run(zone: str, utc: str, paused: bool = False) -> str | None:
    """The next_run_at a schedule in `zone` answers for a fire time given in UTC."""
    schedule = pb.Schedule(name="s", timezone=zone, every_seconds=60, paused=paused)
    if not paused:
        schedule.next_run_at.CopyFrom(to_timestamp(datetime.fromisoformat(utc)))
    schedule.last_run_at.CopyFrom(to_timestamp(datetime.fromisoformat(utc)))
    body = json.loads(json_bytes(schedule_json(schedule)))
    assert body["last_run_at"] == utc.replace("+00:00", "Z")  # other times stay in UTC
    assert Schedule.model_validate(body).model_dump(mode="json") == body
    written: str | None = body["next_run_at"]
    return written


def test_next_run_at_is_written_in_the_schedules_own_offset() -> None:
    assert next_run("Europe/Berlin", "2026-11-29T03:00:00+00:00") == "2026-11-29T04:00:00+01:00"
    assert next_run("Europe/Berlin", "2026-07-01T01:00:00+00:00") == "2026-07-01T03:00:00+02:00"
    # The spring-forward and fall-back days: the same zone, the offset of the instant.
    assert next_run("Europe/Berlin", "2026-03-29T00:30:00+00:00") == "2026-03-29T01:30:00+01:00"
    assert next_run("Europe/Berlin", "2026-03-29T01:30:00+00:00") == "2026-03-29T03:30:00+02:00"
    assert next_run("Europe/Berlin", "2026-10-25T00:30:00+00:00") == "2026-10-25T02:30:00+02:00"
    assert next_run("Europe/Berlin", "2026-10-25T01:30:00+00:00") == "2026-10-25T02:30:00+01:00"
    assert next_run("Asia/Kolkata", "2026-11-29T03:00:00.500000+00:00") == (
        "2026-11-29T08:30:00.500000+05:30"
    )
    assert next_run("America/St_Johns", "2026-11-29T03:00:00+00:00") == (
        "2026-11-28T23:30:00-03:30"
    )
    for utc_zone in ["", "UTC", "Etc/UTC"]:
        assert next_run(utc_zone, "2026-11-29T03:00:00+00:00") == "2026-11-29T03:00:00Z"
    # A zone this machine does not know, and an offset in seconds (Berlin's local mean
    # time), are written in UTC rather than wrongly; a paused schedule has no next run.
    for unknown in ["Nowhere/Atlantis", "Europe", "../etc/passwd", "x" * 300]:
        assert next_run(unknown, "2026-11-29T03:00:00+00:00") == "2026-11-29T03:00:00Z"
    assert next_run("Europe/Berlin", "1890-01-01T00:00:00+00:00") == "1890-01-01T00:00:00Z"
    assert next_run("Europe/Berlin", "9999-12-31T23:30:00+00:00") == "9999-12-31T23:30:00Z"
    assert next_run("Europe/Berlin", "2026-11-29T03:00:00+00:00", paused=True) is None


def test_stats_and_config_bodies_are_what_their_models_write() -> None:
    rng = random.Random(7)
    for _ in range(200):
        counts = {field: rng.randint(0, 2**40) for field in ("queued", "scheduled", "total")}
        stats = pb.Stats(**counts, max_concurrent_jobs=rng.randint(1, 10_000), paused=True)
        body = json.loads(json_bytes(stats_json(stats)))
        assert Stats.model_validate(body).model_dump(mode="json") == body
        assert body["scheduled"] == counts["scheduled"] and body["paused"] is True
    config = json.loads(json_bytes(config_json(pb.Config(max_concurrent_jobs=3))))
    assert config == {"max_concurrent_jobs": 3, "paused": False}
    assert Config.model_validate(config).model_dump(mode="json") == config


def test_job_bodies_are_what_the_job_model_writes() -> None:
    rng = random.Random(3)
    jobs = [some_job(rng) for _ in range(2000)]
    bodies = json.loads(bytes(JsonBody([job_json(job) for job in jobs]).body))
    assert len(bodies) == len(jobs)
    for body in bodies:
        assert Job.model_validate(body).model_dump(mode="json") == body
    assert JsonBody(bodies).headers["content-type"] == "application/json"
    assert {len(body["depends_on"]) for body in bodies} == {0, 1, 3}
    assert any(body["run_at"] is None for body in bodies)
    assert {body["concurrency_key"] for body in bodies} == {None, "migrations", "tenant/42 ✓"}


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
