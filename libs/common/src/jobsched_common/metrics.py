"""Prometheus metrics: an HTTP endpoint for services that do not speak HTTP, and a
gRPC server interceptor that counts and times every call."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from prometheus_client import Counter, Histogram, start_http_server

log = logging.getLogger(__name__)

GRPC_HANDLED = Counter(
    "grpc_server_handled_total", "gRPC calls completed", ["grpc_method", "grpc_code"]
)
GRPC_SECONDS = Histogram(
    "grpc_server_handling_seconds",
    "Time to answer a unary gRPC call",
    ["grpc_method"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0),
)


def serve_metrics(bind: str) -> None:
    """Serves /metrics on host:port in a background thread; an empty bind serves none.
    A taken port is logged, not fatal: metrics must never stop the work."""
    if not bind:
        return
    host, port = bind.rsplit(":", 1)
    try:
        start_http_server(int(port), addr=host)
    except OSError as exc:
        log.warning("Cannot serve metrics on %s: %s", bind, exc)
        return
    log.info("Serving metrics on http://%s/metrics", bind)


class MetricsInterceptor(grpc.aio.ServerInterceptor):
    """Counts every call by method and status code, and times unary calls."""

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
        ],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(details)
        method = details.method
        if handler is None or handler.unary_unary is None:
            if handler is not None:
                GRPC_HANDLED.labels(method, "STARTED").inc()
            return handler
        inner: Any = handler.unary_unary  # the stubs know only the sync signature

        async def timed(request: Any, context: Any) -> Any:
            started = time.perf_counter()
            code = "OK"
            try:
                return await inner(request, context)
            except BaseException:
                code = _code(context)
                raise
            finally:
                GRPC_SECONDS.labels(method).observe(time.perf_counter() - started)
                GRPC_HANDLED.labels(method, code).inc()

        timed_handler: Any = timed
        return grpc.unary_unary_rpc_method_handler(
            timed_handler,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


def _code(context: Any) -> str:
    code = context.code()
    return code.name if isinstance(code, grpc.StatusCode) else "UNKNOWN"
