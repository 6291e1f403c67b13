"""The gateway as a process, as a hostile web page or a slow client would meet it: DNS
rebinding and cross-site writes are refused, open event streams are capped, and a
client that never finishes its request is cut off."""

import asyncio
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from jobsched_gateway.client_timeouts import DeadlineH11Protocol, DeadlineHttpToolsProtocol
from jobsched_launcher import free_port, port_open, wait_for
from starlette.types import Receive, Scope, Send

from tests.conftest import LiveSystem, start_live_system
from tests.e2e.test_gateway import open_stream

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

CLIENT_TIMEOUT = 2
MAX_STREAMS = 2
FRIEND = "https://friend.example"


@pytest.fixture
def system(database_url: str, tmp_path: Path) -> Iterator[LiveSystem]:
    system = start_live_system(
        database_url,
        tmp_path,
        runners=1,
        CLIENT_TIMEOUT_SECONDS=str(CLIENT_TIMEOUT),
        MAX_EVENT_STREAMS=str(MAX_STREAMS),
        CORS_ORIGINS=FRIEND,
    )
    try:
        yield system
    finally:
        system.stop_all()


def job_names(system: LiveSystem) -> set[str]:
    return {name for (name,) in system.sql("SELECT name FROM jobs")}


def test_a_rebound_host_with_a_foreign_origin_creates_nothing(system: LiveSystem) -> None:
    """The issue's example: a page of rebind.evil, whose name now points at 127.0.0.1."""
    evil = {"Host": f"rebind.evil:{system.gateway_port}", "Origin": "http://rebind.evil:8080"}
    name = f"rebound-{uuid.uuid4().hex[:8]}"
    reply = system.api("POST", "/api/jobs/create", {"name": name, "command": "id"}, headers=evil)
    assert reply.status_code == 400, reply.text
    assert "rebind.evil" in reply.json()["detail"]
    assert system.api("GET", "/api/jobs", headers={"Host": "rebind.evil"}).status_code == 400
    assert name not in job_names(system)


def test_a_cross_site_form_post_is_refused_and_the_page_s_own_write_is_not(
    system: LiveSystem,
) -> None:
    job = system.api("POST", "/api/jobs/create", {"name": "victim", "command": "sleep 30"}).json()
    form = {
        "Origin": "https://evil.example",
        "Sec-Fetch-Site": "cross-site",
        "Content-Type": "application/x-www-form-urlencoded",
    }
    for method, path in [
        ("POST", f"/api/jobs/{job['id']}/cancel"),
        ("POST", "/api/jobs/create"),
        ("PUT", "/api/config"),
    ]:
        reply = system.api(method, path, content=b"name=x&command=id", headers=form)
        assert reply.status_code == 403, (path, reply.text)
    assert system.api("GET", f"/api/jobs/{job['id']}").json()["status"] != "cancelled"
    own = {"Origin": system.gateway_url, "Sec-Fetch-Site": "same-origin"}
    name = f"own-{uuid.uuid4().hex[:8]}"
    reply = system.api("POST", "/api/jobs/create", {"name": name, "command": "true"}, headers=own)
    assert reply.status_code == 201, reply.text
    friend = {"Origin": FRIEND, "Sec-Fetch-Site": "cross-site"}
    reply = system.api("PUT", "/api/config", {"max_concurrent_jobs": 3}, headers=friend)
    assert reply.status_code == 200, reply.text
    assert reply.headers["access-control-allow-origin"] == FRIEND


def test_every_answer_carries_the_security_headers(system: LiveSystem) -> None:
    for path in ["/", "/main.js", "/api/jobs", "/docs", "/nowhere", "/healthz"]:
        reply = system.api("GET", path)
        assert "frame-ancestors 'none'" in reply.headers["content-security-policy"], path
        assert reply.headers["x-content-type-options"] == "nosniff", path
        assert reply.headers["referrer-policy"] == "no-referrer", path


def test_open_event_streams_are_capped(system: LiveSystem) -> None:
    with ExitStack() as stack:
        # Kept: a dropped line iterator would close its stream.
        streams = [open_stream(stack, system, "/api/events", {}) for _ in range(MAX_STREAMS)]
        refused = system.api("GET", "/api/events")
        assert refused.status_code == 503, refused.text
        assert "MAX_EVENT_STREAMS" in refused.json()["detail"]
        assert int(refused.headers["retry-after"]) > 0
        assert system.api("GET", "/api/stats").status_code == 200  # REST goes on
    # Closed streams give their places back, as soon as the gateway sees them go.
    deadline = time.monotonic() + 10
    while stream_status(system) == 503:
        assert time.monotonic() < deadline, "closed streams kept their places"
        time.sleep(0.1)
    with ExitStack() as stack:
        streams = [open_stream(stack, system, "/api/events", {}) for _ in range(MAX_STREAMS)]
        assert len(streams) == MAX_STREAMS


def stream_status(system: LiveSystem) -> int:
    with httpx.Client(base_url=system.gateway_url, timeout=10) as client:
        with client.stream("GET", "/api/events") as reply:
            return reply.status_code


def cut_off_after(port: int, first: bytes, trickle: bytes) -> float:
    """Sends `first`, then a byte of `trickle` every 0.3 s (which keeps uvicorn's own
    keep-alive timer from firing); how long until the gateway closed the connection."""
    bound = CLIENT_TIMEOUT + 5
    with socket.create_connection(("127.0.0.1", port), timeout=0.3) as sock:
        started = time.monotonic()
        sock.sendall(first)
        sent = 0
        while time.monotonic() - started < bound:
            try:
                if sock.recv(4096) == b"":
                    return time.monotonic() - started
            except TimeoutError:
                pass
            except ConnectionResetError:
                return time.monotonic() - started
            if trickle:
                try:
                    sock.sendall(trickle[sent % len(trickle) : sent % len(trickle) + 1])
                except (BrokenPipeError, ConnectionResetError):
                    return time.monotonic() - started
                sent += 1
    raise AssertionError(f"still open after {bound}s")


SLOW_CLIENTS = pytest.mark.parametrize(
    ("first", "trickle"),
    [
        (b"", b""),  # connects and says nothing
        (b"GET /api/jobs HTTP/1.1\r\nHost: localhost\r\n", b"X-Slow: y"),  # never ends headers
        (
            b"POST /api/jobs/create HTTP/1.1\r\nHost: localhost\r\n"
            b"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{",
            b" ",
        ),  # never ends its body
        (b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\nGET /", b"h"),  # then dawdles
    ],
    ids=["idle", "half-headers", "half-body", "after-an-answer"],
)


@SLOW_CLIENTS
def test_a_client_that_never_finishes_its_request_is_cut_off(
    system: LiveSystem, first: bytes, trickle: bytes
) -> None:
    took = cut_off_after(system.gateway_port, first, trickle)
    assert CLIENT_TIMEOUT - 0.5 <= took <= CLIENT_TIMEOUT + 3, took
    assert system.api("GET", "/healthz").status_code == 200


async def slow_answer(scope: Scope, receive: Receive, send: Send) -> None:
    """Reads the whole body, then answers after longer than the client timeout."""
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    await asyncio.sleep(CLIENT_TIMEOUT + 0.5)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"late"})


@pytest.fixture(params=["h11", "httptools"])
def bare_server(request: pytest.FixtureRequest) -> Iterator[int]:
    """Each protocol the gateway may run, around an app that answers slowly."""
    protocol: Any = {"h11": DeadlineH11Protocol, "httptools": DeadlineHttpToolsProtocol}[
        request.param
    ]
    assert protocol is not None, "httptools is a dependency of the gateway"
    port = free_port()
    config = uvicorn.Config(
        slow_answer, port=port, http=protocol, timeout_keep_alive=CLIENT_TIMEOUT, log_config=None
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: port_open(f"127.0.0.1:{port}"), 10, "the bare server")
        yield port
    finally:
        server.should_exit = True
        thread.join(10)


@SLOW_CLIENTS
def test_each_protocol_cuts_off_a_slow_client(
    bare_server: int, first: bytes, trickle: bytes
) -> None:
    took = cut_off_after(bare_server, first.replace(b"/healthz", b"/"), trickle)
    # after-an-answer waits for the slow answer first
    assert CLIENT_TIMEOUT - 0.5 <= took <= 2 * CLIENT_TIMEOUT + 4, took


def test_each_protocol_waits_for_a_slow_answer(bare_server: int) -> None:
    """The deadline is the client's: a request sent whole gets its late answer."""
    with httpx.Client(timeout=CLIENT_TIMEOUT + 5) as client:
        reply = client.post(f"http://127.0.0.1:{bare_server}/", content=b"x" * 100)
        assert reply.text == "late"


def test_an_event_stream_outlives_the_client_timeout(system: LiveSystem) -> None:
    """The deadline is on the client's request, not on a long answer."""
    with ExitStack() as stack:
        lines = open_stream(stack, system, "/api/events", {})
        time.sleep(CLIENT_TIMEOUT + 1)  # past the deadline on purpose
        job = system.api("POST", "/api/jobs/create", {"name": "late", "command": "true"}).json()
        for line in lines:
            if line.startswith("data:") and f'"job_id":{job["id"]}' in line:
                break
        else:
            raise AssertionError("the stream ended before the job's event")


def test_a_keep_alive_connection_serves_requests_in_turn(system: LiveSystem) -> None:
    with httpx.Client(base_url=system.gateway_url, timeout=5) as client:
        for _ in range(3):
            assert client.get("/api/stats").status_code == 200


def test_a_read_token_s_session_opens_the_stream_and_nothing_else(
    database_url: str, tmp_path: Path
) -> None:
    """The cookie stands for its token, with the token's role, on the stream only."""
    read = f"read-{uuid.uuid4().hex}"
    system = start_live_system(database_url, tmp_path, runners=1, API_TOKENS=f"wall:read:{read}")
    try:
        login = system.api("POST", "/api/login", headers={"Authorization": f"Bearer {read}"})
        assert login.status_code == 204, login.text
        cookie = {"Cookie": f"jobsched_session={login.cookies['jobsched_session']}"}
        with ExitStack() as stack:
            lines = open_stream(stack, system, "/api/events", cookie)
            assert next(lines).startswith("data:")
        for method, path in [("GET", "/api/jobs"), ("POST", "/api/jobs/create")]:
            reply = system.api(method, path, {"name": "x", "command": "id"}, headers=cookie)
            assert reply.status_code == 401, (path, reply.text)
        forged = {"Cookie": "jobsched_session=wall.9999999999.00"}
        assert system.api("GET", "/api/events", headers=forged).status_code == 401
    finally:
        system.stop_all()


def test_concurrent_creates_each_get_their_own_answer(system: LiveSystem) -> None:
    """The gateway sends concurrent creates to the scheduler together; each caller still
    gets its own 201, 409 or 422, as if it had been alone."""
    tag = uuid.uuid4().hex[:8]
    bodies: list[dict[str, Any]] = [{"name": f"{tag}-{n}", "command": "true"} for n in range(30)]
    bodies += [{"name": f"{tag}-twice", "command": "true"} for _ in range(5)]
    bodies += [{"name": f"{tag}-bad-{n}", "command": "true", "max_attempts": 0} for n in range(5)]

    async def send_all() -> list[httpx.Response]:
        base = f"http://127.0.0.1:{system.gateway_port}"
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            return await asyncio.gather(
                *(client.post("/api/jobs/create", json=body) for body in bodies)
            )

    replies = asyncio.run(send_all())
    statuses = [reply.status_code for reply in replies]
    assert statuses[:30] == [201] * 30
    assert [r.json()["name"] for r in replies[:30]] == [b["name"] for b in bodies[:30]]
    assert sorted(statuses[30:35]) == [201, 409, 409, 409, 409]
    assert statuses[35:] == [422] * 5
    assert all("max_attempts" in r.json()["detail"] for r in replies[35:])
    made = {name for name in job_names(system) if name.startswith(tag)}
    assert made == {b["name"] for b in bodies[:31]}
