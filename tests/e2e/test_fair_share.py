"""The fair turn across concurrency keys on the whole system: a key with a big backlog
cannot starve a key that queues a few jobs later."""

import time
from pathlib import Path

import pytest
from jobsched_launcher import wait_for

from tests.checker import History, logged_command
from tests.conftest import LiveSystem

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


def test_a_late_key_is_not_starved_by_a_backlog(live_system: LiveSystem, tmp_path: Path) -> None:
    log = tmp_path / "history.log"
    assert live_system.api("PUT", "/api/config", {"max_concurrent_jobs": 4}).status_code == 200
    backlog = [
        {"name": f"a-{i}", "command": "sleep 0.2", "concurrency_key": "A"} for i in range(10_000)
    ]
    for start in range(0, len(backlog), 1000):
        reply = live_system.api("POST", "/api/jobs/bulk", {"jobs": backlog[start : start + 1000]})
        assert reply.status_code == 201, reply.text
    wait_for(
        lambda: live_system.api("GET", "/api/stats").json()["running"] == 4, 10, "A's jobs running"
    )
    late = [
        {"name": f"b-{i}", "command": logged_command(log, f"b-{i}", "true"), "concurrency_key": "B"}
        for i in range(10)
    ]
    created = time.time()
    assert live_system.api("POST", "/api/jobs/bulk", {"jobs": late}).status_code == 201
    wait_for(lambda: len(History.read(log).starts) == 10, 3, "B's 10 jobs all to start")
    last_start = max(at for starts in History.read(log).starts.values() for at in starts)
    assert last_start - created <= 3.0
    queued = live_system.api("GET", "/api/limits/A").json()["queued"]
    assert queued > 9000, queued  # A's backlog was still there: B did not wait behind it
