"""The dashboard's search box and checkboxes: a search narrows the table to matching
jobs, selected jobs are cancelled and retried at once, and a row's checkbox never opens
the job."""

import pytest
from playwright.sync_api import Browser, expect

from tests.browser.helpers import create_via_api, dashboard, job_row, toasts
from tests.conftest import LiveSystem

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]


def test_search_then_cancel_and_retry_the_selected_jobs(
    browser: Browser, live_system: LiveSystem
) -> None:
    system = live_system
    assert system.api("PUT", "/api/config", {"paused": True}).status_code == 200
    for i in range(3):
        create_via_api(system, f"nightly-backup-{i}", f"pg_dump db{i}")
    create_via_api(system, "report", "echo report")
    with dashboard(browser, system, 1280, 900) as page:
        rows = page.get_by_test_id("job-row")
        expect(rows).to_have_count(4)
        page.get_by_test_id("job-search").fill("BACKUP")
        expect(rows).to_have_count(3)
        expect(job_row(page, "report")).to_have_count(0)

        job_row(page, "nightly-backup-0").get_by_test_id("row-select").check()
        expect(page.get_by_test_id("job-detail")).to_be_hidden()
        job_row(page, "nightly-backup-2").get_by_test_id("row-select").check()
        expect(page.get_by_test_id("selected-count")).to_have_text("2 jobs selected")
        page.get_by_test_id("cancel-selected").click()
        expect(toasts(page, "success").last).to_contain_text("Cancelled 2 jobs")
        expect(page.get_by_test_id("bulk-bar")).to_be_hidden()
        for i, status in ((0, "cancelled"), (1, "queued"), (2, "cancelled")):
            row = job_row(page, f"nightly-backup-{i}")
            expect(row.get_by_test_id("row-status")).to_have_text(status)

        # Every job on the page: the queued one is passed over by a retry.
        page.get_by_test_id("select-all").check()
        expect(page.get_by_test_id("selected-count")).to_have_text("3 jobs selected")
        page.get_by_test_id("retry-selected").click()
        expect(toasts(page, "success").last).to_contain_text(
            "Queued again 2 jobs (1 job passed over)"
        )
        for i in range(3):
            row = job_row(page, f"nightly-backup-{i}")
            expect(row.get_by_test_id("row-status")).to_have_text("queued")
        expect(page.get_by_test_id("row-select").first).not_to_be_checked()

        page.get_by_test_id("job-search").fill("no such job")
        expect(rows).to_have_count(0)
        expect(page.get_by_test_id("jobs-empty")).to_have_text("No jobs match “no such job”.")
        page.get_by_test_id("job-search").fill("")
        expect(rows).to_have_count(4)
