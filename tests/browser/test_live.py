"""Live updates in a real Chromium: the page follows the scheduler's events (server-sent
events from the gateway) instead of polling, tails a running job's output, and
reconnects by itself after the gateway restarts."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from jobsched_launcher import http_ok, wait_for
from playwright.sync_api import Browser, Page, Request, expect

from tests.browser.helpers import (
    ARTIFACTS,
    create_via_api,
    dashboard,
    epoch,
    expect_live,
    job_row,
    live_status,
)
from tests.conftest import LiveSystem, start_live_system

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.timeout(150)]

LIVE_MS = 1_500  # a change shows within this long
LIVE_S = LIVE_MS / 1000

# Records, in the page, when each row first shows each status and each text the output
# panel shows: the test compares those times with the database's.
RECORD = """() => {
  window.__rows = {};
  window.__outputs = [];
  const seen = () => {
    for (const tr of document.querySelectorAll("#jobs-body tr[data-job-id]")) {
      const key = `${tr.dataset.jobId}:${tr.dataset.status}`;
      if (!(key in window.__rows)) window.__rows[key] = Date.now();
    }
    const text = document.getElementById("detail-output").textContent;
    const last = window.__outputs[window.__outputs.length - 1];
    if (!last || last.text !== text) window.__outputs.push({ text, at: Date.now() });
  };
  new MutationObserver(seen).observe(document.body, {
    subtree: true, childList: true, characterData: true,
    attributes: true, attributeFilter: ["data-status"],
  });
  seen();
}"""


def row_seen(page: Page, job_id: int, status: str) -> float:
    """When the page first showed the job's row with this status (epoch seconds)."""
    at: float = page.evaluate(f"() => window.__rows['{job_id}:{status}']") / 1000
    return at


def api_requests(page: Page) -> list[str]:
    """The page's requests to the REST API from now on, but not to the event stream."""
    urls: list[str] = []

    def record(request: Request) -> None:
        if "/api/" in request.url and "/api/events" not in request.url:
            urls.append(request.url.split("/api/", 1)[1])

    page.on("request", record)
    return urls


def test_table_and_stats_follow_events_without_polling(
    live_system: LiveSystem, browser: Browser
) -> None:
    name = f"live-{uuid.uuid4().hex[:8]}"
    with dashboard(browser, live_system, 1280, 800) as page:
        expect_live(page)
        page.evaluate(RECORD)
        requests = api_requests(page)

        created = create_via_api(live_system, name, "sleep 1; echo done")
        row = job_row(page, name)
        expect(row).to_have_attribute("data-status", "running", timeout=LIVE_MS)
        expect(row).to_have_attribute("data-status", "completed", timeout=1_000 + LIVE_MS)
        expect(row.get_by_test_id("row-exit")).to_have_text("0")
        stats = live_system.api("GET", "/api/stats").json()
        expect(page.get_by_test_id("stat-completed")).to_have_text(
            str(stats["completed"]), timeout=LIVE_MS
        )
        expect(page.get_by_test_id("stat-running")).to_have_text(str(stats["running"]))
        during = list(requests)

        # Each change showed within LIVE_MS of the database's time for it.
        job: dict[str, Any] = live_system.api("GET", f"/api/jobs/{created['id']}").json()
        assert job["status"] == "completed", job
        for status, changed_at in (
            ("queued", job["created_at"]),
            ("running", job["last_run"]),  # claimed: the status changes then
            ("completed", job["finished_at"]),
        ):
            if status == "queued" and f"{job['id']}:queued" not in page.evaluate(
                "() => Object.keys(window.__rows)"
            ):
                continue  # claimed before the page showed it queued: fine
            lag = row_seen(page, job["id"], status) - epoch(changed_at)
            assert lag <= LIVE_S, f"{status} showed {lag:.2f}s after the change"

        # Only what the events called for: one page load for the new job, a row or
        # two for its changes; stats came with the events. A 15 s safety poll may
        # add one round (jobs and stats).
        lists = [u for u in during if u.startswith("jobs?")]
        rows = [u for u in during if u.startswith("jobs/")]
        polls = [u for u in during if u.startswith("stats")]
        assert len(lists) <= 3 and len(rows) <= 4 and len(polls) <= 1, during


def test_detail_panel_tails_a_running_job(live_system: LiveSystem, browser: Browser) -> None:
    name = f"tail-{uuid.uuid4().hex[:8]}"
    command = "for i in 1 2 3 4 5 6 7; do echo line-$i; sleep 0.3; done; echo all-done"
    with dashboard(browser, live_system, 1280, 800) as page:
        expect_live(page)
        page.evaluate(RECORD)
        job_id = create_via_api(live_system, name, command)["id"]
        row = job_row(page, name)
        expect(row).to_have_attribute("data-status", "running", timeout=LIVE_MS)
        row.click()
        detail = page.get_by_test_id("job-detail")
        output = detail.get_by_test_id("detail-output")
        expect(output).to_contain_text("line-1", timeout=LIVE_MS)
        expect(detail.get_by_test_id("detail-status")).to_have_text("completed", timeout=5_000)
        expect(output).to_contain_text("all-done", timeout=LIVE_MS)

        # Lines appeared while it ran: a partial output, shown before the job finished.
        job = live_system.api("GET", f"/api/jobs/{job_id}").json()
        finished = epoch(job["finished_at"])
        outputs = page.evaluate("() => window.__outputs")
        partial = [o for o in outputs if "line-1" in o["text"] and "all-done" not in o["text"]]
        assert partial, outputs
        assert partial[0]["at"] / 1000 < finished, (partial, job)
        assert "line-7" not in partial[0]["text"], partial


def test_page_reconnects_after_the_gateway_restarts(
    live_system: LiveSystem, browser: Browser
) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    name = f"after-restart-{uuid.uuid4().hex[:8]}"
    with dashboard(browser, live_system, 1280, 800) as page:
        expect_live(page)

        # An open event stream does not hold the gateway's shutdown.
        started = time.monotonic()
        live_system.stop("gateway")
        took = time.monotonic() - started
        assert took < 4, f"the gateway took {took:.1f}s to stop with a stream open"
        status = live_status(page)
        expect(status).to_have_attribute("data-state", "reconnecting", timeout=5_000)
        expect(status).to_have_text("Reconnecting…")
        page.screenshot(path=ARTIFACTS / "dashboard-reconnecting.png", animations="disabled")

        live_system.start_gateway()
        wait_for(lambda: http_ok(f"{live_system.gateway_url}/healthz"), 30, "gateway")
        expect_live(page, timeout=10_000)

        create_via_api(live_system, name, "echo hello-after-restart")
        row = job_row(page, name)
        expect(row).to_be_visible(timeout=LIVE_MS)
        expect(row).to_have_attribute("data-status", "completed", timeout=3 * LIVE_MS)
        expect(page.get_by_test_id("banner")).to_be_hidden()
        page.screenshot(path=ARTIFACTS / "dashboard-live.png", animations="disabled")


def test_event_stream_takes_the_session_cookie_not_a_token_in_its_url(
    database_url: str, tmp_path: Path, browser: Browser
) -> None:
    """EventSource cannot send headers: with API_TOKEN set, the page logs in and the
    stream's request carries an HttpOnly cookie, never the token in its URL."""
    token = f"token-{uuid.uuid4().hex}"
    system = start_live_system(database_url, tmp_path, runners=1, API_TOKEN=token)
    try:
        no_header = {"Authorization": ""}
        for path in ("/api/events", "/api/jobs"):
            reply = system.api("GET", f"{path}?token={token}", headers=no_header)
            assert reply.status_code == 401, reply.text
        name = f"with-token-{uuid.uuid4().hex[:8]}"
        streams: list[str] = []
        with dashboard(browser, system, 1280, 800, token=token) as page:
            page.on("request", lambda r: streams.append(r.url) if "api/events" in r.url else None)
            page.reload()  # the stream's requests from the start, as recorded
            expect_live(page)
            create_via_api(system, name, "echo hello-with-a-token")
            row = job_row(page, name)
            expect(row).to_have_attribute("data-status", "completed", timeout=3 * LIVE_MS)
            expect(page.get_by_test_id("auth-dialog")).to_be_hidden()
            (cookie,) = page.context.cookies()
            assert cookie["name"] == "jobsched_session" and cookie["path"] == "/api/events"
            assert cookie["httpOnly"] and cookie["sameSite"] == "Strict", cookie
            assert token not in cookie["value"]
            assert page.evaluate("() => document.cookie") == ""
        assert streams and not any("token" in url for url in streams), streams
    finally:
        system.stop_all()
