"""Who may call which method of the public services (JobService, ScheduleService,
LimitService): the API token of the call's `authorization: Bearer` metadata, its role
checked against the role each method needs, in one table. The handler finds its caller
with `current_caller()`. Health, reflection and the runners' service pass untouched."""

from __future__ import annotations

import contextvars
import ipaddress
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import unquote

import grpc
from jobsched_common.tokens import ApiToken, Role, bearer_secret, find_token

from .audit import LOCAL, Caller

JOBS = "/jobsched.v1.JobService/"
SCHEDULES = "/jobsched.v1.ScheduleService/"
LIMITS = "/jobsched.v1.LimitService/"
PUBLIC_SERVICES = (JOBS, SCHEDULES, LIMITS)

# The role each method of the public services needs; one that is not named (a method
# added to the protocol later) needs admin, so that it is never open by mistake.
METHOD_ROLES: dict[str, Role] = {
    **{
        JOBS + name: Role.READ
        for name in (
            "GetJob",
            "ListJobs",
            "GetJobOutput",
            "ListAttempts",
            "GetConfig",
            "GetStats",
            "WatchEvents",
            "ExplainJob",
            "GetSeries",
        )
    },
    **{
        JOBS + name: Role.OPERATE
        for name in ("CreateJob", "CreateJobs", "CancelJob", "RetryJob", "CancelJobs", "RetryJobs")
    },
    **{JOBS + name: Role.ADMIN for name in ("UpdateConfig", "DeleteJob", "ListAudit")},
    SCHEDULES + "ListSchedules": Role.READ,
    SCHEDULES + "GetSchedule": Role.READ,
    SCHEDULES + "TriggerSchedule": Role.OPERATE,
    **{
        SCHEDULES + name: Role.ADMIN
        for name in (
            "CreateSchedule",
            "UpdateSchedule",
            "DeleteSchedule",
            "PauseSchedule",
            "ResumeSchedule",
        )
    },
    LIMITS + "ListLimits": Role.READ,
    LIMITS + "GetLimit": Role.READ,
    LIMITS + "SetLimit": Role.ADMIN,
    LIMITS + "DeleteLimit": Role.ADMIN,
}
# The caller's address as the gateway saw it; a direct client's is its peer address.
REMOTE_METADATA = "x-jobsched-remote"

_caller: contextvars.ContextVar[Caller] = contextvars.ContextVar("caller", default=LOCAL)


def current_caller() -> Caller:
    """The caller of the public method being served (LOCAL outside of one)."""
    return _caller.get()


def needed_role(method: str) -> Role:
    return METHOD_ROLES.get(method, Role.ADMIN)


class Refused(Exception):
    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code = code


def peer_host(peer: str) -> str:
    """The address of a gRPC peer (`ipv4:127.0.0.1:5000`, `ipv6:%5B::1%5D:5000`,
    `unix:/path`) without its port."""
    scheme, _, rest = unquote(peer).partition(":")
    if scheme in ("ipv4", "ipv6"):
        return rest.rsplit(":", 1)[0].strip("[]")
    return rest or peer


def is_loopback(peer: str) -> bool:
    if peer.startswith("unix"):
        return True
    try:
        return ipaddress.ip_address(peer_host(peer)).is_loopback
    except ValueError:
        return False


def identify(
    tokens: tuple[ApiToken, ...], method: str, metadata: dict[str, str], peer: str
) -> Caller:
    """The caller of `method`, or Refused: UNAUTHENTICATED without a valid token (with
    tokens configured) or, without tokens, from beyond loopback; PERMISSION_DENIED for
    a role below the method's."""
    remote = metadata.get(REMOTE_METADATA) or peer_host(peer)
    if not tokens:
        if not is_loopback(peer):
            raise Refused(
                grpc.StatusCode.UNAUTHENTICATED,
                "this scheduler has no API tokens: it serves the API on loopback only",
            )
        return Caller(LOCAL.actor, remote)
    token = find_token(tokens, bearer_secret(metadata.get("authorization", "")))
    if token is None:
        raise Refused(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong bearer token")
    needed = needed_role(method)
    if not token.may(needed):
        raise Refused(
            grpc.StatusCode.PERMISSION_DENIED,
            f"token {token.name!r} is {token.role}: this needs {needed}",
        )
    return Caller(token.name, remote)


class AccessInterceptor(grpc.aio.ServerInterceptor):
    """Checks the caller of every call of the public services before its handler runs,
    and makes it the handler's `current_caller()`."""

    def __init__(self, tokens: tuple[ApiToken, ...]):
        self.tokens = tokens
        # Each method's handler, wrapped once: the check reads each call's own metadata.
        self._checked: dict[str, tuple[Any, grpc.RpcMethodHandler[Any, Any]]] = {}

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
        ],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(details)
        method = details.method
        if handler is None or not method.startswith(PUBLIC_SERVICES):
            return handler
        cached = self._checked.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        if handler.unary_unary is not None:
            checked = self._unary(method, handler)
        elif handler.unary_stream is not None:
            checked = self._stream(method, handler)
        else:
            return handler  # the public services have no other kind of method
        self._checked[method] = (handler, checked)
        return checked

    async def _caller(self, method: str, context: Any) -> Caller:
        """The caller, or the call ended with the status that refuses it."""
        metadata = {key: value for key, value in context.invocation_metadata() or ()}
        try:
            return identify(self.tokens, method, metadata, context.peer())
        except Refused as refused:
            await context.abort(refused.code, str(refused))
            raise AssertionError("unreachable: abort raises") from refused

    def _unary(self, method: str, handler: Any) -> grpc.RpcMethodHandler[Any, Any]:
        inner = handler.unary_unary

        async def checked(request: Any, context: Any) -> Any:
            token = _caller.set(await self._caller(method, context))
            try:
                return await inner(request, context)
            finally:
                _caller.reset(token)

        wrapped: Any = checked
        return grpc.unary_unary_rpc_method_handler(
            wrapped,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

    def _stream(self, method: str, handler: Any) -> grpc.RpcMethodHandler[Any, Any]:
        inner = handler.unary_stream

        async def checked(request: Any, context: Any) -> AsyncIterator[Any]:
            # Set, not reset: a generator's context may change between its steps.
            _caller.set(await self._caller(method, context))
            async for reply in inner(request, context):
                yield reply

        wrapped: Any = checked
        return grpc.unary_stream_rpc_method_handler(
            wrapped,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
