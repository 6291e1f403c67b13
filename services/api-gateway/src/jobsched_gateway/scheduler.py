"""The scheduler's JobService, ScheduleService and LimitService as the routes call
them, and how their errors reach a REST client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Annotated, Any

import grpc
from fastapi import Depends, Request
from fastapi.responses import JSONResponse
from google.protobuf.message import Message
from jobsched.v1 import jobs_pb2_grpc
from jobsched_common.limits import MAX_MESSAGE_BYTES
from jobsched_common.tls import TlsFiles, aio_channel

from .auth import forwarded_metadata

if TYPE_CHECKING:
    from jobsched.v1.jobs_pb2_grpc import (
        JobServiceAsyncStub,
        LimitServiceAsyncStub,
        ScheduleServiceAsyncStub,
    )

# How gRPC failures reach a REST client: a clear 4xx for bad input, 503 when the
# scheduler or its database is away, never a bare 500.
HTTP_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 422,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.FAILED_PRECONDITION: 409,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 503,
}


STATUS_CODES = {code.value[0]: code for code in grpc.StatusCode}


def status_code(number: int) -> grpc.StatusCode:
    """A gRPC status code from its number, as a Refusal carries it."""
    return STATUS_CODES.get(number, grpc.StatusCode.UNKNOWN)


def http_status(code: grpc.StatusCode) -> int:
    return HTTP_STATUS.get(code, 502)


@dataclass(frozen=True)
class SchedulerClient:
    """The scheduler's stubs, the deadline the gateway gives each unary call, and the
    metadata that says whose request it is (see `auth.forwarded_metadata`)."""

    jobs: JobServiceAsyncStub
    schedules: ScheduleServiceAsyncStub
    limits: LimitServiceAsyncStub
    timeout: float
    metadata: tuple[tuple[str, str], ...] = ()

    async def call(self, method: str, request: Message) -> Any:
        """A unary call of JobService."""
        return await self._unary(self.jobs, method, request)

    async def call_schedules(self, method: str, request: Message) -> Any:
        """A unary call of ScheduleService."""
        return await self._unary(self.schedules, method, request)

    async def call_limits(self, method: str, request: Message) -> Any:
        """A unary call of LimitService."""
        return await self._unary(self.limits, method, request)

    async def _unary(self, stub: object, method: str, request: Message) -> Any:
        rpc: Callable[..., Awaitable[Any]] = getattr(stub, method)
        return await rpc(request, timeout=self.timeout, metadata=self.metadata)


@asynccontextmanager
async def connect(
    address: str, timeout: float, tls: TlsFiles | None = None
) -> AsyncIterator[SchedulerClient]:
    """Over TLS when `tls` names a CA (with the gateway's certificate, for mTLS)."""
    # gRPC's default of 4 MiB would refuse a large output, as RESOURCE_EXHAUSTED.
    options = [("grpc.max_receive_message_length", MAX_MESSAGE_BYTES)]
    async with aio_channel(address, tls or TlsFiles(), options) as channel:
        yield SchedulerClient(
            jobs_pb2_grpc.JobServiceStub(channel),
            jobs_pb2_grpc.ScheduleServiceStub(channel),
            jobs_pb2_grpc.LimitServiceStub(channel),
            timeout,
        )


async def scheduler_client(request: Request) -> SchedulerClient:
    """The client for this request's caller. Async, so that FastAPI runs it on the
    loop, not in a worker thread."""
    client: SchedulerClient = request.app.state.scheduler
    return replace(client, metadata=forwarded_metadata(request))


Scheduler = Annotated[SchedulerClient, Depends(scheduler_client)]


def describe(exc: grpc.aio.AioRpcError) -> str:
    return f"scheduler unavailable: {exc.details() or exc.code().name}"


async def grpc_error(request: Request, exc: grpc.aio.AioRpcError) -> JSONResponse:
    """The exception handler for a failed call: its status and the scheduler's message."""
    status = http_status(exc.code())
    detail = describe(exc) if status == 503 else exc.details() or exc.code().name
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse({"detail": detail}, status, headers=headers)
