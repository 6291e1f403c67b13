"""The gateway app against a fake scheduler, for unit tests of its REST routes."""

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any, TypeVar

import grpc
import httpx
from google.protobuf.message import Message
from jobsched_gateway.app import create_app
from jobsched_gateway.scheduler import scheduler_client
from jobsched_gateway.settings import Settings

Reply = Message | grpc.StatusCode
Request = TypeVar("Request", bound=Message)


@dataclass
class FakeScheduler:
    """Answers each method with its reply (a status code is raised as that error) and
    keeps what it was sent, with the method's name."""

    replies: dict[str, Reply]
    sent: list[tuple[str, Message]] = field(default_factory=list)

    async def call(self, method: str, request: Message) -> Any:
        return self._answer(method, request)

    async def call_schedules(self, method: str, request: Message) -> Any:
        return self._answer(method, request)

    async def call_limits(self, method: str, request: Message) -> Any:
        return self._answer(method, request)

    def _answer(self, method: str, request: Message) -> Any:
        self.sent.append((method, request))
        reply = self.replies[method]
        if isinstance(reply, grpc.StatusCode):
            empty = grpc.aio.Metadata()
            raise grpc.aio.AioRpcError(reply, empty, empty, details=f"said {reply.name}")
        return reply


def only_sent(fake: FakeScheduler, kind: type[Request]) -> Request:
    """The one request the fake was sent, checked to be a `kind`."""
    ((_, request),) = fake.sent
    assert isinstance(request, kind), request
    return request


def exchange(
    fake: FakeScheduler, method: str, path: str, body: Any = None
) -> tuple[int, Any, bytes]:
    """One request to an app without a token: its status, JSON body (None when there is
    none) and raw body."""
    app = create_app(Settings(API_TOKEN="", WEB_DIR="/nonexistent"))

    async def fake_client() -> FakeScheduler:
        return fake

    app.dependency_overrides[scheduler_client] = fake_client

    async def run() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
            # json.dumps writes NaN, as a client's JSON may.
            content = None if body is None else json.dumps(body)
            headers = {"content-type": "application/json"}
            return await client.request(method, path, content=content, headers=headers)

    reply = asyncio.run(run())
    return reply.status_code, reply.json() if reply.content else None, reply.content
