"""`GET /api/events`: job events as server-sent events (the stream is in `live.py`)."""

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from ..live import LiveEvents
from ..scheduler import Scheduler

router = APIRouter()


@router.get(
    "/api/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def events(request: Request, scheduler: Scheduler) -> StreamingResponse:
    """Job events as server-sent events: `job`, coalesced `stats`, `ready`, `error`.

    Takes the bearer token in the `Authorization` header or, since EventSource
    cannot send headers, as `?token=`."""
    stopping: asyncio.Event = request.app.state.stopping
    return StreamingResponse(
        LiveEvents(scheduler, stopping).stream(request),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
