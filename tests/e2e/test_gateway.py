"""The gateway as a process: it owns its shutdown (open event streams end at once on
SIGTERM or SIGINT), and one token check guards REST and the event stream."""

import signal
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest
from jobsched_gateway.main import GRACE_SECONDS

from tests.conftest import LiveSystem, start_live_system

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


@pytest.fixture
def guarded_system(database_url: str, tmp_path: Path) -> Iterator[LiveSystem]:
    system = start_live_system(database_url, tmp_path, runners=1, API_TOKEN=uuid.uuid4().hex)
    try:
        yield system
    finally:
        system.stop_all()


def session_cookie(system: LiveSystem, token: str) -> dict[str, str]:
    """The header a browser sends to the stream after the dashboard's login."""
    reply = system.api("POST", "/api/login", headers={"Authorization": f"Bearer {token}"})
    assert reply.status_code == 204, reply.text
    return {"Cookie": f"jobsched_session={reply.cookies['jobsched_session']}"}


def open_stream(
    stack: ExitStack, system: LiveSystem, path: str, headers: dict[str, str]
) -> Iterator[str]:
    """The lines of an event stream, once the gateway has said `ready`."""
    client = stack.enter_context(httpx.Client(base_url=system.gateway_url, timeout=10))
    reply = stack.enter_context(client.stream("GET", path, headers=headers))
    assert reply.status_code == 200, reply.read()
    lines = reply.iter_lines()
    for line in lines:
        if line == "event: ready":
            return lines
    raise AssertionError("the stream ended before it was ready")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_open_event_streams_do_not_hold_the_gateway_s_shutdown(
    guarded_system: LiveSystem, sig: signal.Signals
) -> None:
    token = guarded_system.token
    with ExitStack() as stack:
        streams = [
            open_stream(stack, guarded_system, "/api/events", {"Authorization": f"Bearer {token}"}),
            open_stream(
                stack, guarded_system, "/api/events", session_cookie(guarded_system, token)
            ),
        ]
        started = time.monotonic()
        code = guarded_system.stop("gateway", sig, timeout=GRACE_SECONDS + 5)
        took = time.monotonic() - started
        assert code == 0, f"the gateway exited with {code}"
        assert took < GRACE_SECONDS, f"the gateway took {took:.1f}s to stop with streams open"
        for lines in streams:
            rest = list(lines)  # ends: the gateway closed the stream, not the read timeout
            assert "event: error" not in rest, rest


def test_one_token_check_guards_rest_and_the_stream(guarded_system: LiveSystem) -> None:
    token = guarded_system.token
    guarded_system.token = ""
    everything = ["/api/jobs", "/api/stats", "/api/config", "/api/events"]
    for headers in [{}, {"Authorization": "Bearer wrong"}, {"Authorization": token}]:
        for path in everything:
            reply = guarded_system.api("GET", path, headers=headers)
            assert reply.status_code == 401, (path, headers, reply.text)
            assert reply.headers["www-authenticate"] == "Bearer"
    for path in everything:  # a token in a URL would end up in logs
        assert guarded_system.api("GET", f"{path}?token={token}").status_code == 401, path
    right = {"Authorization": f"Bearer {token}"}
    for path in everything[:3]:
        assert guarded_system.api("GET", path, headers=right).status_code == 200, path
    with ExitStack() as stack:
        open_stream(stack, guarded_system, "/api/events", right)
        open_stream(stack, guarded_system, "/api/events", session_cookie(guarded_system, token))
