"""Time and order in a real Chromium: the create form's "more" section makes a job with
a priority, a time to run at and a dependency, which shows `scheduled` and then runs;
the pause switch holds a new job queued until resumed."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.helpers import (
    JOB_TIMEOUT_MS,
    create_via_api,
    dashboard,
    epoch,
    job_row,
    toasts,
)
from tests.conftest import LiveSystem

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.timeout(150)]

# Not UTC, and not a whole hour: the page must send the browser's own offset.
BROWSER_ZONE = "Asia/Kolkata"
RUN_AFTER_S = 8  # run at this long after the form is filled in: time to see it wait
HELD_S = 2.0  # a job created while paused is still queued this long after (unpaused: < 1 s)


def fill_job(page: Page, name: str, command: str) -> None:
    page.get_by_test_id("job-name-input").fill(name)
    page.get_by_test_id("job-command-input").fill(command)


def test_more_options_make_a_job_that_waits_for_its_time(
    live_system: LiveSystem, browser: Browser
) -> None:
    suffix = uuid.uuid4().hex[:6]
    first = create_via_api(live_system, f"first-{suffix}", "true")
    live_system.wait_for_job(first["id"], {"completed"}, timeout=JOB_TIMEOUT_MS / 1000)
    name = f"later-{suffix}"
    with dashboard(browser, live_system, 1280, 800, timezone_id=BROWSER_ZONE) as page:
        more = page.get_by_test_id("create-more")
        expect(page.get_by_test_id("job-priority-input")).to_be_hidden()
        more.get_by_text("More options").click()
        priority = page.get_by_test_id("job-priority-input")
        expect(priority).to_be_visible()
        expect(priority).to_have_accessible_name("Priority")

        # A dependency that does not exist: the API's 422 in a toast, the field marked.
        fill_job(page, name, "echo ran-later")
        depends_on = page.get_by_test_id("job-depends-on-input")
        depends_on.fill("999999")
        page.get_by_test_id("create-submit").click()
        refused = toasts(page, "error").filter(has_text="999999")
        expect(refused).to_contain_text("depends_on")
        expect(depends_on).to_have_attribute("aria-invalid", "true")
        assert not [j for j in live_system.api("GET", "/api/jobs").json() if j["name"] == name]

        # Priority, run at (the browser's wall time), depends on, attempts, timeout.
        run_at = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=RUN_AFTER_S)
        wall_time = run_at.astimezone(ZoneInfo(BROWSER_ZONE)).strftime("%Y-%m-%dT%H:%M:%S")
        priority.fill("7")
        page.get_by_test_id("job-run-at-input").fill(wall_time)
        depends_on.fill(f"#{first['id']}")
        page.get_by_test_id("job-attempts-input").fill("2")
        page.get_by_test_id("job-timeout-input").fill("30")
        page.get_by_test_id("create-submit").click()
        expect(toasts(page, "success").filter(has_text=name)).to_contain_text("scheduled")

        # What the API holds: the time sent with the browser's offset is that instant.
        row = job_row(page, name)
        expect(row.get_by_test_id("row-status")).to_have_text("scheduled")
        expect(row.get_by_test_id("row-duration")).to_contain_text("in ")
        job_id = int(row.get_attribute("data-job-id") or 0)
        job = live_system.api("GET", f"/api/jobs/{job_id}").json()
        assert job["status"] == "scheduled", job
        assert epoch(job["run_at"]) == run_at.timestamp(), (job["run_at"], run_at)
        assert job["priority"] == 7 and job["depends_on"] == [first["id"]], job
        assert job["max_attempts"] == 2 and job["timeout_seconds"] == 30, job

        # Counted and filtered as scheduled; its panel shows what it waits for.
        expect(page.get_by_test_id("stat-scheduled")).to_have_text("1")
        page.get_by_test_id("status-filter").select_option("scheduled")
        expect(page.get_by_test_id("job-row")).to_have_count(1)
        row.click()
        detail = page.get_by_test_id("job-detail")
        expect(detail.get_by_test_id("detail-status")).to_have_text("scheduled")
        expect(detail.get_by_test_id("detail-priority")).to_have_text("7")
        expect(detail.get_by_test_id("detail-run-at")).to_contain_text("in ")
        expect(detail.get_by_test_id("detail-depends-on")).to_have_text(f"#{first['id']}")
        expect(detail.get_by_test_id("detail-cancel")).to_be_visible()

        # Its time comes: it runs, and no sooner.
        expect(detail.get_by_test_id("detail-status")).to_have_text(
            "completed", timeout=RUN_AFTER_S * 1000 + JOB_TIMEOUT_MS
        )
        expect(detail.get_by_test_id("detail-output")).to_contain_text("ran-later")
        expect(detail.get_by_test_id("detail-run-at")).to_have_text("—")
        ran = live_system.api("GET", f"/api/jobs/{job_id}").json()
        assert epoch(ran["started_at"]) >= run_at.timestamp(), (ran, run_at)

        # A dependency in the panel opens that job.
        detail.get_by_test_id("detail-dependency").click()
        expect(detail.get_by_test_id("detail-id")).to_have_text(f"Job #{first['id']}")
        page.keyboard.press("Escape")
        page.get_by_test_id("status-filter").select_option("")
        expect(page.get_by_test_id("stat-scheduled")).to_have_text("0")


def held_queued(system: LiveSystem, job_id: int, seconds: float) -> bool:
    """Whether the job stays queued for `seconds` (checked all along, not only at the end)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if system.api("GET", f"/api/jobs/{job_id}").json()["status"] != "queued":
            return False
        time.sleep(0.1)
    return True


def test_pause_switch_holds_new_jobs_until_resumed(
    live_system: LiveSystem, browser: Browser
) -> None:
    name = f"held-{uuid.uuid4().hex[:8]}"
    limit = live_system.api("GET", "/api/config").json()["max_concurrent_jobs"]
    with dashboard(browser, live_system, 1280, 800) as page:
        switch = page.get_by_role("switch", name="Pause new starts")
        pill = page.get_by_test_id("paused-pill")
        expect(switch).to_have_attribute("aria-checked", "false")
        expect(pill).to_be_hidden()

        switch.click()
        expect(toasts(page, "success").filter(has_text="Paused")).to_be_visible()
        expect(switch).to_have_attribute("aria-checked", "true")
        expect(pill).to_be_visible()
        expect(page.get_by_test_id("pause-state")).to_contain_text("nothing new starts")
        assert live_system.api("GET", "/api/config").json()["paused"] is True
        assert live_system.api("GET", "/api/stats").json()["paused"] is True

        # A job made now waits, queued, however long; the page shows it so.
        job = create_via_api(live_system, name, "echo ran-after-resume")
        row = job_row(page, name)
        expect(row.get_by_test_id("row-status")).to_have_text("queued")
        assert held_queued(live_system, job["id"], HELD_S), "a job started while paused"

        # A fresh page reads the state from the API.
        page.reload()
        expect(switch).to_have_attribute("aria-checked", "true")
        expect(pill).to_be_visible()

        switch.click()
        expect(toasts(page, "success").filter(has_text="Resumed")).to_be_visible()
        expect(switch).to_have_attribute("aria-checked", "false")
        expect(pill).to_be_hidden()
        expect(row.get_by_test_id("row-status")).to_have_text("completed", timeout=JOB_TIMEOUT_MS)
        # The limit was left as it was.
        assert live_system.api("GET", "/api/config").json() == {
            "max_concurrent_jobs": limit,
            "paused": False,
        }
        expect(page.get_by_test_id("config-current")).to_have_text(str(limit))

        # Another client's change shows at once, from the event stream (the safety-net
        # poll is 15 s away).
        changed = {"paused": True, "max_concurrent_jobs": limit + 1}
        assert live_system.api("PUT", "/api/config", changed).status_code == 200
        expect(switch).to_have_attribute("aria-checked", "true", timeout=3000)
        expect(page.get_by_test_id("config-current")).to_have_text(str(limit + 1), timeout=3000)
        back = {"paused": False, "max_concurrent_jobs": limit}
        assert live_system.api("PUT", "/api/config", back).status_code == 200
        expect(switch).to_have_attribute("aria-checked", "false", timeout=3000)
