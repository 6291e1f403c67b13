"""A real browser at the gateway's front door: /docs works offline under the content
security policy, and another site's form cannot write."""

import json
import uuid

from playwright.sync_api import Browser, ConsoleMessage, expect

from tests.browser.helpers import UI_TIMEOUT_MS
from tests.conftest import LiveSystem


def test_docs_shows_the_operations_from_the_gateway_s_own_files(
    live_system: LiveSystem, browser: Browser
) -> None:
    context = browser.new_context()
    context.set_default_timeout(UI_TIMEOUT_MS)
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))

    def blocked(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            problems.append(message.text)

    page.on("console", blocked)
    elsewhere: list[str] = []
    page.on(
        "request",
        lambda request: (
            None
            if request.url.startswith((live_system.gateway_url, "data:"))
            else elsewhere.append(request.url)
        ),
    )
    try:
        page.goto(f"{live_system.gateway_url}/docs")
        create = page.locator(".opblock").filter(has_text="/api/jobs/create")
        expect(create.first).to_be_visible()
        assert page.locator(".opblock").count() >= 12
        create.first.locator(".opblock-summary").click()
        expect(page.get_by_text("Try it out").first).to_be_visible()
        assert not problems, problems
        assert not elsewhere, f"/docs loaded from another origin: {elsewhere}"
    finally:
        context.close()


def test_another_site_s_form_cannot_create_a_job(live_system: LiveSystem, browser: Browser) -> None:
    """A plain HTML form needs no CORS preflight: the gateway itself must refuse it."""
    name = f"forged-{uuid.uuid4().hex[:8]}"
    # text/plain makes the body JSON: {"name": ..., "command": "id", "x": "="}
    field = json.dumps({"name": name, "command": "id", "x": ""})[:-2]
    form = (
        f'<form id="f" method="POST" enctype="text/plain" '
        f'action="{live_system.gateway_url}/api/jobs/create">'
        f"<input name='{field}' value='\"}}'></form>"
        "<script>document.getElementById('f').submit()</script>"
    )
    context = browser.new_context()
    context.set_default_timeout(UI_TIMEOUT_MS)
    context.route(
        "http://evil.test/**",
        lambda route: route.fulfill(body=form, content_type="text/html"),
    )
    page = context.new_page()
    try:
        with page.expect_response(f"{live_system.gateway_url}/api/jobs/create") as answer:
            page.goto("http://evil.test/")
        reply = answer.value
        assert reply.status == 403, reply.text()
        assert reply.request.headers.get("origin") == "http://evil.test"
        assert "refused" in reply.json()["detail"]
    finally:
        context.close()
    names = {job["name"] for job in live_system.api("GET", "/api/jobs").json()}
    assert name not in names
