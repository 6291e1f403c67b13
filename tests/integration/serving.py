"""A servicer served in-process over real gRPC on loopback, for the integration tests."""

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import grpc
import pytest


@contextlib.asynccontextmanager
async def served(
    add: Callable[[grpc.aio.Server], None], interceptors: Sequence[grpc.aio.ServerInterceptor] = ()
) -> AsyncIterator[grpc.aio.Channel]:
    """A channel to a server on a free loopback port, with what `add` put on it."""
    server = grpc.aio.server(interceptors=interceptors)
    add(server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield channel
    finally:
        await server.stop(None)


async def refused(call: Awaitable[Any]) -> tuple[grpc.StatusCode, str]:
    """The status code and details of a call that must fail."""
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await call
    return error.value.code(), error.value.details() or ""
