"""Shared by the browser tests: the dashboard in a fresh page, and locators."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, Locator, Page, expect

from tests.conftest import LiveSystem

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
STATUSES = ("scheduled", "queued", "running", "completed", "failed", "cancelled")
JOB_TIMEOUT_MS = 30_000  # a job goes queued -> running -> completed, however slow the host
UI_TIMEOUT_MS = 10_000


@contextmanager
def dashboard(
    browser: Browser,
    system: LiveSystem,
    width: int,
    height: int,
    mobile: bool = False,
    token: str = "",
    loaded: bool = True,
    timezone_id: str | None = None,
) -> Iterator[Page]:
    """The dashboard in a fresh browser context; fails on any uncaught JavaScript error
    and anything the content security policy blocked.
    A token is saved in the page's storage first, as the token dialog would. With
    `loaded`, waits for the first load to answer (it cannot without a valid token).
    `timezone_id` is the browser's time zone (the host's when None)."""
    context = browser.new_context(
        viewport={"width": width, "height": height},
        is_mobile=mobile,
        has_touch=mobile,
        timezone_id=timezone_id,
    )
    if token:
        context.add_init_script(f"localStorage.setItem('jobsched.token', {json.dumps(token)})")
    context.set_default_timeout(UI_TIMEOUT_MS)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    # What the gateway's Content-Security-Policy blocked, which the page would miss.
    page.on(
        "console",
        lambda message: (
            errors.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    try:
        page.goto(f"{system.gateway_url}/")
        if loaded:
            # The first load has answered: the stats and the "Updated" pill are filled in.
            expect(page.get_by_test_id("last-updated")).to_contain_text("Updated")
        yield page
        assert not errors, f"uncaught JavaScript errors: {errors}"
    finally:
        context.close()


def epoch(iso: str) -> float:
    """An RFC 3339 time from the API as epoch seconds."""
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def job_row(page: Page, name: str) -> Locator:
    name_cell = page.get_by_test_id("row-name").get_by_text(name, exact=True)
    return page.get_by_test_id("job-row").filter(has=name_cell)


def toasts(page: Page, kind: str) -> Locator:
    return page.locator(f'[data-testid="toast"][data-kind="{kind}"]')


def create_via_api(system: LiveSystem, name: str, command: str) -> dict[str, Any]:
    reply = system.api("POST", "/api/jobs/create", {"name": name, "command": command})
    assert reply.status_code == 201, reply.text
    job: dict[str, Any] = reply.json()
    return job


def live_status(page: Page) -> Locator:
    return page.get_by_test_id("live-status")


def expect_live(page: Page, timeout: float = UI_TIMEOUT_MS) -> None:
    """The page's event stream is open (the gateway is subscribed to the scheduler)."""
    expect(live_status(page)).to_have_attribute("data-state", "live", timeout=timeout)
    expect(live_status(page)).to_have_text("Live")
