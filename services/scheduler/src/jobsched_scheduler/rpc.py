"""How the gRPC services answer a domain error: one status code for each, so that no
call fails as UNKNOWN and no handler calls `context.abort` itself."""

import contextlib
import functools
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any, TypeVar

import grpc
from jobsched.v1 import jobs_pb2 as pb

from .errors import (
    Conflict,
    DomainError,
    FellBehind,
    InvalidValue,
    NotFound,
    Unavailable,
    WrongState,
)
from .runner_auth import NotThisRunner, Unauthenticated

log = logging.getLogger(__name__)

STATUS_CODES: dict[type[DomainError], grpc.StatusCode] = {
    InvalidValue: grpc.StatusCode.INVALID_ARGUMENT,
    NotFound: grpc.StatusCode.NOT_FOUND,
    Conflict: grpc.StatusCode.ALREADY_EXISTS,
    WrongState: grpc.StatusCode.FAILED_PRECONDITION,
    Unavailable: grpc.StatusCode.UNAVAILABLE,
    FellBehind: grpc.StatusCode.RESOURCE_EXHAUSTED,
    Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    NotThisRunner: grpc.StatusCode.PERMISSION_DENIED,
}

Req = TypeVar("Req")
Resp = TypeVar("Resp")
Ctx = grpc.aio.ServicerContext[Any, Any]
Handler = Callable[[Any, Req, Ctx], Awaitable[Resp]]
StreamHandler = Callable[[Any, Req, Ctx], AsyncGenerator[Resp, None]]


async def _abort(context: Ctx, exc: DomainError) -> None:
    """Ends the call with the status code of a domain error and its message."""
    _log_unavailable(exc)
    await context.abort(STATUS_CODES[type(exc)], str(exc))


def refusal(exc: DomainError) -> pb.Refusal:
    """A domain error as the answer to one item of a call that answers each alone."""
    _log_unavailable(exc)
    return pb.Refusal(code=STATUS_CODES[type(exc)].value[0], message=str(exc))


def _log_unavailable(exc: DomainError) -> None:
    if isinstance(exc, Unavailable):
        log.warning("%s: %s", exc, exc.__cause__)


def rpc(handler: Handler[Req, Resp]) -> Handler[Req, Resp]:
    """Answers a domain error with its status code, so that no RPC fails as UNKNOWN."""

    @functools.wraps(handler)
    async def wrapper(self: Any, request: Req, context: Ctx) -> Resp:
        try:
            return await handler(self, request, context)
        except DomainError as exc:
            await _abort(context, exc)
            raise AssertionError("unreachable: abort raises") from exc

    return wrapper


def rpc_stream(handler: StreamHandler[Req, Resp]) -> StreamHandler[Req, Resp]:
    """`rpc` for a handler that streams its replies."""

    @functools.wraps(handler)
    async def wrapper(self: Any, request: Req, context: Ctx) -> AsyncGenerator[Resp, None]:
        try:
            async with contextlib.aclosing(handler(self, request, context)) as replies:
                async for reply in replies:
                    yield reply
        except DomainError as exc:
            await _abort(context, exc)

    return wrapper
