"""`jobsctl limits ...`, `submit --key` and `schedule create --key` against the whole
system: pause and resume keep a key's limit, and the key's jobs follow."""

import pytest

from tests.conftest import LiveSystem
from tests.e2e.test_cli import as_json, jobsctl, ok

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


def test_a_keys_limit_from_the_command_line(live_system: LiveSystem) -> None:
    assert ok(live_system, "limits", "list") == "no keys with a limit or with jobs\n"
    assert ok(live_system, "limits", "set", "tenant/42", "2") == "key tenant/42: limit 2\n"
    paused = ok(live_system, "limits", "pause", "tenant/42")
    assert paused == "key tenant/42: limit 2, paused\n"
    job = as_json(live_system, "submit", "held", "true", "--key", "tenant/42")
    assert (job["status"], job["concurrency_key"]) == ("queued", "tenant/42")
    table = ok(live_system, "limits", "list").splitlines()
    assert [line.split() for line in table] == [
        ["KEY", "RUNNING/LIMIT", "QUEUED", "STATE"],
        ["tenant/42", "0/2", "1", "paused"],
    ]
    assert ok(live_system, "limits", "resume", "tenant/42") == "key tenant/42: limit 2\n"
    live_system.wait_for_job(job["id"], {"completed"})
    waited = jobsctl(
        live_system.gateway_url, "submit", "w", "echo hi", "--key", "tenant/42", "--wait"
    )
    assert (waited.returncode, waited.stdout) == (0, "hi\n"), waited.stderr
    (listed,) = as_json(live_system, "limits", "list")
    assert listed == {
        "key": "tenant/42",
        "max_concurrent_jobs": 2,
        "paused": False,
        "running": 0,
        "queued": 0,
    }
    assert "limit removed" in ok(live_system, "limits", "rm", "tenant/42")
    again = jobsctl(live_system.gateway_url, "limits", "rm", "tenant/42")
    assert again.returncode == 2 and "has no limit" in again.stderr, again.stderr
    bad = jobsctl(live_system.gateway_url, "limits", "set", "k", "0")
    assert bad.returncode == 2 and "max_concurrent_jobs" in bad.stderr, bad.stderr


def test_a_schedule_made_with_a_key(live_system: LiveSystem) -> None:
    argv = ["schedule", "create", "reports", "true", "--every", "3600", "--key", "r"]
    assert as_json(live_system, *argv)["concurrency_key"] == "r"
    assert as_json(live_system, "schedule", "trigger", "reports")["concurrency_key"] == "r"
