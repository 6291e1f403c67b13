"""Jobs that misbehave: a huge output, a fork bomb, a memory hog, and a runner cut off
from its scheduler. The runner and the scheduler must stay healthy and bounded."""

import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from jobsched_launcher import wait_for

from tests.conftest import LiveSystem, start_live_system

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for {pid}")


class PeakRss:
    """Samples a process's resident memory every 20 ms in a thread."""

    def __init__(self, pid: int):
        self.pid = pid
        self.baseline = rss_mb(pid)
        self.peak = self.baseline
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, rss_mb(self.pid))

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak - self.baseline


def create(system: LiveSystem, name: str, command: str) -> int:
    reply = system.api("POST", "/api/jobs/create", {"name": name, "command": command})
    assert reply.status_code == 201, reply.text
    job_id: int = reply.json()["id"]
    return job_id


def test_a_job_printing_1_gib_keeps_memory_bounded(live_system: LiveSystem) -> None:
    live_system.stop("runner-2")
    runner = PeakRss(live_system.procs["runner-1"].pid)
    scheduler = PeakRss(live_system.procs["scheduler"].pid)
    job_id = create(live_system, "firehose", "head -c 1073741824 /dev/zero | tr '\\0' a")
    job = live_system.wait_for_job(job_id, {"completed", "failed"}, timeout=120)
    runner_growth, scheduler_growth = runner.stop(), scheduler.stop()
    assert job["status"] == "completed", job
    output = live_system.api("GET", f"/api/jobs/{job_id}/output").json()
    assert output["truncated"] and len(output["output"]) == 1024 * 1024
    assert set(output["output"]) == {"a"}
    print(
        f"RSS growth for 1 GiB of output: runner {runner_growth:.1f} MB, "
        f"scheduler {scheduler_growth:.1f} MB"
    )
    assert runner_growth < 50 and scheduler_growth < 50


@pytest.fixture
def bounded_system(database_url: str, tmp_path: Path) -> Iterator[LiveSystem]:
    system = start_live_system(
        database_url, tmp_path, runners=1, JOB_MAX_PROCESSES="40", JOB_MEMORY_LIMIT_MB="256"
    )
    try:
        yield system
    finally:
        system.stop_all()


def test_a_fork_bomb_fails_and_the_runner_stays_healthy(bounded_system: LiveSystem) -> None:
    job_id = create(bounded_system, "bomb", "bomb() { bomb | bomb; }; bomb")
    job = bounded_system.wait_for_job(job_id, {"completed", "failed"}, timeout=30)
    assert job["status"] == "failed" and job["reason"] == "too many processes (over 40)"
    after = create(bounded_system, "after-bomb", "echo still here")
    assert bounded_system.wait_for_job(after, {"completed"})["status"] == "completed"


def test_a_memory_hog_fails_and_the_runner_stays_healthy(bounded_system: LiveSystem) -> None:
    hog = f"{sys.executable} -c 'x = bytearray(1024 ** 3)'"
    job_id = create(bounded_system, "hog", hog)
    job = bounded_system.wait_for_job(job_id, {"completed", "failed"}, timeout=30)
    assert job["status"] == "failed" and job["exit_code"] == 1
    output = bounded_system.api("GET", f"/api/jobs/{job_id}/output").json()["output"]
    assert "MemoryError" in output
    after = create(bounded_system, "after-hog", "echo still here")
    assert bounded_system.wait_for_job(after, {"completed"})["status"] == "completed"


def test_a_cut_off_runner_stops_its_job_before_the_lease_expires(
    live_system: LiveSystem, tmp_path: Path
) -> None:
    pid_file = tmp_path / "pid"
    job_id = create(live_system, "cut-off", f"echo $$ > {pid_file}; exec sleep 120")
    live_system.wait_for_job(job_id, {"running"})
    wait_for(pid_file.exists, 5, "the command to start")
    pid = int(pid_file.read_text())
    scheduler = live_system.procs["scheduler"]
    scheduler.send_signal(signal.SIGSTOP)  # alive but silent: no renewals, no sweeps
    try:
        stopped = time.monotonic()
        (lease_expires,) = live_system.sql(
            "SELECT extract(epoch FROM lease_expires_at - now()) FROM jobs WHERE id = %s",
            (job_id,),
        )[0]
        wait_for(lambda: not Path(f"/proc/{pid}").exists(), 15, "the runner to stop the job")
        died_after = time.monotonic() - stopped
        assert died_after < float(lease_expires), (died_after, lease_expires)
    finally:
        scheduler.send_signal(signal.SIGCONT)
    job = live_system.wait_for_job(job_id, {"failed"}, timeout=20)
    assert job["reason"] in {"lease lost", "runner lost"}
