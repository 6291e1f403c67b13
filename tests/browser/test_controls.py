"""The dashboard's controls in a real Chromium: the status filter and its cards, the
pager, cancel and retry in the detail panel, and the token dialog."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from jobsched_launcher import wait_for
from playwright.sync_api import Browser, expect

from tests.browser.helpers import (
    JOB_TIMEOUT_MS,
    create_via_api,
    dashboard,
    expect_live,
    job_row,
    toasts,
)
from tests.conftest import LiveSystem, start_live_system

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.timeout(150)]

PAGE_SIZE = 100  # the dashboard's page of jobs


def test_filter_pager_cancel_and_retry(live_system: LiveSystem, browser: Browser) -> None:
    suffix = uuid.uuid4().hex[:6]
    batch = [{"name": f"quick-{suffix}-{i}", "command": "true"} for i in range(PAGE_SIZE + 5)]
    reply = live_system.api("POST", "/api/jobs/bulk", {"jobs": batch})
    assert reply.status_code == 201, reply.text
    long = create_via_api(live_system, f"long-{suffix}", "sleep 60")
    live_system.wait_for_job(long["id"], {"running"}, timeout=JOB_TIMEOUT_MS / 1000)
    wait_for(
        lambda: live_system.api("GET", "/api/stats").json()["running"] == 1,
        JOB_TIMEOUT_MS / 1000,
        "the quick jobs to finish",
    )
    total = len(batch) + 1
    with dashboard(browser, live_system, 1280, 800) as page:
        rows = page.get_by_test_id("job-row")
        pager = page.get_by_test_id("pager-info")

        # Newest first, a page at a time.
        expect(rows).to_have_count(PAGE_SIZE)
        expect(pager).to_have_text(f"Showing {PAGE_SIZE} jobs · newest first")
        expect(page.get_by_test_id("newer")).to_be_hidden()
        page.get_by_test_id("older").click()
        expect(rows).to_have_count(total - PAGE_SIZE)
        expect(pager).to_have_text(f"Showing {total - PAGE_SIZE} jobs · page 2")
        expect(page.get_by_test_id("older")).to_be_hidden()
        page.get_by_test_id("newer").click()
        expect(pager).to_have_text(f"Showing {PAGE_SIZE} jobs · newest first")

        # The filter, from the select and from a status card, which clears it again.
        page.get_by_test_id("status-filter").select_option("running")
        expect(rows).to_have_count(1)
        expect(job_row(page, long["name"])).to_be_visible()
        expect(page.locator(".stat-running")).to_have_class("stat stat-running active")
        page.locator(".stat-running").click()
        expect(page.get_by_test_id("status-filter")).to_have_value("")
        expect(rows).to_have_count(PAGE_SIZE)
        page.locator(".stat-cancelled").click()
        expect(page.get_by_test_id("status-filter")).to_have_value("cancelled")
        expect(page.get_by_test_id("jobs-empty")).to_have_text("No cancelled jobs.")

        # Cancel the running job from its panel; it joins the filtered page, then retry it.
        page.get_by_test_id("status-filter").select_option("running")
        job_row(page, long["name"]).click()
        detail = page.get_by_test_id("job-detail")
        expect(detail.get_by_test_id("detail-retry")).to_be_hidden()
        detail.get_by_test_id("detail-cancel").click()
        expect(toasts(page, "success").filter(has_text="Cancelling job")).to_be_visible()
        expect(detail.get_by_test_id("detail-status")).to_have_text(
            "cancelled", timeout=JOB_TIMEOUT_MS
        )
        expect(page.get_by_test_id("jobs-empty")).to_have_text("No running jobs.")
        detail.get_by_test_id("detail-retry").click()
        expect(toasts(page, "success").filter(has_text="queued again")).to_be_visible()
        expect(detail.get_by_test_id("detail-status")).to_have_text(
            "running", timeout=JOB_TIMEOUT_MS
        )
        expect(job_row(page, long["name"])).to_be_visible()
        page.keyboard.press("Escape")
        expect(detail).to_be_hidden()
        expect(job_row(page, long["name"])).not_to_have_class("selected")


def test_token_dialog_asks_saves_and_forgets(
    database_url: str, tmp_path: Path, browser: Browser
) -> None:
    token = f"token-{uuid.uuid4().hex}"
    system = start_live_system(database_url, tmp_path, runners=1, API_TOKEN=token)
    try:
        name = f"behind-a-token-{uuid.uuid4().hex[:8]}"
        create_via_api(system, name, "echo hello")
        with dashboard(browser, system, 1280, 800, loaded=False) as page:
            dialog = page.get_by_test_id("auth-dialog")
            expect(dialog).to_be_visible()
            expect(dialog).to_contain_text("This server asks for a bearer token.")

            # Dismissed: later 401s do not reopen it; the banner offers it again.
            page.keyboard.press("Escape")
            expect(dialog).to_be_hidden()
            banner = page.get_by_test_id("banner")
            expect(banner).to_contain_text("This server requires an API token.")
            with page.expect_response(
                lambda response: "/api/stats" in response.url and response.status == 401
            ):
                page.get_by_test_id("refresh").click()
            expect(dialog).to_be_hidden()
            banner.get_by_role("button", name="Enter token").click()
            expect(dialog).to_be_visible()

            # A wrong token is refused; the right one loads the page and the live stream.
            page.get_by_test_id("auth-token").fill("wrong")
            page.get_by_test_id("auth-save").click()
            expect(dialog).to_contain_text("The saved token was rejected.")
            page.get_by_test_id("auth-token").fill(token)
            page.get_by_test_id("auth-save").click()
            expect(dialog).to_be_hidden()
            expect_live(page)
            expect(job_row(page, name)).to_be_visible()
            expect(banner).to_be_hidden()

            # Forgotten: asked for again.
            page.get_by_test_id("auth-clear").click()
            expect(toasts(page, "success").filter(has_text="Token forgotten.")).to_be_visible()
            expect(page.get_by_test_id("auth-clear")).to_be_hidden()
            expect(dialog).to_be_visible()
            expect(dialog).to_contain_text("This server asks for a bearer token.")
    finally:
        system.stop_all()
