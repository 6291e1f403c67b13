"""The cap on open event streams (MAX_EVENT_STREAMS): each holds a scheduler stream and
a task, so that a flood of them would starve every other client."""

from dataclasses import dataclass

from fastapi import HTTPException
from fastapi.responses import StreamingResponse
from prometheus_client import Gauge
from starlette.types import Receive, Scope, Send

OPEN_STREAMS = Gauge("gateway_event_streams_open", "Event streams open")
RETRY_AFTER_SECONDS = 5


@dataclass
class StreamSlots:
    limit: int
    taken: int = 0

    def take(self) -> None:
        """Takes a slot, or refuses the stream with a 503."""
        if self.taken >= self.limit:
            raise HTTPException(
                503,
                f"{self.limit} event streams are open, the most this gateway serves "
                "(MAX_EVENT_STREAMS); try again later",
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
        self.taken += 1
        OPEN_STREAMS.inc()

    def give_back(self) -> None:
        self.taken -= 1
        OPEN_STREAMS.dec()


class SlotStream(StreamingResponse):
    """A streaming response that gives its slot back when it ends, however it ends."""

    def __init__(self, slots: StreamSlots, *args: object, **kwargs: object):
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.slots = slots

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.slots.give_back()
