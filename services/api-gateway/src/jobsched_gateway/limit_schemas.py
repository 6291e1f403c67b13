"""The REST shapes of per-key limits (`/api/limits`), to and from LimitService."""

from typing import Annotated, Any

from jobsched.v1 import jobs_pb2 as pb
from jobsched_common.limits import MAX_KEY_LIMIT, MIN_KEY_LIMIT
from pydantic import BaseModel, Field

from .schemas import Int32, schema_only

KeyConcurrencyLimit = Annotated[
    Int32,
    schema_only(minimum=MIN_KEY_LIMIT, maximum=MAX_KEY_LIMIT),
    Field(
        description="Jobs of the key running at once, at most, inside the global limit: "
        "a job starts only when both have room. Lowering it lets running jobs finish."
    ),
]
KeyPaused = Annotated[
    bool, Field(description="While true no job of the key starts; running ones go on.")
]


class KeyLimitBody(BaseModel):
    """A key's limit and pause, both replaced (what the body omits takes its default)."""

    max_concurrent_jobs: KeyConcurrencyLimit | None = Field(
        None, description="null: no limit of its own (the global limit only)."
    )
    paused: KeyPaused = False

    def to_pb(self, key: str) -> pb.SetLimitRequest:
        request = pb.SetLimitRequest(key=key, paused=self.paused)
        if self.max_concurrent_jobs is not None:
            request.max_concurrent_jobs = self.max_concurrent_jobs
        return request


class KeyLimit(BaseModel):
    key: str
    max_concurrent_jobs: int | None = Field(description="null: no limit of its own.")
    paused: bool
    running: int = Field(description="Jobs of the key running now.")
    queued: int = Field(description="Jobs of the key waiting to start.")


class KeyLimits(BaseModel):
    limits: list[KeyLimit] = Field(
        description="Every key with a limit or with jobs queued or running, by key."
    )


def key_limit_json(limit: pb.KeyLimit) -> dict[str, Any]:
    """A key's limit in the shape of `KeyLimit`, ready for `json_bytes`."""
    return {
        "key": limit.key,
        "max_concurrent_jobs": (
            limit.max_concurrent_jobs if limit.HasField("max_concurrent_jobs") else None
        ),
        "paused": limit.paused,
        "running": limit.running,
        "queued": limit.queued,
    }
