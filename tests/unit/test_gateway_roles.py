"""The gateway's role check, against a fake scheduler: on every route of the schema, a
token whose role is too low gets 403 before anything reaches the scheduler, one whose
role suffices gets through; and what the gateway tells the scheduler of its caller."""

import asyncio
from typing import Any

import grpc
import httpx
import pytest
from google.protobuf.message import Message
from jobsched_common.tokens import Role
from jobsched_gateway import session
from jobsched_gateway.app import create_app
from jobsched_gateway.auth import needed_role
from jobsched_gateway.scheduler import SchedulerClient, scheduler_client
from jobsched_gateway.settings import Settings
from starlette.requests import Request

from tests.unit.gateway_fakes import FakeScheduler, exchange

SECRETS = {Role.READ: "r" * 32, Role.OPERATE: "o" * 32, Role.ADMIN: "a" * 32}
API_TOKENS = ",".join(f"{role}-token:{role}:{secret}" for role, secret in SECRETS.items())


class Unavailable:
    """A scheduler that is away: a request that reaches it is answered 503."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    async def call(self, method: str, request: Message) -> Any:
        self.sent.append(method)
        empty = grpc.aio.Metadata()
        raise grpc.aio.AioRpcError(grpc.StatusCode.UNAVAILABLE, empty, empty, details="away")

    call_schedules = call_limits = call


def statuses(calls: list[tuple[str, str]], secret: str | None) -> tuple[list[int], list[str]]:
    app = create_app(Settings(API_TOKENS=API_TOKENS, WEB_DIR="/nonexistent"))
    fake = Unavailable()

    async def fake_client() -> Unavailable:
        return fake

    app.dependency_overrides[scheduler_client] = fake_client
    app.state.stopping.set()  # an event stream ends after its first line
    headers = {"content-type": "application/json"}
    if secret is not None:
        headers["authorization"] = f"Bearer {secret}"

    async def run() -> list[int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
            return [
                (await client.request(method, path, content="{}", headers=headers)).status_code
                for method, path in calls
            ]

    return asyncio.run(run()), fake.sent


def every_route() -> list[tuple[str, str, Role]]:
    app = create_app(Settings(WEB_DIR="/nonexistent"))
    routes = []
    for path, operations in app.openapi()["paths"].items():
        template = path.replace("{key}", "{key:path}").replace("{name}", "{name:path}")
        concrete = path.replace("{job_id}", "1").replace("{key}", "k").replace("{name}", "n")
        for method in operations:
            routes.append((method.upper(), concrete, needed_role(method.upper(), template)))
    return routes


ROUTES = every_route()


def test_the_routes_of_each_role() -> None:
    by_role = {role: {(m, p) for m, p, r in ROUTES if r == role} for role in Role}
    assert ("POST", "/api/jobs/create") in by_role[Role.OPERATE]
    assert ("POST", "/api/schedules/n/trigger") in by_role[Role.OPERATE]
    assert {("PUT", "/api/config"), ("GET", "/api/audit"), ("PUT", "/api/limits/k")} <= by_role[
        Role.ADMIN
    ]
    assert ("GET", "/api/events") in by_role[Role.READ]
    # Besides the GETs, `read` may get the session cookie that opens the stream.
    session = {("POST", "/api/login"), ("POST", "/api/logout")}
    assert all(method == "GET" for method, _ in by_role[Role.READ] - session)


@pytest.mark.parametrize("role", list(Role), ids=str)
def test_a_token_may_call_the_routes_of_its_role_and_below_only(role: Role) -> None:
    calls = [(method, path) for method, path, _ in ROUTES]
    got, sent = statuses(calls, SECRETS[role])
    for (method, path, needed), status in zip(ROUTES, got, strict=True):
        if needed > role:
            assert status == 403, (method, path, status)
        else:
            assert status not in (401, 403), (method, path, status)
    writes = {"CreateJob", "CreateJobs", "CancelJob", "RetryJob", "UpdateConfig", "SetLimit"}
    assert role > Role.READ or not writes & set(sent)


def test_without_a_valid_token_every_route_is_401() -> None:
    calls = [(method, path) for method, path, _ in ROUTES]
    for secret in (None, "x" * 32):
        got, sent = statuses(calls, secret)
        assert got == [401] * len(calls) and not sent


def test_the_scheduler_s_refusals_are_401_and_403() -> None:
    for code, status in (
        (grpc.StatusCode.UNAUTHENTICATED, 401),
        (grpc.StatusCode.PERMISSION_DENIED, 403),
    ):
        fake = FakeScheduler({"CreateJob": code})
        got, body, _ = exchange(fake, "POST", "/api/jobs/create", {"name": "a", "command": "b"})
        assert (got, body) == (status, {"detail": f"said {code.name}"})


def test_the_scheduler_hears_the_caller_s_token_and_address() -> None:
    base = SchedulerClient(jobs=None, schedules=None, limits=None, timeout=1.0)  # type: ignore[arg-type]
    app = create_app(Settings(API_TOKENS=API_TOKENS, WEB_DIR="/nonexistent"))
    app.state.scheduler = base

    def client_for(headers: list[tuple[bytes, bytes]], path: str = "/api/jobs") -> SchedulerClient:
        scope = {
            "type": "http",
            "app": app,
            "method": "GET",
            "path": path,
            "query_string": b"token=q",
            "headers": headers,
            "client": ("192.0.2.9", 5555),
        }
        return asyncio.run(scheduler_client(Request(scope)))

    bearer = [(b"authorization", b"Bearer abc")]
    assert client_for(bearer).metadata == (
        ("authorization", "Bearer abc"),
        ("x-jobsched-remote", "192.0.2.9"),
    )
    assert client_for([]).metadata == (("x-jobsched-remote", "192.0.2.9"),)
    # EventSource sends no headers: the stream's token is the one its session cookie
    # names (never one in the URL).
    assert client_for([], "/api/events").metadata == (("x-jobsched-remote", "192.0.2.9"),)
    (read,) = (t for t in app.state.api_tokens if t.role == Role.READ)
    cookie = [(b"cookie", f"{session.COOKIE}={session.issue(read)}".encode())]
    assert client_for(cookie, "/api/events").metadata[0] == (
        "authorization",
        f"Bearer {read.secret}",
    )
    assert client_for(cookie, "/api/jobs").metadata == (("x-jobsched-remote", "192.0.2.9"),)
    # A secret gRPC metadata cannot carry is no token's, and is not passed on.
    assert client_for([(b"authorization", "Bearer é".encode("latin-1"))]).metadata == (
        ("x-jobsched-remote", "192.0.2.9"),
    )
