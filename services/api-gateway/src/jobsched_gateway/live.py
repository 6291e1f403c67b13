"""The scheduler's job events as server-sent events, for the dashboard (`GET /api/events`).

One `WatchEvents` stream per client. Each job event goes out as `event: job`; bursts
are coalesced into at most one `event: stats` (a fresh GetStats) per STATS_INTERVAL,
which a change of the configuration (limit, pause) also brings.
`event: ready` says the scheduler stream is open (the page reloads its data then);
`event: resync` (with fresh stats) says the scheduler may have missed events (its
database connection came back), so the page reloads its data too;
`event: error` says the scheduler is away, and the stream ends (the browser retries
after `retry:`). Comments keep idle connections open through proxies. Every stream
ends when the process's shutdown event is set, before the server waits for open
responses to finish."""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc
from fastapi import Request
from jobsched.v1 import jobs_pb2 as pb

from .scheduler import SchedulerClient, describe
from .schemas import STATUS_FROM_PB, json_bytes, stats_json, time_of

log = logging.getLogger("jobsched.gateway.live")

RETRY_MS = 1000  # how soon the browser reconnects after the stream ends
STATS_INTERVAL = 0.2  # at most one stats event per interval, only after events
KEEPALIVE_SECONDS = 15.0  # a comment after this long without anything sent
QUEUE_LIMIT = 10_000  # job events waiting for a slow client before it is cut off


def sse(event: str, data: Any) -> str:
    """One server-sent event; JSON has no raw newlines, so one `data:` line suffices."""
    return f"event: {event}\ndata: {json_bytes(data).decode()}\n\n"


def job_event(event: pb.JobEvent) -> dict[str, Any]:
    return {
        "job_id": event.job_id,
        "status": STATUS_FROM_PB.get(event.status, "queued"),
        "attempt": event.attempt,
        "at": time_of(event, "at"),
    }


class _End:
    """Queued when the scheduler's stream ends or the gateway stops."""

    def __init__(self, reason: str | None):
        self.reason = reason  # None: a clean stop, say nothing


Item = pb.JobEvent | _End


@dataclass
class LiveEvents:
    """One client's stream, which ends when `stopping` is set."""

    scheduler: SchedulerClient
    stopping: asyncio.Event

    async def stream(self, request: Request) -> AsyncIterator[str]:
        yield f"retry: {RETRY_MS}\n\n"
        if self.stopping.is_set():
            return
        queue: asyncio.Queue[Item] = asyncio.Queue()
        call = self.scheduler.jobs.WatchEvents(
            pb.WatchEventsRequest(), metadata=self.scheduler.metadata
        )
        tasks = [
            asyncio.create_task(self._pump(call, queue)),
            asyncio.create_task(self._stop_on_shutdown(queue)),
        ]
        try:
            # The scheduler answers no message before the first event, so a GetStats
            # (sent after WatchEvents, on the same channel) tells that it is there.
            try:
                stats = await self._stats()
            except grpc.aio.AioRpcError as exc:
                yield _error_event(exc)
                return
            if stats is None:
                return
            yield sse("ready", {}) + sse("stats", stats_json(stats))
            async for chunk in self._forward(request, queue):
                yield chunk
        finally:
            call.cancel()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _forward(self, request: Request, queue: asyncio.Queue[Item]) -> AsyncIterator[str]:
        loop = asyncio.get_running_loop()
        last_sent = last_stats = loop.time()
        dirty = False  # a job event went out since the last stats event
        while True:
            now = loop.time()
            wake = last_sent + KEEPALIVE_SECONDS
            if dirty:
                wake = min(wake, last_stats + STATS_INTERVAL)
            items: list[Item] = []
            try:
                async with asyncio.timeout(max(0.0, wake - now)):
                    items.append(await queue.get())
            except TimeoutError:
                pass
            while not queue.empty():
                items.append(queue.get_nowait())
            out: list[str] = []
            end: _End | None = None
            for item in items:
                if isinstance(item, _End):
                    end = item
                    break
                if item.resync:
                    out.append(sse("resync", {}))
                    last_stats = -math.inf  # the stats follow at once
                elif not item.config_changed:
                    out.append(sse("job", job_event(item)))
                dirty = True
            if out:
                yield "".join(out)
                last_sent = loop.time()
            if end is not None:
                if end.reason:
                    yield sse("error", {"message": end.reason})
                return
            now = loop.time()
            if dirty and now >= last_stats + STATS_INTERVAL:
                try:
                    stats = await self._stats()
                except grpc.aio.AioRpcError as exc:
                    yield _error_event(exc)
                    return
                if stats is None:
                    return
                yield sse("stats", stats_json(stats))
                last_stats = last_sent = loop.time()
                dirty = False
            elif not items and now >= last_sent + KEEPALIVE_SECONDS:
                if await request.is_disconnected():
                    return
                yield ": keepalive\n\n"
                last_sent = now

    async def _stats(self) -> pb.Stats | None:
        """GetStats, or None when the gateway begins to shut down meanwhile."""
        rpc: asyncio.Future[pb.Stats] = asyncio.ensure_future(
            self.scheduler.call("GetStats", pb.GetStatsRequest())
        )
        stop: asyncio.Future[Any] = asyncio.create_task(self.stopping.wait())
        try:
            await asyncio.wait([rpc, stop], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (rpc, stop):
                if not task.done():
                    task.cancel()
            await asyncio.gather(rpc, stop, return_exceptions=True)
        if rpc.cancelled():
            return None
        return rpc.result()

    @staticmethod
    async def _pump(call: Any, queue: asyncio.Queue[Item]) -> None:
        """The scheduler's events into the queue; its end or failure as an _End."""
        try:
            async for event in call:
                if queue.qsize() >= QUEUE_LIMIT:
                    queue.put_nowait(_End("the dashboard fell behind the event stream"))
                    return
                queue.put_nowait(event)
            queue.put_nowait(_End("the scheduler closed the event stream"))
        except grpc.aio.AioRpcError as exc:
            queue.put_nowait(_End(describe(exc)))

    async def _stop_on_shutdown(self, queue: asyncio.Queue[Item]) -> None:
        await self.stopping.wait()
        queue.put_nowait(_End(None))


def _error_event(exc: grpc.aio.AioRpcError) -> str:
    log.info("Event stream: %s", describe(exc))
    return sse("error", {"message": describe(exc)})
