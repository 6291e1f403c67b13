"""Concurrency keys in a real Chromium: the limits panel sets, pauses, resumes and
removes a key's limit and shows its running jobs as a bar; the job panel says why a
waiting job waits (a full key, a paused key) and follows the change live; the chart of
the last hour draws the series with its limit line; all of it fits a phone."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from tests.browser.helpers import ARTIFACTS, JOB_TIMEOUT_MS, dashboard, expect_live, job_row
from tests.conftest import LiveSystem

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.timeout(150)]

LIVE_MS = 5_000  # a change made through the API shows within this long
CHART_MS = 15_000  # the chart reloads on stats at most every 5 s


def limit_row(page: Page, key: str) -> Locator:
    return page.locator(f'[data-testid="limit-row"][data-key="{key}"]')


def submit(system: LiveSystem, name: str, command: str, key: str) -> dict[str, Any]:
    body = {"name": name, "command": command, "concurrency_key": key}
    reply = system.api("POST", "/api/jobs/create", body)
    assert reply.status_code == 201, reply.text
    job: dict[str, Any] = reply.json()
    assert job["concurrency_key"] == key, job
    return job


def put_limit(system: LiveSystem, key: str, limit: int | None, paused: bool) -> None:
    body = {"max_concurrent_jobs": limit, "paused": paused}
    reply = system.api("PUT", f"/api/limits/{key.replace('/', '%2F')}", body)
    assert reply.status_code == 200, reply.text


def limit_of(system: LiveSystem, key: str) -> dict[str, Any]:
    reply = system.api("GET", f"/api/limits/{key.replace('/', '%2F')}")
    assert reply.status_code == 200, reply.text
    limit: dict[str, Any] = reply.json()
    return limit


def set_global_limit(system: LiveSystem, limit: int) -> None:
    reply = system.api("PUT", "/api/config", {"max_concurrent_jobs": limit})
    assert reply.status_code == 200, reply.text


def test_limits_panel_sets_pauses_resumes_and_removes(
    live_system: LiveSystem, browser: Browser
) -> None:
    set_global_limit(live_system, 10)
    key = f"team/db-{uuid.uuid4().hex[:6]}"  # a / in it: the routes still find it
    with dashboard(browser, live_system, 1280, 900) as page:
        expect_live(page)
        expect(page.get_by_test_id("limits-empty")).to_be_visible()

        # A new key's limit, from the form; the API has it, the panel shows it empty.
        page.get_by_test_id("limit-add-key").fill(key)
        page.get_by_test_id("limit-add-max").fill("2")
        page.get_by_test_id("limit-add-submit").click()
        row = limit_row(page, key)
        usage = row.get_by_test_id("limit-usage")
        expect(usage).to_have_text("0 of 2 running · 0 queued")
        assert limit_of(live_system, key)["max_concurrent_jobs"] == 2

        # Three jobs of the key, the first from the create form's "More options".
        page.get_by_test_id("job-name-input").fill("keyed-from-the-form")
        page.get_by_test_id("job-command-input").fill("sleep 60")
        page.get_by_test_id("create-more").locator("summary").click()
        page.get_by_test_id("job-key-input").fill(key)
        page.get_by_test_id("create-submit").click()
        expect(job_row(page, "keyed-from-the-form")).to_be_visible()
        for i in range(2):
            submit(live_system, f"keyed-{i}", "sleep 60", key)
        expect(usage).to_have_text("2 of 2 running · 1 queued", timeout=JOB_TIMEOUT_MS)
        expect(row).to_have_attribute("data-full", "true")
        fill = row.get_by_test_id("limit-bar-fill")
        expect(fill).to_have_attribute("style", "width: 100%;")
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.get_by_test_id("limits-list").scroll_into_view_if_needed()
        page.screenshot(path=ARTIFACTS / "dashboard-limits.png", animations="disabled")
        job_row(page, "keyed-from-the-form").click()
        expect(page.get_by_test_id("detail-key")).to_have_text(key)
        page.get_by_test_id("detail-close").click()

        # Paused, then the limit raised: the pause stays, nothing more starts.
        row.get_by_test_id("limit-toggle").click()
        expect(row.get_by_test_id("limit-paused")).to_be_visible()
        expect(row.get_by_test_id("limit-toggle")).to_have_text("Resume")
        row.get_by_test_id("limit-input").fill("3")
        row.get_by_test_id("limit-save").click()
        expect(usage).to_have_text("2 of 3 running · 1 queued")
        assert limit_of(live_system, key) == {
            "key": key,
            "max_concurrent_jobs": 3,
            "paused": True,
            "running": 2,
            "queued": 1,
        }
        share = fill.evaluate("(node) => parseFloat(node.style.width)")
        assert abs(share - 200 / 3) < 0.01, share

        # Resumed: the third job starts, the bar is full again.
        row.get_by_test_id("limit-toggle").click()
        expect(usage).to_have_text("3 of 3 running · 0 queued", timeout=JOB_TIMEOUT_MS)
        expect(row.get_by_test_id("limit-paused")).to_be_hidden()
        expect(fill).to_have_attribute("style", "width: 100%;")

        # Removed (after a confirm): its running jobs keep it listed, with no limit.
        page.once("dialog", lambda dialog: dialog.accept())
        row.get_by_test_id("limit-remove").click()
        expect(usage).to_have_text("3 running · no limit · 0 queued")
        expect(row.get_by_test_id("limit-bar")).to_be_hidden()
        expect(row.get_by_test_id("limit-remove")).to_be_hidden()
        assert limit_of(live_system, key)["max_concurrent_jobs"] is None


def test_why_answer_names_a_full_key_and_a_paused_key_live(
    live_system: LiveSystem, browser: Browser
) -> None:
    set_global_limit(live_system, 10)
    key = f"reports-{uuid.uuid4().hex[:6]}"
    put_limit(live_system, key, 1, paused=False)
    holder = submit(live_system, "holder", "sleep 60", key)
    live_system.wait_for_job(holder["id"], {"running"}, timeout=JOB_TIMEOUT_MS / 1000)
    waiting = submit(live_system, "waiting", "echo finally", key)
    with dashboard(browser, live_system, 1280, 900) as page:
        expect_live(page)
        job_row(page, "waiting").click()
        why = page.get_by_test_id("detail-why")
        expect(why).to_be_visible()
        expect(why).to_have_attribute("data-runnable", "false")

        # The key is full: its blocker names the key's limit and the job holding it.
        full = why.locator('[data-testid="why-blocker"][data-kind="key_limit"]')
        expect(full).to_be_visible()
        answer = live_system.api("GET", f"/api/jobs/{waiting['id']}/why").json()
        by_kind = {blocker["kind"]: blocker for blocker in answer["blockers"]}
        assert by_kind["key_limit"]["holders"] == [holder["id"]], answer
        expect(full).to_contain_text(by_kind["key_limit"]["message"])
        expect(full.get_by_role("button", name=f"Open job {holder['id']}")).to_be_visible()
        expect(page.get_by_test_id("detail-why-summary")).to_have_text(answer["message"])

        # Paused through the API: the open panel says so without a reload.
        put_limit(live_system, key, 1, paused=True)
        paused = why.locator('[data-testid="why-blocker"][data-kind="key_paused"]')
        expect(paused).to_be_visible(timeout=LIVE_MS)
        answer = live_system.api("GET", f"/api/jobs/{waiting['id']}/why").json()
        message = next(b["message"] for b in answer["blockers"] if b["kind"] == "key_paused")
        expect(paused).to_contain_text(message)
        page.screenshot(path=ARTIFACTS / "dashboard-why.png", animations="disabled")

        # Resumed with room: it runs, and the answer goes away.
        put_limit(live_system, key, 2, paused=False)
        detail = page.get_by_test_id("job-detail")
        expect(detail.get_by_test_id("detail-status")).to_have_text(
            "completed", timeout=JOB_TIMEOUT_MS
        )
        expect(why).to_be_hidden()


def test_chart_draws_the_last_hour_against_the_limit(
    live_system: LiveSystem, browser: Browser
) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    set_global_limit(live_system, 1)
    key = f"nightly-{uuid.uuid4().hex[:6]}"
    put_limit(live_system, key, 1, paused=False)
    first = submit(live_system, "chart-first", "sleep 60", key)
    submit(live_system, "chart-second", "sleep 60", key)
    live_system.wait_for_job(first["id"], {"running"}, timeout=JOB_TIMEOUT_MS / 1000)
    with dashboard(browser, live_system, 1280, 900) as page:
        expect_live(page)
        charts = page.get_by_test_id("charts")
        expect(charts).not_to_have_attribute("data-points", "0", timeout=CHART_MS)
        drawn = int(charts.get_attribute("data-points") or 0)
        served = len(live_system.api("GET", "/api/series?window=3600").json()["points"])
        assert drawn > 0 and abs(drawn - served) <= 1, (drawn, served)  # a minute may turn
        for name in ("running", "finished", "wait"):
            chart = page.get_by_test_id(f"chart-{name}")
            expect(chart.locator("canvas")).to_have_count(1)
            expect(chart).to_have_attribute("data-points", str(drawn))

        # One running at a global limit of 1: capped, and it says so.
        capped = page.get_by_test_id("chart-capped")
        expect(capped).to_contain_text("At the global limit: 1 of 1 running", timeout=CHART_MS)
        expect(page.get_by_test_id("chart-running")).to_have_class("chart capped-chart")

        # The key's running and limit join the chart once chosen.
        page.get_by_test_id("chart-key").select_option(key)
        legend = page.get_by_test_id("chart-running").locator(".u-legend")
        expect(legend).to_contain_text(f"{key} limit", timeout=CHART_MS)
        expect(capped).to_contain_text(f"{key} is at its limit: 1 of 1 running")
        page.locator(".chart-card").screenshot(
            path=ARTIFACTS / "dashboard-chart.png", animations="disabled"
        )


def test_limits_and_chart_fit_a_phone(live_system: LiveSystem, browser: Browser) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    key = f"a-rather-long-key-name-for-a-phone-{uuid.uuid4().hex[:6]}"
    put_limit(live_system, key, 4, paused=True)
    submit(live_system, "phone-keyed", "true", key)
    with dashboard(browser, live_system, 390, 844, mobile=True) as page:
        row = limit_row(page, key)
        expect(row.get_by_test_id("limit-usage")).to_have_text("0 of 4 running · 1 queued")
        expect(row.get_by_test_id("limit-toggle")).to_be_visible()
        charts = page.get_by_test_id("charts")
        expect(charts).not_to_have_attribute("data-points", "0", timeout=CHART_MS)
        for name in ("running", "finished", "wait"):
            box = page.get_by_test_id(f"chart-{name}").locator("canvas").bounding_box()
            assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390, box
        width: int = page.evaluate("() => document.documentElement.scrollWidth")
        assert width <= 390, f"the page is {width}px wide on a 390px screen"
        page.screenshot(
            path=ARTIFACTS / "dashboard-limits-mobile.png", full_page=True, animations="disabled"
        )


def test_schedule_dialog_sets_and_clears_a_concurrency_key(
    live_system: LiveSystem, browser: Browser
) -> None:
    name = f"keyed-schedule-{uuid.uuid4().hex[:6]}"
    key = f"deploys-{uuid.uuid4().hex[:6]}"
    with dashboard(browser, live_system, 1280, 900) as page:
        page.get_by_test_id("schedule-new").click()
        dialog = page.get_by_test_id("schedule-dialog")
        dialog.get_by_test_id("schedule-name-input").fill(name)
        dialog.get_by_test_id("schedule-command-input").fill("true")
        dialog.get_by_test_id("schedule-by-every").check()
        dialog.get_by_test_id("schedule-every-input").fill("3600")
        dialog.get_by_test_id("schedule-paused-input").check()
        dialog.get_by_test_id("schedule-key-input").fill(key)
        dialog.get_by_test_id("schedule-submit").click()
        expect(dialog).to_be_hidden()
        assert live_system.api("GET", f"/api/schedules/{name}").json()["concurrency_key"] == key

        # Edited: the key shows, and cleared it is gone.
        row = page.get_by_test_id("schedule-row").filter(has_text=name)
        row.get_by_test_id("schedule-edit").click()
        expect(dialog.get_by_test_id("schedule-key-input")).to_have_value(key)
        dialog.get_by_test_id("schedule-key-input").fill("")
        dialog.get_by_test_id("schedule-submit").click()
        expect(dialog).to_be_hidden()
        assert live_system.api("GET", f"/api/schedules/{name}").json()["concurrency_key"] is None
