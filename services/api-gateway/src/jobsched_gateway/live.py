"""`GET /api/events`: the scheduler's job events as server-sent events, for the dashboard.

One `WatchEvents` stream per client. Each job event goes out as `event: job`; bursts
are coalesced into at most one `event: stats` (a fresh GetStats) per STATS_INTERVAL.
`event: ready` says the scheduler stream is open (the page reloads its data then);
`event: error` says the scheduler is away, and the stream ends (the browser retries
after `retry:`). Comments keep idle connections open through proxies.

Uvicorn waits for open responses before it shuts down and only tells the app (lifespan
shutdown) afterwards, so a stream would hold a SIGTERM for `timeout_graceful_shutdown`.
The router's lifespan therefore chains the server's SIGTERM/SIGINT handlers to end
every stream at once."""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import signal
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

import grpc
from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.responses import StreamingResponse
from jobsched.v1 import jobs_pb2 as pb

from .schemas import STATUS_FROM_PB, rest_time
from .settings import Settings

log = logging.getLogger("jobsched.gateway.live")

RETRY_MS = 1000  # how soon the browser reconnects after the stream ends
STATS_INTERVAL = 0.2  # at most one stats event per interval, only after job events
KEEPALIVE_SECONDS = 15.0  # a comment after this long without anything sent
QUEUE_LIMIT = 10_000  # job events waiting for a slow client before it is cut off
SHUTDOWN_SIGNALS = (signal.SIGTERM, signal.SIGINT)

Handler = Callable[[int, FrameType | None], Any]


def sse(event: str, data: Any) -> str:
    """One server-sent event; JSON has no raw newlines, so one `data:` line suffices."""
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def job_event(event: pb.JobEvent) -> dict[str, Any]:
    return {
        "job_id": event.job_id,
        "status": STATUS_FROM_PB.get(event.status, "queued"),
        "attempt": event.attempt,
        "at": rest_time(event, "at"),
    }


def stats_dict(s: pb.Stats) -> dict[str, int]:
    return {
        "queued": s.queued,
        "running": s.running,
        "completed": s.completed,
        "failed": s.failed,
        "cancelled": s.cancelled,
        "total": s.total,
        "max_concurrent_jobs": s.max_concurrent_jobs,
        "runners_connected": s.runners_connected,
    }


class _End:
    """Queued when the scheduler's stream ends or the gateway stops."""

    def __init__(self, reason: str | None):
        self.reason = reason  # None: a clean stop, say nothing


Item = pb.JobEvent | _End


@dataclass
class LiveEvents:
    settings: Settings
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    _chained: dict[int, Handler] = field(default_factory=dict)

    # ---------- shutdown ----------

    @asynccontextmanager
    async def lifespan(self, app: FastAPI) -> AsyncIterator[None]:
        self.stopping = asyncio.Event()
        self._chain_signals(asyncio.get_running_loop())
        try:
            yield
        finally:
            self.stopping.set()
            self._unchain_signals()

    def _chain_signals(self, loop: asyncio.AbstractEventLoop) -> None:
        """Ends the streams on SIGTERM/SIGINT, then lets the server's handler run."""
        if threading.current_thread() is not threading.main_thread():
            return  # e.g. a test client: no signals here, the lifespan exit suffices
        for sig in SHUTDOWN_SIGNALS:
            previous = signal.getsignal(sig)
            if not callable(previous):
                continue  # not a server that handles it: leave the default alone

            def handler(signum: int, frame: FrameType | None, previous: Handler = previous) -> None:
                loop.call_soon_threadsafe(self.stopping.set)
                previous(signum, frame)

            signal.signal(sig, handler)
            self._chained[sig] = previous

    def _unchain_signals(self) -> None:
        for sig, previous in self._chained.items():
            with suppress(ValueError):
                signal.signal(sig, previous)
        self._chained.clear()

    # ---------- auth ----------

    def authorize(self, request: Request) -> None:
        """The bearer token, or `?token=` (EventSource cannot send headers)."""
        token = self.settings.API_TOKEN
        if not token:
            return
        header = request.headers.get("authorization", "")
        given = header.removeprefix("Bearer ") if header.startswith("Bearer ") else ""
        if not given:
            given = request.query_params.get("token", "")
        if not hmac.compare_digest(given.encode(), token.encode()):
            raise HTTPException(
                401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"}
            )

    # ---------- the stream ----------

    async def stream(self, request: Request) -> AsyncIterator[str]:
        stub: Any = request.app.state.jobs  # an aio JobServiceStub (typed as sync)
        yield f"retry: {RETRY_MS}\n\n"
        if self.stopping.is_set():
            return
        queue: asyncio.Queue[Item] = asyncio.Queue()
        call = stub.WatchEvents(pb.WatchEventsRequest())
        tasks = [
            asyncio.create_task(self._pump(call, queue)),
            asyncio.create_task(self._stop_on_shutdown(queue)),
        ]
        try:
            # The scheduler answers no message before the first event, so a GetStats
            # (sent after WatchEvents, on the same channel) tells that it is there.
            try:
                stats = await self._stats(stub)
            except grpc.aio.AioRpcError as exc:
                yield _error_event(exc)
                return
            if stats is None:
                return
            yield sse("ready", {}) + sse("stats", stats_dict(stats))
            async for chunk in self._forward(request, stub, queue):
                yield chunk
        finally:
            call.cancel()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _forward(
        self, request: Request, stub: Any, queue: asyncio.Queue[Item]
    ) -> AsyncIterator[str]:
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
                    stats = await self._stats(stub)
                except grpc.aio.AioRpcError as exc:
                    yield _error_event(exc)
                    return
                if stats is None:
                    return
                yield sse("stats", stats_dict(stats))
                last_stats = last_sent = loop.time()
                dirty = False
            elif not items and now >= last_sent + KEEPALIVE_SECONDS:
                if await request.is_disconnected():
                    return
                yield ": keepalive\n\n"
                last_sent = now

    async def _stats(self, stub: Any) -> pb.Stats | None:
        """GetStats, or None when the gateway begins to shut down meanwhile."""
        timeout = self.settings.REQUEST_TIMEOUT_SECONDS
        rpc: asyncio.Future[pb.Stats] = asyncio.ensure_future(
            stub.GetStats(pb.GetStatsRequest(), timeout=timeout)
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
            queue.put_nowait(_End(_describe(exc)))

    async def _stop_on_shutdown(self, queue: asyncio.Queue[Item]) -> None:
        await self.stopping.wait()
        queue.put_nowait(_End(None))


def _describe(exc: grpc.aio.AioRpcError) -> str:
    return f"scheduler unavailable: {exc.details() or exc.code().name}"


def _error_event(exc: grpc.aio.AioRpcError) -> str:
    log.info("Event stream: %s", _describe(exc))
    return sse("error", {"message": _describe(exc)})


def router(settings: Settings) -> APIRouter:
    """`GET /api/events`, with a lifespan that ends its streams on shutdown."""
    live = LiveEvents(settings)
    api = APIRouter(lifespan=live.lifespan)

    @api.get(
        "/api/events",
        response_class=StreamingResponse,
        responses={200: {"content": {"text/event-stream": {}}}},
    )
    async def events(request: Request) -> StreamingResponse:
        """Job events as server-sent events: `job`, coalesced `stats`, `ready`, `error`.

        Takes the bearer token in the `Authorization` header or, since EventSource
        cannot send headers, as `?token=`."""
        live.authorize(request)
        return StreamingResponse(
            live.stream(request),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    return api
