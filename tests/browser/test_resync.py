"""The dashboard re-reads on `resync`: a change no event announced shows as soon as the
scheduler's listening connection comes back, not at the next safety poll."""

from __future__ import annotations

import time
import uuid

import pytest
from playwright.sync_api import Browser, expect

from tests.browser.helpers import JOB_TIMEOUT_MS, create_via_api, dashboard, expect_live, job_row
from tests.conftest import LiveSystem

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.timeout(120)]

SAFETY_POLL_S = 15.0  # web/refresh.js POLL_MS: the page's own reload, counted from its load
KILL_LISTENER = (
    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
    " WHERE query LIKE 'LISTEN %' AND pid <> pg_backend_pid()"
)


def test_a_resync_reloads_what_no_event_announced(
    live_system: LiveSystem, browser: Browser
) -> None:
    name, renamed = f"quiet-{uuid.uuid4().hex[:8]}", f"renamed-{uuid.uuid4().hex[:8]}"
    loading = time.monotonic()  # the safety poll comes no sooner than this + 15 s
    with dashboard(browser, live_system, 1280, 800) as page:
        expect_live(page)
        job = create_via_api(live_system, name, "true")
        expect(job_row(page, name)).to_have_attribute(
            "data-status", "completed", timeout=JOB_TIMEOUT_MS
        )
        # Only status changes are announced: a rename is a change no event carries.
        live_system.sql("UPDATE jobs SET name = %s WHERE id = %s", (renamed, job["id"]))
        [(killed,)] = live_system.sql(KILL_LISTENER)
        assert killed == 1
        left = loading + SAFETY_POLL_S - 1 - time.monotonic()
        assert left > 3, "the page took too long to load to tell a resync from its poll"
        expect(job_row(page, renamed)).to_be_visible(timeout=left * 1000)
        expect(job_row(page, name)).to_have_count(0)
