"""Search, delete, bulk cancel and retry and the retention sweep through the whole system:
the REST API, jobsctl and the counters behind `/api/stats`."""

from pathlib import Path
from typing import Any

import pytest
from jobsched_launcher import wait_for

from tests.conftest import LiveSystem, start_live_system
from tests.e2e.test_cli import as_json, jobsctl, ok

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


def create(system: LiveSystem, name: str, command: str = "true") -> int:
    reply = system.api("POST", "/api/jobs/create", {"name": name, "command": command})
    assert reply.status_code == 201, reply.text
    job_id: int = reply.json()["id"]
    return job_id


def stats_match_rows(system: LiveSystem) -> None:
    stats = system.api("GET", "/api/stats").json()
    rows = dict(system.sql("SELECT status, count(*) FROM jobs GROUP BY 1"))
    for status in ("queued", "scheduled", "running", "completed", "failed", "cancelled"):
        assert stats[status] == rows.get(status, 0), (stats, rows)
    assert stats["total"] == sum(rows.values())


def test_search_bulk_actions_and_delete_over_rest(live_system: LiveSystem) -> None:
    system = live_system
    assert system.api("PUT", "/api/config", {"paused": True}).status_code == 200
    backups = [create(system, f"backup-{i}", f"pg_dump db{i}") for i in range(3)]
    other = create(system, "report", "echo BACKUP done")
    lone = create(system, "lone", "true")

    found = system.api("GET", "/api/jobs", params={"q": "Backup", "limit": 2})
    assert [j["id"] for j in found.json()] == [other, backups[2]]
    assert "q=Backup" in found.headers["link"]
    rest = system.api("GET", found.links["next"]["url"]).json()
    assert [j["id"] for j in rest] == [backups[1], backups[0]]
    assert system.api("GET", "/api/jobs", params={"q": "x" * 256}).status_code == 422

    cancelled = system.api("POST", "/api/jobs/cancel", {"ids": [*backups, 999_999]})
    assert cancelled.json() == {"changed": 3}
    retried = system.api("POST", "/api/jobs/retry", {"filter": {"status": "cancelled", "q": "0"}})
    assert retried.json() == {"changed": 1}  # backup-0 (pg_dump db0)
    by_filter = system.api("POST", "/api/jobs/cancel", {"filter": {"q": "backup"}})
    assert by_filter.json() == {"changed": 2}  # backup-0 again, and report
    bad: list[dict[str, Any]] = [{}, {"ids": [1], "filter": {}}, {"ids": []}, {"ids": [0]}]
    for body in bad:
        assert system.api("POST", "/api/jobs/cancel", body).status_code == 422, body

    refused = system.api("DELETE", f"/api/jobs/{lone}")
    assert refused.status_code == 409 and "queued" in refused.json()["detail"]
    assert system.api("DELETE", f"/api/jobs/{backups[0]}").status_code == 204
    assert system.api("GET", f"/api/jobs/{backups[0]}").status_code == 404
    assert system.api("GET", f"/api/jobs/{backups[0]}/attempts").status_code == 404
    assert system.api("DELETE", f"/api/jobs/{backups[0]}").status_code == 404
    stats_match_rows(system)
    assert system.api("GET", "/api/stats").json()["cancelled"] == 3


def test_jobsctl_cancels_retries_deletes_and_searches(live_system: LiveSystem) -> None:
    system = live_system
    url = system.gateway_url
    ok(system, "pause")
    ids = [create(system, f"nightly-{i}", "true") for i in range(3)]
    create(system, "hourly", "true")
    listed = as_json(system, "list", "--search", "NIGHTLY")
    assert [j["id"] for j in listed] == ids[::-1]
    assert "nightly-1" in ok(system, "list", "--search", "ightly-1")

    assert ok(system, "cancel", str(ids[0]), str(ids[1])).strip() == "cancelled 2 jobs"
    assert ok(system, "cancel", "--search", "nightly").strip() == "cancelled 1 job"
    assert as_json(system, "retry", "--status", "cancelled", "--search", "-2") == {"changed": 1}
    assert ok(system, "retry", str(ids[0]), str(ids[1])).strip() == "queued 2 jobs again"
    assert ok(system, "cancel", str(ids[0])).strip() == f"job {ids[0]} cancelled"
    assert ok(system, "delete", str(ids[0])).strip() == f"job {ids[0]} deleted"
    refused = jobsctl(url, "delete", str(ids[1]))
    assert refused.returncode == 2 and "only a finished job" in refused.stderr
    both = jobsctl(url, "cancel", str(ids[1]), "--status", "queued")
    assert both.returncode == 2 and "not both" in both.stderr
    assert jobsctl(url, "retry").returncode == 2
    stats_match_rows(system)


def test_retention_deletes_old_finished_jobs(database_url: str, tmp_path: Path) -> None:
    system = start_live_system(
        database_url,
        tmp_path,
        runners=1,
        RETENTION_COMPLETED_DAYS="7",
        RETENTION_FAILED_DAYS="30",
        RETENTION_INTERVAL_SECONDS="0.5",
    )
    try:
        # One statement: the sweep, already running, must not see the jobs before their
        # attempts.
        system.sql(
            "WITH made AS (INSERT INTO jobs (name, command, status, finished_at) "
            "SELECT s || '-' || age || '-' || i, 'true', s, now() - make_interval(days => age) "
            "FROM unnest(ARRAY['completed', 'failed', 'cancelled']) s, "
            "unnest(ARRAY[1, 10, 40]) age, generate_series(1, 700) i RETURNING id) "
            "INSERT INTO job_attempts (job_id, attempt, runner_id, output) "
            "SELECT id, 1, 'r', 'out' FROM made"
        )

        def swept() -> bool:
            left = dict(system.sql("SELECT status, count(*) FROM jobs GROUP BY 1"))
            return left == {"completed": 700, "failed": 1400, "cancelled": 2100}

        wait_for(swept, 30, "the retention sweep")
        orphans = "SELECT count(*) FROM job_attempts WHERE job_id NOT IN (SELECT id FROM jobs)"
        assert system.sql(orphans) == [(0,)]
        stats_match_rows(system)
        # Logged after each batch's commit, and written to the file in batches: it may
        # come a moment after the rows are gone.
        log = tmp_path / "logs" / "scheduler.log"
        line = "Retention: deleted 500 completed jobs finished before"
        wait_for(lambda: line in log.read_text(), 10, "the sweep's log line")
    finally:
        system.stop_all()
