"""Faults as part of the spec: kill -9 a runner or a scheduler, restart PostgreSQL,
restart every runner in turn. The commands' own log is the witness."""

import signal
import time
from pathlib import Path

import pytest
from jobsched_launcher import free_port, wait_for

from tests.checker import History, logged_command
from tests.conftest import LiveSystem, start_live_system

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]


def create(system: LiveSystem, name: str, command: str, **extra: object) -> int:
    reply = system.api("POST", "/api/jobs/create", {"name": name, "command": command, **extra})
    assert reply.status_code == 201, reply.text
    job_id: int = reply.json()["id"]
    return job_id


def statuses(system: LiveSystem) -> dict[str, int]:
    return dict(system.sql("SELECT status, count(*) FROM jobs GROUP BY status"))


def alive(pid: int) -> bool:
    """Running, or stopped: not gone, and not a zombie (it may be reaped meanwhile)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_kill_9_of_a_runner_frees_its_slots_within_15_s(
    live_system: LiveSystem, tmp_path: Path
) -> None:
    live_system.stop("runner-2")
    pids = tmp_path / "pids"
    ids = [create(live_system, f"doomed-{i}", f"echo $$ >> {pids}; sleep 60") for i in range(2)]
    for job_id in ids:
        live_system.wait_for_job(job_id, {"running"})
    wait_for(lambda: pids.exists() and len(pids.read_text().split()) == 2, 5, "both commands")
    killed_at = time.monotonic()
    live_system.procs["runner-1"].send_signal(signal.SIGKILL)
    for job_id in ids:
        job = live_system.wait_for_job(job_id, {"failed"}, timeout=20)
        # Killed before its `started` report left it, the attempt ends unacknowledged.
        assert job["reason"] in {"runner lost", "not acknowledged"}
    detected = time.monotonic() - killed_at
    assert detected <= 15.5, f"lost runner detected after {detected:.1f}s"
    # Its commands did not outlive it: the reaper killed their process groups.
    for pid in map(int, pids.read_text().split()):
        wait_for(lambda pid=pid: not alive(pid), 5, f"orphaned command {pid} to die")
    # The slots are free again.
    live_system.start_runner(2)
    assert live_system.wait_for_job(create(live_system, "after", "true"), {"completed"})


def test_kill_9_of_a_scheduler_loses_nothing_and_starts_nothing_twice(
    live_system: LiveSystem, tmp_path: Path
) -> None:
    log = tmp_path / "history.log"
    backup = f"127.0.0.1:{free_port()}"
    live_system.spawn("scheduler-b", "jobsched-scheduler", SCHEDULER_BIND=backup)
    both = f"{live_system.scheduler_addr},{backup}"
    for index in (1, 2):
        live_system.stop(f"runner-{index}")
        live_system.spawn(
            f"runner-{index}", "jobsched-runner", SCHEDULER_ADDR=both, RUNNER_ID=f"runner-{index}"
        )
    live_system.api("PUT", "/api/config", {"max_concurrent_jobs": 4})
    tags = [f"j{i}" for i in range(12)]
    ids = [create(live_system, tag, logged_command(log, tag, "sleep 1.5")) for tag in tags]
    wait_for(lambda: len(History.read(log).starts) >= 4, 10, "four jobs running")
    live_system.procs["scheduler"].send_signal(signal.SIGKILL)
    live_system.procs.pop("scheduler").wait(5)
    for job_id in ids:
        job = live_system.wait_for_job_sql(job_id, timeout=40)
        assert job == "completed", (job_id, job)
    history = History.read(log)
    assert history.duplicate_starts() == []
    assert history.never_started(tags) == []
    assert history.peak_concurrency() <= 4


def test_a_postgres_restart_under_load_loses_nothing(own_postgres: object, tmp_path: Path) -> None:
    server: object = own_postgres
    url = server.get_uri()  # type: ignore[attr-defined]
    system = start_live_system(url, tmp_path)
    log = tmp_path / "history.log"
    try:
        system.api("PUT", "/api/config", {"max_concurrent_jobs": 4})
        tags = [f"p{i}" for i in range(16)]
        for tag in tags:
            create(system, tag, logged_command(log, tag, "sleep 0.7"))
        wait_for(lambda: len(History.read(log).starts) >= 4, 10, "jobs running")
        server.stop()  # type: ignore[attr-defined]
        reply = system.api("GET", "/api/stats")
        assert reply.status_code == 503 and "unavailable" in reply.json()["detail"]
        time.sleep(3)  # the outage itself: jobs finish meanwhile, their results wait
        server.ensure_postgres_running()  # type: ignore[attr-defined]
        back = time.monotonic()
        wait_for(lambda: statuses(system).get("completed") == 16, 30, "all 16 completed")
        assert time.monotonic() - back < 30
        history = History.read(log)
        assert history.duplicate_starts() == [] and history.never_started(tags) == []
        assert history.peak_concurrency() <= 4
        # Every service is still the one that started.
        assert all(proc.poll() is None for proc in system.procs.values())
    finally:
        system.stop_all()


def test_a_rolling_restart_of_every_runner_loses_nothing(
    live_system: LiveSystem, tmp_path: Path
) -> None:
    log = tmp_path / "history.log"
    live_system.api("PUT", "/api/config", {"max_concurrent_jobs": 6})
    tags = [f"r{i}" for i in range(20)]
    ids = [create(live_system, tag, logged_command(log, tag, "sleep 0.5")) for tag in tags]
    for index in (1, 2):
        wait_for(lambda: len(History.read(log).starts) >= 2, 10, "work in progress")
        assert live_system.stop(f"runner-{index}") == 0
        live_system.start_runner(index)
    for job_id in ids:
        assert live_system.wait_for_job_sql(job_id, timeout=40) == "completed"
    history = History.read(log)
    assert history.duplicate_starts() == [] and history.never_started(tags) == []
