"""The dashboard in a real Chromium against the whole system: create a job through the
form, watch it complete, read its output, change the limit, and see errors as toasts."""

from __future__ import annotations

import re
import uuid

import pytest
from playwright.sync_api import Browser, expect

from tests.browser.helpers import (
    ARTIFACTS,
    JOB_TIMEOUT_MS,
    STATUSES,
    create_via_api,
    dashboard,
    job_row,
    toasts,
)
from tests.conftest import LiveSystem

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.timeout(150)]


def test_dashboard_runs_a_job_and_updates_the_config(
    live_system: LiveSystem, browser: Browser
) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    name = f"browser-{uuid.uuid4().hex[:10]}"
    with dashboard(browser, live_system, 1280, 800) as page:
        # Create a job through the form; a success toast names it.
        page.get_by_test_id("job-name-input").fill(name)
        page.get_by_test_id("job-command-input").fill("echo hello-from-browser")
        page.get_by_test_id("create-submit").click()
        expect(toasts(page, "success").filter(has_text=name)).to_be_visible()

        # The table shows it through to completed, with exit code 0.
        row = job_row(page, name)
        expect(row.get_by_test_id("row-status")).to_have_text("completed", timeout=JOB_TIMEOUT_MS)
        expect(row.get_by_test_id("row-exit")).to_have_text("0")
        job_id = row.get_attribute("data-job-id")
        assert job_id is not None and job_id.isdigit()
        job = live_system.api("GET", f"/api/jobs/{job_id}").json()
        assert job["name"] == name and job["status"] == "completed", job

        # The detail panel: command, status, exit code, runner, attempt, timings, output.
        row.click()
        detail = page.get_by_test_id("job-detail")
        expect(detail).to_be_visible()
        expect(detail.get_by_test_id("detail-id")).to_have_text(f"Job #{job_id}")
        expect(detail.get_by_test_id("detail-name")).to_have_text(name)
        expect(detail.get_by_test_id("detail-status")).to_have_text("completed")
        expect(detail.get_by_test_id("detail-command")).to_have_text("echo hello-from-browser")
        expect(detail.get_by_test_id("detail-exit-code")).to_have_text("0")
        expect(detail.get_by_test_id("detail-output")).to_contain_text("hello-from-browser")
        expect(detail.get_by_test_id("detail-truncated")).to_be_hidden()
        expect(detail.get_by_test_id("detail-attempt")).to_have_text(
            f"{job['attempt']} of {job['max_attempts']}"
        )
        if job["runner_id"]:
            expect(detail.get_by_test_id("detail-runner")).to_have_text(job["runner_id"])
        for field in ("created", "started", "finished"):
            expect(detail.get_by_test_id(f"detail-{field}")).not_to_have_text("—")
        expect(detail.get_by_test_id("detail-duration")).to_have_text(re.compile(r"\d"))
        page.screenshot(path=ARTIFACTS / "dashboard-detail.png", animations="disabled")
        page.get_by_test_id("detail-close").click()
        expect(detail).to_be_hidden()

        # The config editor changes the limit the API reports.
        before = live_system.api("GET", "/api/config").json()["max_concurrent_jobs"]
        wanted = before + 3 if before <= 9_000 else 7
        page.get_by_test_id("max-concurrent-input").fill(str(wanted))
        page.get_by_test_id("config-submit").click()
        expect(toasts(page, "success").filter(has_text=f"set to {wanted}")).to_be_visible()
        expect(page.get_by_test_id("config-current")).to_have_text(str(wanted))
        reply = live_system.api("GET", "/api/config")
        assert reply.status_code == 200, reply.text
        assert reply.json()["max_concurrent_jobs"] == wanted

        # The stats cards show what the API counts (the system is idle now).
        stats = live_system.api("GET", "/api/stats").json()
        assert stats["completed"] >= 1, stats
        for status in STATUSES:
            expect(page.get_by_test_id(f"stat-{status}")).to_have_text(str(stats[status]))
        expect(page.get_by_test_id("slots")).to_contain_text(f"of {wanted} slots")

        # A duplicate name: an error toast with the API's message, and no second job.
        page.get_by_test_id("job-name-input").fill(name)
        page.get_by_test_id("job-command-input").fill("echo again")
        page.get_by_test_id("create-submit").click()
        duplicate = toasts(page, "error").filter(has_text="already exists")
        expect(duplicate).to_have_count(1)
        expect(duplicate).to_contain_text(name)
        listed = live_system.api("GET", "/api/jobs?limit=1000").json()
        assert [j["id"] for j in listed if j["name"] == name] == [int(job_id)], listed

        page.screenshot(path=ARTIFACTS / "dashboard.png", full_page=True, animations="disabled")


def test_dashboard_fits_a_phone(live_system: LiveSystem, browser: Browser) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    suffix = uuid.uuid4().hex[:6]
    ok = create_via_api(live_system, f"phone-ok-{suffix}", "echo hello-from-a-phone")
    bad = create_via_api(live_system, f"phone-fails-{suffix}", "echo about to fail; exit 3")
    with dashboard(browser, live_system, 390, 844, mobile=True) as page:
        expect(job_row(page, ok["name"]).get_by_test_id("row-status")).to_have_text(
            "completed", timeout=JOB_TIMEOUT_MS
        )
        expect(job_row(page, bad["name"]).get_by_test_id("row-status")).to_have_text(
            "failed", timeout=JOB_TIMEOUT_MS
        )
        for status in STATUSES:
            expect(page.get_by_test_id(f"stat-{status}")).to_be_visible()
        expect(page.get_by_test_id("create-form")).to_be_visible()
        expect(page.get_by_test_id("config-form")).to_be_visible()

        # Nothing sticks out sideways: no horizontal scrolling on a phone.
        width: int = page.evaluate("() => document.documentElement.scrollWidth")
        assert width <= 390, f"the page is {width}px wide on a 390px screen"
        page.screenshot(
            path=ARTIFACTS / "dashboard-mobile.png", full_page=True, animations="disabled"
        )

        # The detail panel takes the whole screen and shows the failure.
        job_row(page, bad["name"]).click()
        detail = page.get_by_test_id("job-detail")
        expect(detail).to_be_visible()
        expect(detail.get_by_test_id("detail-exit-code")).to_have_text("3")
        expect(detail.get_by_test_id("detail-output")).to_contain_text("about to fail")
        # Measured once its slide-in animation is over.
        page.wait_for_function(
            "() => document.getElementById('job-detail').getAnimations().length === 0"
        )
        box = detail.bounding_box()
        assert box is not None and box["x"] == 0 and abs(box["width"] - 390) < 0.5, box


def test_a_retried_job_shows_every_attempt(live_system: LiveSystem, browser: Browser) -> None:
    command = 'echo "attempt $JOBSCHED_ATTEMPT says hi"; exit $((3 - JOBSCHED_ATTEMPT))'
    reply = live_system.api(
        "POST", "/api/jobs/create", {"name": "twice", "command": command, "max_attempts": 2}
    )
    job_id = reply.json()["id"]
    live_system.wait_for_job(job_id, {"failed"}, timeout=JOB_TIMEOUT_MS / 1000)
    with dashboard(browser, live_system, 1280, 800) as page:
        job_row(page, "twice").click()
        rows = page.get_by_test_id("attempt-row")
        expect(rows).to_have_count(2)
        expect(rows.nth(0)).to_contain_text("exit code 2")
        expect(rows.nth(1)).to_contain_text("exit code 1")
        output = page.get_by_test_id("detail-output")
        expect(output).to_have_text("attempt 2 says hi")
        rows.nth(0).click()
        expect(output).to_have_text("attempt 1 says hi")
        page.screenshot(path=str(ARTIFACTS / "dashboard-attempts.png"))
