"""The gateway's own logic, against a fake scheduler: one token check guards every /api
route and the event stream alike, and a value reaches the scheduler only when it fits
its protobuf field and the client gave it."""

import asyncio
import json
from typing import Any

import httpx
import pytest
from google.protobuf.message import Message
from jobsched.v1 import jobs_pb2 as pb
from jobsched_gateway.app import create_app
from jobsched_gateway.scheduler import scheduler_client
from jobsched_gateway.settings import Settings

TOKEN = "t" * 32
JSON = {"content-type": "application/json"}
REPLIES: dict[str, Message] = {
    "ListJobs": pb.ListJobsResponse(),
    "GetJob": pb.Job(id=1, name="a", command="true", status=pb.JOB_STATUS_QUEUED),
    "CreateJob": pb.Job(id=1, name="a", command="true", status=pb.JOB_STATUS_QUEUED),
    "GetConfig": pb.Config(max_concurrent_jobs=2),
    "GetStats": pb.Stats(max_concurrent_jobs=2),
}


class FakeScheduler:
    """Answers each call with a fixed reply and keeps what it was sent."""

    def __init__(self) -> None:
        self.sent: list[Message] = []

    async def call(self, method: str, request: Message) -> Any:
        self.sent.append(request)
        return REPLIES[method]


Call = tuple[str, str, dict[str, str]]  # method, path, headers


def requests(token: str, calls: list[Call], body: Any = None) -> tuple[list[int], FakeScheduler]:
    """The status of each (method, path, headers) against an app with `token` set."""
    app = create_app(Settings(API_TOKEN=token, WEB_DIR="/nonexistent"))
    fake = FakeScheduler()

    async def fake_client() -> FakeScheduler:
        return fake

    app.dependency_overrides[scheduler_client] = fake_client
    app.state.stopping.set()  # an event stream ends after its first line

    async def run() -> list[int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
            # json.dumps escapes a lone surrogate, as a client's JSON may.
            content = None if body is None else json.dumps(body)
            replies = [
                await client.request(method, path, content=content, headers={**JSON, **headers})
                for method, path, headers in calls
            ]
            return [reply.status_code for reply in replies]

    return asyncio.run(run()), fake


GUARDED = [("GET", "/api/jobs"), ("GET", "/api/stats"), ("GET", "/api/config")]
STREAM = ("GET", "/api/events")


def test_every_api_route_of_the_schema_wants_the_token() -> None:
    app = create_app(Settings(API_TOKEN=TOKEN, WEB_DIR="/nonexistent"))
    calls: list[Call] = [
        (method.upper(), path.replace("{job_id}", "1"), {})
        for path, operations in app.openapi()["paths"].items()
        for method in operations
    ]
    assert len(calls) >= 12 and ("GET", "/api/events", {}) in calls
    statuses, fake = requests(TOKEN, calls)
    assert statuses == [401] * len(calls), list(zip(calls, statuses, strict=True))
    assert fake.sent == []


def test_the_token_guards_rest_and_the_stream_alike() -> None:
    everything = [*GUARDED, STREAM]
    for headers in [{}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}]:
        statuses, fake = requests(TOKEN, [(m, p, headers) for m, p in everything])
        assert statuses == [401] * len(everything), headers
        assert fake.sent == []
    right = {"Authorization": f"Bearer {TOKEN}"}
    statuses, _ = requests(TOKEN, [(m, p, right) for m, p in everything])
    assert statuses == [200] * len(everything)
    statuses, _ = requests("", [(m, p, {}) for m, p in everything])
    assert statuses == [200] * len(everything)


def test_no_route_takes_the_token_as_a_query_parameter() -> None:
    """A token in a URL leaks into logs and histories: the stream takes the session
    cookie of `POST /api/login` instead (EventSource cannot send headers)."""
    calls: list[Call] = [(m, f"{p}?token={TOKEN}", {}) for m, p in [*GUARDED, STREAM]]
    statuses, _ = requests(TOKEN, calls)
    assert statuses == [401, 401, 401, 401]
    right = {"Authorization": f"Bearer {TOKEN}"}
    statuses, _ = requests(TOKEN, [("POST", "/api/login", right), ("GET", "/api/events", {})])
    assert statuses == [204, 200]
    # A bearer header wins over the cookie, as it did over the query parameter.
    wrong_header = {"Authorization": "Bearer wrong"}
    login = ("POST", "/api/login", right)
    statuses, _ = requests(TOKEN, [login, ("GET", "/api/events", wrong_header)])
    assert statuses == [204, 401]


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/api/jobs/9223372036854775807", 200),
        ("/api/jobs/9223372036854775808", 422),
        ("/api/jobs/-9223372036854775809", 422),
        ("/api/jobs?limit=2147483648", 422),
        ("/api/jobs?before=9223372036854775808", 422),
        ("/api/jobs?status=exploded", 422),
        ("/api/jobs/1/output?attempt=2147483648", 422),
    ],
)
def test_what_does_not_fit_the_wire_is_a_422(path: str, expected: int) -> None:
    statuses, _ = requests("", [("GET", path, {})])
    assert statuses == [expected]


@pytest.mark.parametrize(
    "body",
    [
        {"name": "a", "command": "true", "max_attempts": 2**31},
        {"name": "a", "command": "true", "timeout_seconds": -(2**31) - 1},
        {"name": "\ud800", "command": "true"},
        {"name": "a", "command": "echo \udfff"},
        {"name": "a", "command": 7},
    ],
)
def test_a_job_that_cannot_be_sent_is_a_422(body: dict[str, Any]) -> None:
    statuses, fake = requests("", [("POST", "/api/jobs/create", {})], body)
    assert statuses == [422]
    assert fake.sent == []


def test_a_job_carries_only_the_options_the_client_gave() -> None:
    """So that the scheduler can tell an explicit value, even a bad one, from none."""
    bodies: list[tuple[dict[str, Any], set[str]]] = [
        ({}, set()),
        ({"max_attempts": 3}, {"max_attempts"}),
        ({"max_attempts": 0}, {"max_attempts"}),
        ({"timeout_seconds": None}, set()),
        ({"timeout_seconds": 5, "max_attempts": 1}, {"timeout_seconds", "max_attempts"}),
    ]
    for options, given in bodies:
        body = {"name": "a", "command": "true", **options}
        statuses, fake = requests("", [("POST", "/api/jobs/create", {})], body)
        assert statuses == [201]
        (sent,) = fake.sent
        assert isinstance(sent, pb.CreateJobRequest)
        assert (sent.name, sent.command) == ("a", "true")
        assert sent.max_attempts == options.get("max_attempts", 0)
        assert sent.timeout_seconds == (options.get("timeout_seconds") or 0)
        # Until the options are `optional` in jobs.proto, a 0 sent is not told from none.
        present = {field.name for field, _ in sent.ListFields()} - {"name", "command"}
        assert {field for field in given if options[field]} <= present <= given
