"""The REST shapes of `GET /api/jobs/{id}/why` (ExplainJob) and `GET /api/series`
(GetSeries): why a job waits, and the last minutes at a glance."""

from datetime import datetime
from typing import Annotated, Any, Literal

from jobsched.v1 import jobs_pb2 as pb
from jobsched_common.limits import Status
from pydantic import BaseModel, Field

from .schemas import STATUS_FROM_PB, time_of

Holders = Annotated[list[int], Field(description="Up to 10 ids of jobs holding the slots.")]


class GlobalLimitBlocker(BaseModel):
    kind: Literal["global_limit"]
    message: str
    limit: int
    running: int
    holders: Holders


class KeyLimitBlocker(BaseModel):
    kind: Literal["key_limit"]
    message: str
    key: str
    limit: int
    running: int
    holders: Holders


class PausedBlocker(BaseModel):
    kind: Literal["paused"]
    message: str


class KeyPausedBlocker(BaseModel):
    kind: Literal["key_paused"]
    message: str
    key: str


class NotBeforeBlocker(BaseModel):
    kind: Literal["not_before"]
    message: str
    run_at: datetime | None = Field(description="A delay's, or a retry's backoff's, end.")


class DependenciesBlocker(BaseModel):
    kind: Literal["dependencies"]
    message: str
    waiting_on: list[int] = Field(description="Jobs that have not completed yet.")


class NoRunnersBlocker(BaseModel):
    kind: Literal["no_runners"]
    message: str


class RunnerCapacityBlocker(BaseModel):
    kind: Literal["runner_capacity"]
    message: str = Field(description="Every connected runner's slots are taken.")


class BehindBlocker(BaseModel):
    kind: Literal["behind"]
    message: str
    position: int = Field(description="Eligible jobs ahead of it in the claim's order.")


Blocker = Annotated[
    GlobalLimitBlocker
    | KeyLimitBlocker
    | PausedBlocker
    | KeyPausedBlocker
    | NotBeforeBlocker
    | DependenciesBlocker
    | NoRunnersBlocker
    | RunnerCapacityBlocker
    | BehindBlocker,
    Field(discriminator="kind"),
]


class Explanation(BaseModel):
    job_id: int
    status: Status
    runnable: bool = Field(
        description="It would be claimed now if a slot were free in its turn: no blocker "
        "but `behind`."
    )
    position: int | None = Field(
        description="Eligible jobs ahead of it in the claim's order; null when not waiting."
    )
    message: str = Field(description="Where the job is, for a person.")
    blockers: list[Blocker] = Field(
        description="What holds it, each with a sentence; none for a running or finished job."
    )


def _kind_fields(blocker: pb.Blocker) -> dict[str, Any]:
    """The fields that the blocker's kind carries, as `Blocker` documents them."""
    kind = blocker.kind
    if kind in ("global_limit", "key_limit"):
        slots = {"limit": blocker.limit, "running": blocker.running}
        keyed = {"key": blocker.key} if kind == "key_limit" else {}
        return keyed | slots | {"holders": list(blocker.holders)}
    if kind == "key_paused":
        return {"key": blocker.key}
    if kind == "not_before":
        return {"run_at": time_of(blocker, "run_at")}
    if kind == "dependencies":
        return {"waiting_on": list(blocker.waiting_on)}
    if kind == "behind":
        return {"position": blocker.position}
    return {}


def blocker_json(blocker: pb.Blocker) -> dict[str, Any]:
    return {"kind": blocker.kind, "message": blocker.message, **_kind_fields(blocker)}


def explanation_json(explanation: pb.JobExplanation) -> dict[str, Any]:
    """The answer in the shape of `Explanation`, ready for `json_bytes`."""
    return {
        "job_id": explanation.job_id,
        "status": STATUS_FROM_PB.get(explanation.status, "queued"),
        "runnable": explanation.runnable,
        "position": explanation.position if explanation.HasField("position") else None,
        "message": explanation.message,
        "blockers": [blocker_json(b) for b in explanation.blockers],
    }


class SeriesPoint(BaseModel):
    at: datetime | None = Field(description="The start of the minute.")
    running: int = Field(description="Jobs running at once, at most, during the minute.")
    limit: int = Field(description="The global limit.")
    key_running: int = Field(description="The same for the jobs of `key`; 0 without one.")
    key_limit: int | None = Field(description="The key's limit; null when it has none.")
    completed: int = Field(description="Jobs finished in the minute, by status.")
    failed: int
    cancelled: int
    wait_p50_seconds: float = Field(
        description="Creation to start, of the jobs that started in the minute."
    )
    wait_p95_seconds: float


class Series(BaseModel):
    points: list[SeriesPoint] = Field(description="One a minute, oldest first.")


def series_point_json(point: pb.SeriesPoint) -> dict[str, Any]:
    return {
        "at": time_of(point, "at"),
        "running": point.running,
        "limit": point.limit,
        "key_running": point.key_running,
        "key_limit": point.key_limit or None,
        "completed": point.completed,
        "failed": point.failed,
        "cancelled": point.cancelled,
        "wait_p50_seconds": point.wait_p50_seconds,
        "wait_p95_seconds": point.wait_p95_seconds,
    }


def series_json(series: pb.Series) -> dict[str, Any]:
    """The series in the shape of `Series`, ready for `json_bytes`."""
    return {"points": [series_point_json(p) for p in series.points]}
