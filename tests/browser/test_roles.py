"""Roles in a real Chromium: a read token sees the jobs, schedules and limits but no
control it may not use (create form, cancel and retry, the limit and pause, the limits'
and schedules' edits) and no Activity panel; an operate token may create, cancel and run
a schedule but not change settings; an admin sees every change in the Activity panel."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.helpers import JOB_TIMEOUT_MS, dashboard, expect_live, job_row
from tests.conftest import LiveSystem, start_live_system

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.timeout(150)]

SECRETS = {role: f"{role}-{uuid.uuid4().hex}" for role in ("read", "operate", "admin")}
NAMES = {"read": "wallboard", "operate": "ci", "admin": "ops"}
WRITE_CONTROLS = {
    "operate": ["create-form", "create-submit", "select-all"],
    "admin": [
        "max-concurrent-input",
        "config-submit",
        "pause-switch",
        "limit-add-form",
        "schedule-new",
        "activity",
    ],
}


@pytest.fixture
def system(database_url: str, tmp_path: Path) -> Iterator[LiveSystem]:
    tokens = ",".join(f"{NAMES[role]}:{role}:{secret}" for role, secret in SECRETS.items())
    system = start_live_system(database_url, tmp_path, runners=1, API_TOKENS=tokens)
    system.token = SECRETS["admin"]  # what the test itself sets up, as `ops`
    try:
        yield system
    finally:
        system.stop_all()


def set_up(system: LiveSystem) -> int:
    """A running job, a key with a limit and a schedule, made by the admin token."""
    for method, path, body in [
        ("PUT", "/api/limits/team-a", {"max_concurrent_jobs": 2}),
        ("POST", "/api/schedules", {"name": "hourly", "command": "true", "every_seconds": 3600}),
    ]:
        reply = system.api(method, path, body)
        assert reply.status_code in (200, 201), reply.text
    reply = system.api("POST", "/api/jobs/create", {"name": "long", "command": "sleep 60"})
    assert reply.status_code == 201, reply.text
    job_id: int = reply.json()["id"]
    system.wait_for_job(job_id, {"running"}, timeout=JOB_TIMEOUT_MS / 1000)
    return job_id


def expect_role_shown(page: Page, role: str) -> None:
    """The role is known (api/me answered) and the read-only parts of the page are there."""
    expect(page.locator("body")).to_have_attribute("data-role", role)
    expect(job_row(page, "long")).to_be_visible()
    expect(page.get_by_test_id("limit-row")).to_have_count(1)
    expect(page.get_by_test_id("schedule-row")).to_have_count(1)
    expect(page.get_by_test_id("banner")).to_be_hidden()


def test_a_read_token_sees_no_write_controls(system: LiveSystem, browser: Browser) -> None:
    set_up(system)
    with dashboard(browser, system, 1280, 900, token=SECRETS["read"]) as page:
        expect_role_shown(page, "read")
        expect_live(page)  # the event stream takes a read token
        for testid in WRITE_CONTROLS["operate"] + WRITE_CONTROLS["admin"]:
            expect(page.get_by_test_id(testid)).to_be_hidden()
        limit = page.get_by_test_id("limit-row")
        for testid in ("limit-input", "limit-save", "limit-toggle", "limit-remove"):
            expect(limit.get_by_test_id(testid)).to_be_hidden()
        schedule = page.get_by_test_id("schedule-row")
        expect(schedule.get_by_test_id("schedule-name")).to_have_text("hourly")
        for action in ("edit", "toggle", "trigger", "delete"):
            expect(schedule.get_by_test_id(f"schedule-{action}")).to_be_hidden()
        expect(job_row(page, "long").get_by_test_id("row-select")).to_be_hidden()
        job_row(page, "long").click()
        detail = page.get_by_test_id("job-detail")
        expect(detail.get_by_test_id("detail-status")).to_have_text("running")
        expect(detail.get_by_test_id("detail-cancel")).to_be_hidden()
        expect(detail.get_by_test_id("detail-retry")).to_be_hidden()
        expect(page.get_by_test_id("config-current")).not_to_have_text("\u2013")


def test_an_operate_token_creates_and_cancels_but_changes_no_settings(
    system: LiveSystem, browser: Browser
) -> None:
    set_up(system)
    with dashboard(browser, system, 1280, 900, token=SECRETS["operate"]) as page:
        expect_role_shown(page, "operate")
        for testid in WRITE_CONTROLS["admin"]:
            expect(page.get_by_test_id(testid)).to_be_hidden()
        schedule = page.get_by_test_id("schedule-row")
        expect(schedule.get_by_test_id("schedule-trigger")).to_be_visible()
        expect(schedule.get_by_test_id("schedule-delete")).to_be_hidden()
        expect(page.get_by_test_id("limit-row").get_by_test_id("limit-toggle")).to_be_hidden()
        page.get_by_test_id("job-name-input").fill("from-ci")
        page.get_by_test_id("job-command-input").fill("true")
        page.get_by_test_id("create-submit").click()
        expect(job_row(page, "from-ci")).to_be_visible()
        job_row(page, "long").click()
        page.get_by_test_id("job-detail").get_by_test_id("detail-cancel").click()
        expect(page.get_by_test_id("job-detail").get_by_test_id("detail-status")).to_have_text(
            "cancelled", timeout=JOB_TIMEOUT_MS
        )


def test_an_admin_sees_every_change_in_the_activity_panel(
    system: LiveSystem, browser: Browser
) -> None:
    set_up(system)
    with dashboard(browser, system, 1280, 900, token=SECRETS["admin"]) as page:
        expect_role_shown(page, "admin")
        for testid in WRITE_CONTROLS["operate"] + WRITE_CONTROLS["admin"]:
            expect(page.get_by_test_id(testid)).to_be_visible()
        activity = page.get_by_test_id("activity")
        entries = activity.get_by_test_id("activity-entry")
        expect(entries).to_have_count(3)
        expect(entries.nth(0).get_by_test_id("activity-action")).to_have_text("job.create")
        expect(entries.nth(2).get_by_test_id("activity-action")).to_have_text("limit.set")
        expect(entries.nth(2).get_by_test_id("activity-actor")).to_have_text("ops")
        expect(entries.nth(2)).to_contain_text("max_concurrent_jobs: 2")

        # A change made elsewhere, by another token, shows without a reload.
        ci = {"Authorization": f"Bearer {SECRETS['operate']}"}
        reply = system.api(
            "POST", "/api/jobs/create", {"name": "by-ci", "command": "true"}, headers=ci
        )
        assert reply.status_code == 201, reply.text
        expect(entries).to_have_count(4, timeout=JOB_TIMEOUT_MS)
        expect(entries.nth(0).get_by_test_id("activity-actor")).to_have_text("ci")
        expect(entries.nth(0).get_by_test_id("activity-target")).to_have_text(
            f"job/{reply.json()['id']}"
        )
