"""`GET /api/events`: job events as server-sent events (the stream is in `live.py`)."""

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from ..live import LiveEvents
from ..scheduler import Scheduler
from ..stream_slots import SlotStream, StreamSlots

router = APIRouter()


@router.get(
    "/api/events",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/event-stream": {}}},
        503: {"description": "MAX_EVENT_STREAMS streams are open already"},
    },
)
async def events(request: Request, scheduler: Scheduler) -> StreamingResponse:
    """Job events as server-sent events: `job`, coalesced `stats`, `ready`, `error`.

    Takes the bearer token in the `Authorization` header or, since EventSource
    cannot send headers, the session cookie that `POST /api/login` sets. A token in
    the URL is not taken: URLs end up in logs and histories."""
    stopping: asyncio.Event = request.app.state.stopping
    slots: StreamSlots = request.app.state.stream_slots
    slots.take()
    return SlotStream(
        slots,
        LiveEvents(scheduler, stopping).stream(request),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
