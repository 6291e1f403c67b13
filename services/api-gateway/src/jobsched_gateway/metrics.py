"""The gateway's Prometheus metrics: every HTTP request by route and status."""

import asyncio
import functools
import time
from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUESTS = Counter("http_requests_total", "HTTP requests answered", ["method", "route", "status"])
SECONDS = Histogram(
    "http_request_duration_seconds",
    "Time to answer an HTTP request (to the start of the body for streams)",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
# Any other method is counted as `other`: a label per made-up method would let a
# client grow the metrics without bound.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def method_label(method: str) -> str:
    return method if method in METHODS else "other"


@functools.cache
def _series(
    method: str, route: str, status: str
) -> tuple[Callable[[float], None], Callable[[], None]]:
    """The histogram's and the counter's series of one label set: looking a series up
    by its labels costs more than the request's own count and time."""
    return SECONDS.labels(method, route).observe, REQUESTS.labels(method, route, status).inc


class RequestMetrics:
    """Counts and times requests, labelled by route template (not the raw path, which
    would make a label per job id)."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                route = getattr(scope.get("route"), "path", "static")
                observe, count = _series(method_label(scope["method"]), route, str(status))
                observe(time.perf_counter() - started)
                count()
            await send(message)

        await self.app(scope, receive, record)


async def metrics_endpoint(request: Request) -> Response:
    """Rendered in a worker thread: the text grows with the label sets, and the event
    loop serves every other request meanwhile."""
    text = await asyncio.to_thread(generate_latest)
    return Response(text, media_type=CONTENT_TYPE_LATEST)
