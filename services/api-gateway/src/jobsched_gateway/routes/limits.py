"""`/api/limits`: per-key concurrency limits and pauses, nested inside the global limit."""

from typing import Annotated

from fastapi import APIRouter, Path, Response
from jobsched.v1 import jobs_pb2 as pb

from ..limit_schemas import KeyLimit, KeyLimitBody, KeyLimits, key_limit_json
from ..scheduler import Scheduler
from ..schemas import JsonBody, Text

# A key may hold "/", which reaches the routes decoded (a client sends %2F).
Key = Annotated[Text, Path(description="The concurrency key, URL-encoded.")]

router = APIRouter()


@router.get("/api/limits", response_model=KeyLimits)
async def list_limits(scheduler: Scheduler) -> JsonBody:
    """Every key that has a limit or has jobs queued or running, by key."""
    reply = await scheduler.call_limits("ListLimits", pb.ListLimitsRequest())
    return JsonBody({"limits": [key_limit_json(limit) for limit in reply.limits]})


@router.get("/api/limits/{key:path}", response_model=KeyLimit)
async def get_limit(scheduler: Scheduler, key: Key) -> JsonBody:
    """404 when the key has no limit and no jobs queued or running."""
    limit = await scheduler.call_limits("GetLimit", pb.LimitRef(key=key))
    return JsonBody(key_limit_json(limit))


@router.put("/api/limits/{key:path}", response_model=KeyLimit)
async def put_limit(scheduler: Scheduler, key: Key, body: KeyLimitBody) -> JsonBody:
    """Sets the key's limit and pause, both as given; takes effect at once."""
    limit = await scheduler.call_limits("SetLimit", body.to_pb(key))
    return JsonBody(key_limit_json(limit))


@router.delete("/api/limits/{key:path}", status_code=204, response_class=Response)
async def delete_limit(scheduler: Scheduler, key: Key) -> Response:
    """Removes the key's limit (and pause): its jobs are bounded by the global limit
    only. 404 when it has none."""
    await scheduler.call_limits("DeleteLimit", pb.LimitRef(key=key))
    return Response(status_code=204)
