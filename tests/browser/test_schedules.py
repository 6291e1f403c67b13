"""The schedules panel in a real Chromium: create, edit, pause, resume, trigger and
delete a schedule through the page; a schedule that fires by itself shows its latest
job without a reload; and the panel and its dialog fit a phone."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from playwright.sync_api import Browser, Dialog, Locator, Page, expect

from tests.browser.helpers import (
    ARTIFACTS,
    JOB_TIMEOUT_MS,
    dashboard,
    expect_live,
    toasts,
)
from tests.conftest import LiveSystem

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.timeout(150)]

FIRE_S = 2  # the interval of the schedule that fires by itself


def schedule_row(page: Page, name: str) -> Locator:
    name_cell = page.get_by_test_id("schedule-name").get_by_text(name, exact=True)
    return page.get_by_test_id("schedule-row").filter(has=name_cell)


def schedule_of(system: LiveSystem, name: str) -> dict[str, Any]:
    reply = system.api("GET", f"/api/schedules/{name}")
    assert reply.status_code == 200, reply.text
    schedule: dict[str, Any] = reply.json()
    return schedule


def create_schedule_via_api(system: LiveSystem, **body: Any) -> dict[str, Any]:
    reply = system.api("POST", "/api/schedules", body)
    assert reply.status_code == 201, reply.text
    schedule: dict[str, Any] = reply.json()
    return schedule


def test_schedule_panel_creates_edits_pauses_triggers_and_deletes(
    live_system: LiveSystem, browser: Browser
) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    name = f"team/nightly-{uuid.uuid4().hex[:6]}"  # a / in it: every route still finds it
    with dashboard(browser, live_system, 1280, 900) as page:
        expect(page.get_by_test_id("schedules-empty")).to_be_visible()
        page.get_by_test_id("schedule-new").click()
        dialog = page.get_by_role("dialog", name="New schedule")
        expect(dialog).to_be_visible()
        expect(dialog.get_by_label("Name")).to_be_focused()

        # A cron the API refuses: its message shows in the dialog, which stays open.
        dialog.get_by_label("Name").fill(name)
        dialog.get_by_label("Command").fill("echo from-the-schedule")
        dialog.get_by_label("Cron expression", exact=True).fill("not a cron")
        dialog.get_by_label("Time zone").fill("Europe/Berlin")
        dialog.get_by_test_id("schedule-submit").click()
        error = dialog.get_by_test_id("schedule-error")
        expect(error).to_contain_text("Could not create the schedule: cron:")
        cron = dialog.get_by_label("Cron expression", exact=True)
        expect(cron).to_have_attribute("aria-invalid", "true")
        expect(cron).to_be_focused()
        expect(dialog).to_be_visible()
        assert live_system.api("GET", f"/api/schedules/{name}").status_code == 404

        # Created: 03:00 every day in Berlin, which is 03:00 GMT+1 in November.
        cron.fill("0 3 * * *")
        expect(cron).not_to_have_attribute("aria-invalid", "true")
        dialog.get_by_test_id("schedule-submit").click()
        expect(dialog).to_be_hidden()
        expect(
            toasts(page, "success").filter(has_text=f"Created schedule “{name}”")
        ).to_be_visible()
        row = schedule_row(page, name)
        expect(row.get_by_test_id("schedule-command")).to_have_text("echo from-the-schedule")
        expect(row.get_by_test_id("schedule-repeats")).to_have_text("0 3 * * *")
        expect(row.get_by_test_id("schedule-timezone")).to_have_text("Europe/Berlin")
        expect(row.get_by_test_id("schedule-state")).to_have_text("active")
        saved = schedule_of(live_system, name)
        assert saved["cron"] == "0 3 * * *" and saved["timezone"] == "Europe/Berlin", saved
        wall_time = saved["next_run_at"][11:19]  # in the schedule's zone, as the page shows it
        assert wall_time == "03:00:00", saved
        expect(row.get_by_test_id("schedule-next")).to_contain_text("03:00:00")
        expect(row.get_by_test_id("schedule-next-in")).to_contain_text("in ")
        expect(page.get_by_test_id("schedules-empty")).to_be_hidden()

        # Edited: now every hour, at priority 4; the name stays.
        row.get_by_test_id("schedule-edit").click()
        dialog = page.get_by_role("dialog", name=f"Edit schedule “{name}”")
        expect(dialog.get_by_label("Name")).to_have_value(name)
        expect(dialog.get_by_label("Name")).not_to_be_editable()
        expect(dialog.get_by_label("Cron expression", exact=True)).to_have_value("0 3 * * *")
        dialog.get_by_label("Every so many seconds").check()
        expect(dialog.get_by_label("Cron expression", exact=True)).to_be_hidden()
        dialog.get_by_label("Every (seconds)").fill("3600")
        dialog.get_by_label("Priority").fill("4")
        dialog.get_by_test_id("schedule-submit").click()
        expect(dialog).to_be_hidden()
        expect(row.get_by_test_id("schedule-repeats")).to_have_text("every 1h")
        saved = schedule_of(live_system, name)
        assert saved["every_seconds"] == 3600 and saved["cron"] is None, saved
        assert saved["priority"] == 4 and saved["timezone"] == "Europe/Berlin", saved

        # Paused, then resumed.
        toggle = row.get_by_test_id("schedule-toggle")
        expect(toggle).to_have_text("Pause")
        toggle.click()
        expect(row.get_by_test_id("schedule-state")).to_have_text("paused")
        expect(row.get_by_test_id("schedule-next-in")).to_have_text("paused")
        expect(toggle).to_have_text("Resume")
        saved = schedule_of(live_system, name)
        assert saved["paused"] is True and saved["next_run_at"] is None, saved
        toggle.click()
        expect(row.get_by_test_id("schedule-state")).to_have_text("active")
        expect(row.get_by_test_id("schedule-next-in")).to_contain_text("in ")
        assert schedule_of(live_system, name)["paused"] is False

        # Run now: a job named after the schedule appears and runs.
        row.get_by_test_id("schedule-trigger").click()
        toast = toasts(page, "success").filter(has_text=f"Schedule “{name}” made job")
        expect(toast).to_be_visible()
        made = page.get_by_test_id("job-row").filter(has_text=f"{name}@")
        expect(made).to_have_count(1)
        expect(made.get_by_test_id("row-status")).to_have_text("completed", timeout=JOB_TIMEOUT_MS)
        last_job = schedule_of(live_system, name)["last_job_id"]
        if last_job is not None:
            expect(row.get_by_test_id("schedule-last-job")).to_have_text(f"#{last_job}")
        page.screenshot(path=ARTIFACTS / "dashboard-schedules.png", full_page=True)

        # Delete asks first: declined, the schedule stays; accepted, it goes.
        asked: list[str] = []

        def answer(accept: bool) -> Any:
            def handle(confirm: Dialog) -> None:
                asked.append(confirm.message)
                if accept:
                    confirm.accept()
                else:
                    confirm.dismiss()

            return handle

        page.once("dialog", answer(False))
        row.get_by_test_id("schedule-delete").click()
        expect(row).to_be_visible()
        assert schedule_of(live_system, name)["name"] == name
        page.once("dialog", answer(True))
        row.get_by_test_id("schedule-delete").click()
        expect(
            toasts(page, "success").filter(has_text=f"Deleted schedule “{name}”")
        ).to_be_visible()
        expect(row).to_have_count(0)
        expect(page.get_by_test_id("schedules-empty")).to_be_visible()
        assert live_system.api("GET", f"/api/schedules/{name}").status_code == 404
        assert len(asked) == 2 and name in asked[0], asked


def test_schedule_list_follows_its_fires(live_system: LiveSystem, browser: Browser) -> None:
    """A schedule firing every FIRE_S: its last job moves on without any reload."""
    name = f"tick-{uuid.uuid4().hex[:6]}"
    with dashboard(browser, live_system, 1280, 900) as page:
        expect_live(page)
        create_schedule_via_api(live_system, name=name, command="echo tick", every_seconds=FIRE_S)
        row = schedule_row(page, name)
        expect(row.get_by_test_id("schedule-repeats")).to_have_text(f"every {FIRE_S}s")
        link = row.get_by_test_id("schedule-last-job")
        expect(link).to_be_visible(timeout=3 * FIRE_S * 1000)
        first = link.inner_text()
        expect(link).not_to_have_text(first, timeout=3 * FIRE_S * 1000)

        # The link opens the job it names: one the schedule made at a fire time.
        link.click()
        detail = page.get_by_test_id("job-detail")
        expect(detail).to_be_visible()
        expect(detail.get_by_test_id("detail-name")).to_contain_text(f"{name}@")
        expect(detail.get_by_test_id("detail-command")).to_have_text("echo tick")
        page.keyboard.press("Escape")
        reply = live_system.api("DELETE", f"/api/schedules/{name}")
        assert reply.status_code == 204, reply.text


def test_schedules_fit_a_phone(live_system: LiveSystem, browser: Browser) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    suffix = uuid.uuid4().hex[:6]
    create_schedule_via_api(
        live_system,
        name=f"a-schedule-with-a-rather-long-name-{suffix}",
        command="pg_dump --format=custom --file=/backups/app.dump app && echo done",
        cron="*/15 * * * *",
        timezone="America/New_York",
    )
    create_schedule_via_api(
        live_system, name=f"paused-{suffix}", command="true", every_seconds=90, paused=True
    )
    with dashboard(browser, live_system, 390, 844, mobile=True) as page:
        rows = page.get_by_test_id("schedule-row")
        expect(rows).to_have_count(2)
        for action in ("edit", "toggle", "trigger", "delete"):
            expect(rows.first.get_by_test_id(f"schedule-{action}")).to_be_visible()
        page.get_by_test_id("create-more").get_by_text("More options").click()
        expect(page.get_by_test_id("job-run-at-input")).to_be_visible()
        width: int = page.evaluate("() => document.documentElement.scrollWidth")
        assert width <= 390, f"the page is {width}px wide on a 390px screen"
        page.screenshot(
            path=ARTIFACTS / "dashboard-schedules-mobile.png", full_page=True, animations="disabled"
        )

        page.get_by_test_id("schedule-new").click()
        dialog = page.get_by_test_id("schedule-dialog")
        expect(dialog).to_be_visible()
        box = dialog.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390, box
        expect(dialog.get_by_test_id("schedule-submit")).to_be_in_viewport()
        page.keyboard.press("Escape")
        expect(dialog).to_be_hidden()
        expect(page.get_by_test_id("schedule-new")).to_be_focused()

        # Nor on a tablet, where the list would otherwise scroll inside its card.
        for tablet in (820, 1024):
            page.set_viewport_size({"width": tablet, "height": 900})
            widths: list[int] = page.evaluate(
                """() => [document.documentElement.scrollWidth,
                          document.querySelector("#schedules-table").parentElement.scrollWidth,
                          document.querySelector("#schedules-table").parentElement.clientWidth]"""
            )
            assert widths[0] <= tablet and widths[1] <= widths[2], (tablet, widths)
