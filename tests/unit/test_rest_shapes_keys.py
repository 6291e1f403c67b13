"""Per-key limits, the why-answer and the series are written as plain JSON values, as
jobs are: those bodies must be exactly what their models (the OpenAPI schema) say."""

import json
import random
from typing import Any

from jobsched.v1 import jobs_pb2 as pb
from jobsched_gateway.insight_schemas import Explanation, Series, explanation_json, series_json
from jobsched_gateway.limit_schemas import KeyLimits, key_limit_json
from jobsched_gateway.schemas import json_bytes

from tests.unit.test_rest_shapes import some_time

KINDS = ["global_limit", "key_limit", "paused", "key_paused", "not_before", "dependencies"]
KINDS += ["no_runners", "runner_capacity", "behind"]
# The fields each kind adds to `kind` and `message`, as the contract lists them.
FIELDS_OF_KIND = {
    "global_limit": {"limit", "running", "holders"},
    "key_limit": {"key", "limit", "running", "holders"},
    "paused": set(),
    "key_paused": {"key"},
    "not_before": {"run_at"},
    "dependencies": {"waiting_on"},
    "no_runners": set(),
    "runner_capacity": set(),
    "behind": {"position"},
}


def written(content: Any) -> Any:
    return json.loads(json_bytes(content))


def some_blocker(rng: random.Random) -> pb.Blocker:
    """Every field set, whatever the kind: the answer carries only the kind's own."""
    blocker = pb.Blocker(
        kind=rng.choice(KINDS),
        message="It waits.",
        limit=rng.randint(1, 10_000),
        running=rng.randint(0, 10_000),
        holders=[rng.randint(1, 2**63 - 1) for _ in range(rng.randint(0, 10))],
        key=rng.choice(["migrations", "tenant/42 ✓"]),
        waiting_on=[rng.randint(1, 2**63 - 1) for _ in range(rng.randint(0, 3))],
        position=rng.randint(0, 10**6),
    )
    time = some_time(rng)
    if time is not None:
        blocker.run_at.CopyFrom(time)
    return blocker


def test_key_limit_bodies_are_what_the_model_writes() -> None:
    rng = random.Random(15)
    limits = []
    for _ in range(500):
        limit = pb.KeyLimit(key=rng.choice(["a", "tenant/42 ✓", "x" * 255]), paused=True)
        limit.running, limit.queued = rng.randint(0, 2**40), rng.randint(0, 2**40)
        if rng.random() < 0.5:
            limit.max_concurrent_jobs = rng.randint(1, 10_000)
        limits.append(limit)
    body = written({"limits": [key_limit_json(limit) for limit in limits]})
    assert KeyLimits.model_validate(body).model_dump(mode="json") == body
    assert {one["max_concurrent_jobs"] is None for one in body["limits"]} == {True, False}


def test_explanations_carry_the_fields_of_each_blockers_kind() -> None:
    rng = random.Random(16)
    for _ in range(500):
        explanation = pb.JobExplanation(
            job_id=rng.randint(1, 2**63 - 1),
            status=rng.choice([pb.JOB_STATUS_QUEUED, pb.JOB_STATUS_SCHEDULED]),
            runnable=rng.random() < 0.5,
            blockers=[some_blocker(rng) for _ in range(rng.randint(0, 4))],
            message="Job 7 waits.",
        )
        if rng.random() < 0.5:
            explanation.position = rng.randint(0, 10**6)
        body = written(explanation_json(explanation))
        assert Explanation.model_validate(body).model_dump(mode="json") == body
        given = explanation.HasField("position")
        assert body["position"] == (explanation.position if given else None)
        for blocker in body["blockers"]:
            assert set(blocker) == {"kind", "message"} | FIELDS_OF_KIND[blocker["kind"]]


def test_a_finished_job_answers_without_blockers_or_position() -> None:
    explanation = pb.JobExplanation(job_id=7, status=pb.JOB_STATUS_COMPLETED, message="Done.")
    body = written(explanation_json(explanation))
    assert body == {
        "job_id": 7,
        "status": "completed",
        "runnable": False,
        "position": None,
        "message": "Done.",
        "blockers": [],
    }


def test_series_bodies_are_what_the_model_writes() -> None:
    rng = random.Random(17)
    points = []
    for _ in range(1440):
        point = pb.SeriesPoint(
            running=rng.randint(0, 10_000),
            limit=rng.randint(1, 10_000),
            key_running=rng.randint(0, 100),
            key_limit=rng.choice([0, 1, 10_000]),
            completed=rng.randint(0, 2**40),
            failed=rng.randint(0, 100),
            cancelled=rng.randint(0, 100),
            wait_p50_seconds=rng.uniform(0, 1e6),
            wait_p95_seconds=rng.choice([0.0, rng.uniform(0, 1e6)]),
        )
        time = some_time(rng)
        if time is not None:
            point.at.CopyFrom(time)
        points.append(point)
    body = written(series_json(pb.Series(points=points)))
    assert Series.model_validate(body).model_dump(mode="json") == body
    assert {point["key_limit"] for point in body["points"]} == {None, 1, 10_000}
