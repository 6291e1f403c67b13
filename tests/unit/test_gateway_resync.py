"""The dashboard's event stream passes the scheduler's `resync` on as `event: resync`,
followed at once by fresh stats, so that the page re-reads what it may have missed."""

import asyncio
from collections.abc import AsyncIterator
from typing import Any, cast

from jobsched.v1 import jobs_pb2 as pb
from jobsched_gateway.live import LiveEvents


class Stream:
    """A WatchEvents call that yields what the test puts in, until None."""

    def __init__(self) -> None:
        self.events: asyncio.Queue[pb.JobEvent | None] = asyncio.Queue()

    def __aiter__(self) -> AsyncIterator[pb.JobEvent]:
        return self._events()

    async def _events(self) -> AsyncIterator[pb.JobEvent]:
        while (event := await self.events.get()) is not None:
            yield event

    def cancel(self) -> None:
        self.events.put_nowait(None)


class Scheduler:
    metadata: tuple[tuple[str, str], ...] = ()

    def __init__(self) -> None:
        self.stream = Stream()
        self.stats_asked = 0
        self.jobs = self

    def WatchEvents(self, request: pb.WatchEventsRequest, metadata: Any = ()) -> Stream:
        return self.stream

    async def call(self, method: str, request: Any) -> pb.Stats:
        assert method == "GetStats"
        self.stats_asked += 1
        return pb.Stats(total=self.stats_asked)


class Request:
    async def is_disconnected(self) -> bool:
        return False


def test_a_resync_goes_out_as_its_own_event_with_fresh_stats() -> None:
    async def scenario() -> list[str]:
        scheduler = Scheduler()
        stopping = asyncio.Event()
        live = LiveEvents(cast(Any, scheduler), stopping)
        chunks = live.stream(cast(Any, Request()))
        out: list[str] = []
        async for chunk in chunks:
            out.append(chunk)
            if "event: ready" in chunk:
                scheduler.stream.events.put_nowait(pb.JobEvent(resync=True))
            if chunk.startswith("event: stats") and scheduler.stats_asked == 2:
                stopping.set()
        return out

    chunks = asyncio.run(asyncio.wait_for(scenario(), 5))
    text = "".join(chunks)
    assert "event: job" not in text
    after_ready = text.split("event: ready", 1)[1]
    resync = after_ready.index("event: resync\ndata: {}\n\n")
    assert after_ready.index('"total":2', resync) > resync
