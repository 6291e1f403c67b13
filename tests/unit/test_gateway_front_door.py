"""The gateway's front door for browsers, against a fake scheduler: the Host allow-list,
same-origin writes on every write route of the schema, the security headers, the
session cookie, the metrics' method label and the cap on event streams."""

import asyncio
import base64
import hashlib
import re
import threading
from typing import Any

import httpx
import pytest
from jobsched_common.tokens import ApiToken, Role
from jobsched_gateway import metrics, session
from jobsched_gateway.app import create_app
from jobsched_gateway.front_door import host_name, origin_of
from jobsched_gateway.scheduler import scheduler_client
from jobsched_gateway.settings import Settings
from jobsched_gateway.stream_slots import StreamSlots

from tests.unit.test_gateway import FakeScheduler

TOKEN = "s" * 32
WRITES = {"post", "put", "patch", "delete"}


def app_for(**settings: Any) -> tuple[Any, FakeScheduler]:
    app = create_app(Settings(WEB_DIR="/nonexistent", **settings))
    fake = FakeScheduler()

    async def fake_client() -> FakeScheduler:
        return fake

    app.dependency_overrides[scheduler_client] = fake_client
    app.state.stopping.set()  # an event stream ends after its first line
    return app, fake


def send(
    app: Any, calls: list[tuple[str, str, dict[str, str]]], base_url: str = "http://localhost:8080"
) -> list[httpx.Response]:
    async def run() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=base_url) as client:
            return [
                await client.request(method, path, headers=headers, content=b"{}")
                for method, path, headers in calls
            ]

    return asyncio.run(run())


def operations(app: Any, methods: set[str] | None = None) -> list[tuple[str, str]]:
    return [
        (method.upper(), re.sub(r"\{[^}]+\}", "1", path))
        for path, ops in app.openapi()["paths"].items()
        for method in ops
        if methods is None or method in methods
    ]


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Origin": "http://localhost:8081"},  # another port is another origin
        {"Origin": "https://localhost:8080"},  # and another scheme
        {"Sec-Fetch-Site": "cross-site"},
    ],
)
def test_every_write_route_refuses_a_cross_site_request(headers: dict[str, str]) -> None:
    """The check is a middleware: routes added later are covered without a word."""
    app, fake = app_for(API_TOKEN="")
    writes = operations(app, WRITES)
    assert len(writes) >= 8
    replies = send(app, [(m, p, headers) for m, p in writes])
    assert [r.status_code for r in replies] == [403] * len(writes)
    assert all("refused" in r.json()["detail"] for r in replies)
    assert fake.sent == []


def test_a_write_from_the_page_itself_or_a_listed_origin_or_no_browser_passes() -> None:
    app, fake = app_for(API_TOKEN="", CORS_ORIGINS="https://friend.example")
    body = {"name": "a", "command": "true"}
    for headers in [
        {},  # curl, jobsctl
        {"Origin": "http://localhost:8080", "Sec-Fetch-Site": "same-origin"},
        {"Origin": "https://friend.example", "Sec-Fetch-Site": "cross-site"},
    ]:

        async def run(headers: dict[str, str] = headers) -> httpx.Response:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://localhost:8080"
            ) as client:
                return await client.post("/api/jobs/create", json=body, headers=headers)

        reply = asyncio.run(run())
        assert reply.status_code == 201, (headers, reply.text)
    assert len(fake.sent) == 3


def test_a_host_not_allowed_is_a_400_on_every_route_but_the_probes() -> None:
    """DNS rebinding: a page of rebind.evil whose name now points at 127.0.0.1."""
    app, fake = app_for(API_TOKEN="")
    everything = [*operations(app), ("GET", "/"), ("GET", "/docs")]
    evil = {"Host": "rebind.evil:8080", "Origin": "http://rebind.evil:8080"}
    replies = send(app, [(m, p, evil) for m, p in everything])
    assert [r.status_code for r in replies] == [400] * len(everything)
    assert "rebind.evil" in replies[0].json()["detail"]
    assert fake.sent == []
    probes = send(app, [("GET", "/healthz", evil), ("GET", "/metrics", evil)])
    assert [r.status_code for r in probes] == [200, 200]


@pytest.mark.parametrize(
    ("settings", "host", "allowed"),
    [
        ({}, "localhost:8080", True),
        ({}, "LOCALHOST", True),
        ({}, "127.0.0.1:1", True),
        ({}, "[::1]:8080", True),
        ({}, "localhost.", True),
        ({}, "10.0.0.5:8080", False),
        ({}, "localhost.evil", False),
        ({}, "", False),
        ({"GATEWAY_HOST": "10.0.0.5", "API_TOKEN": TOKEN}, "10.0.0.5:8080", True),
        ({"ALLOWED_HOSTS": "jobs.example.com, [fd00::1]"}, "jobs.example.com", True),
        ({"ALLOWED_HOSTS": "jobs.example.com, [fd00::1]"}, "[fd00::1]:8080", True),
        ({"ALLOWED_HOSTS": "jobs.example.com"}, "evil.example.com", False),
        ({"ALLOWED_HOSTS": "*"}, "anything.at.all:9", True),
    ],
)
def test_allowed_hosts(settings: dict[str, str], host: str, allowed: bool) -> None:
    app, _ = app_for(**settings)
    (reply,) = send(app, [("GET", "/api/config", {"Host": host})])
    assert (reply.status_code != 400) == allowed, reply.text


def test_host_and_origin_parsing() -> None:
    assert host_name("[::1]:8080") == "::1"
    assert host_name("Example.COM:80") == "example.com"
    assert host_name("[::1") == ""
    assert origin_of("http://localhost") == ("http", "localhost", 80)
    assert origin_of("https://a.example:8443") == ("https", "a.example", 8443)
    for junk in ["null", "", "localhost:8080", "http://a:99999", "http://[::1"]:
        assert origin_of(junk) is None, junk


def test_every_answer_carries_the_security_headers() -> None:
    app, _ = app_for(API_TOKEN=TOKEN)
    replies = send(
        app,
        [
            ("GET", "/api/jobs", {}),  # 401
            ("GET", "/api/jobs", {"Authorization": f"Bearer {TOKEN}"}),
            ("GET", "/nowhere", {}),  # 404
            ("GET", "/api/jobs", {"Host": "evil"}),  # 400
            ("POST", "/api/jobs/create", {"Origin": "https://evil.example"}),  # 403
            ("GET", "/healthz", {}),
            ("GET", "/docs", {}),
        ],
    )
    for reply in replies:
        csp = reply.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "default-src 'self'" in csp, reply
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert reply.headers["x-content-type-options"] == "nosniff"
        assert reply.headers["referrer-policy"] == "no-referrer"


def test_docs_serves_swagger_ui_from_the_gateway_with_its_script_hashed() -> None:
    app, _ = app_for()
    page, script, style = send(
        app,
        [
            ("GET", "/docs", {}),
            ("GET", "/docs/assets/swagger-ui-bundle.js", {}),
            ("GET", "/docs/assets/swagger-ui.css", {}),
        ],
    )
    assert page.status_code == script.status_code == style.status_code == 200
    assert "SwaggerUIBundle" in script.text and ".swagger-ui" in style.text
    html = page.text
    assert "cdn" not in html and "https://" not in html
    (inline,) = re.findall(r"<script>(.*?)</script>", html, re.DOTALL)
    digest = base64.b64encode(hashlib.sha256(inline.encode()).digest()).decode()
    assert f"'sha256-{digest}'" in page.headers["content-security-policy"]


def test_the_session_cookie_names_its_token_and_expires() -> None:
    admin = ApiToken("admin", Role.ADMIN, TOKEN)
    other = ApiToken("wall.board", Role.READ, "o" * 32)
    value = session.issue(admin, now=1000)
    assert TOKEN not in value
    assert session.verify(value, [other, admin], now=1000) == admin
    assert session.verify(value, [admin], now=1000 + session.SESSION_SECONDS + 1) is None
    changed = ApiToken("admin", Role.ADMIN, "changed" * 5)
    assert session.verify(value, [changed], now=1000) is None
    name, expires, mac = value.split(".")
    assert session.verify(session.issue(other, now=1000), [admin, other], now=1000) == other
    for forged in [
        f"wall.board.{expires}.{mac}",
        f"{name}.{int(expires) + 9}.{mac}",
        "",
        "a.b",
        "...",
    ]:
        assert session.verify(forged, [admin, other], now=1000) is None, forged


def test_login_sets_an_http_only_strict_cookie_for_the_stream_only() -> None:
    app, _ = app_for(API_TOKEN=TOKEN)
    right = {"Authorization": f"Bearer {TOKEN}"}
    login, logout = send(app, [("POST", "/api/login", right), ("POST", "/api/logout", right)])
    assert login.status_code == 204
    cookie = login.headers["set-cookie"]
    for part in ["jobsched_session=", "HttpOnly", "SameSite=strict", "Path=/api/events"]:
        assert part in cookie, cookie
    assert "Secure" not in cookie  # plain http: a Secure cookie would never come back
    assert logout.status_code == 204 and "Max-Age=0" in logout.headers["set-cookie"]
    (secure,) = send(app, [("POST", "/api/login", right)], base_url="https://localhost")
    assert "Secure" in secure.headers["set-cookie"]
    app, _ = app_for(API_TOKEN="")
    (tokenless,) = send(app, [("POST", "/api/login", {})])
    assert tokenless.status_code == 204 and "set-cookie" not in tokenless.headers


def test_unknown_methods_share_one_metrics_label() -> None:
    assert metrics.method_label("GET") == "GET"
    assert metrics.method_label("BREW") == metrics.method_label("X" * 50) == "other"
    app, _ = app_for()
    send(app, [("BREW", "/api/jobs", {}), ("GET", "/api/config", {})])
    (reply,) = send(app, [("GET", "/metrics", {})])
    assert 'method="other"' in reply.text and "BREW" not in reply.text


def test_metrics_are_rendered_off_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    threads: list[threading.Thread] = []

    def render() -> bytes:
        threads.append(threading.current_thread())
        return b"# nothing\n"

    monkeypatch.setattr(metrics, "generate_latest", render)
    app, _ = app_for()
    (reply,) = send(app, [("GET", "/metrics", {})])
    assert reply.text == "# nothing\n"
    assert threads and threads[0] is not threading.main_thread()


def test_stream_slots_refuse_past_the_limit_and_come_back() -> None:
    slots = StreamSlots(2)
    slots.take()
    slots.take()
    with pytest.raises(Exception, match="MAX_EVENT_STREAMS") as refused:
        slots.take()
    assert getattr(refused.value, "status_code", None) == 503
    slots.give_back()
    slots.take()
    assert slots.taken == 2


def test_a_url_that_is_not_utf_8_once_unescaped_is_a_422() -> None:
    """Decoded leniently, `%ED%A0%80` (a lone surrogate's bytes) would become a key of
    three U+FFFD that the client never wrote."""
    app, fake = app_for(API_TOKEN="")
    bad = ["/api/limits/%ED%A0%80", "/api/schedules/%FF", "/api/jobs?status=%C3", "/api/x?%80=1"]
    replies = send(app, [("GET", path, {}) for path in bad])
    assert [r.status_code for r in replies] == [422] * len(bad)
    assert "UTF-8" in replies[0].json()["detail"]
    assert fake.sent == []
    (control,) = send(app, [("GET", "/api/limits/a%0Ab", {})])
    assert control.status_code == 422 and "control character" in control.json()["detail"]
    (fine,) = send(app, [("GET", "/api/jobs?status=caf%C3%A9", {})])
    assert fine.status_code == 422 and "status" in fine.text  # not a status, but text
