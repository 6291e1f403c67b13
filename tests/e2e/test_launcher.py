"""`jobsched-launcher` (`make run`) as a user meets it: a killed runner comes back, its
jobs end or are retried, and Ctrl+C or SIGTERM stops everything in order, losing no
result and leaving no process behind."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from jobsched_launcher import clean_env, embedded_postgres, free_port, http_ok, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(150)]

BIN = Path(sys.executable).parent
DRAIN_SECONDS = 5
STARTED = re.compile(r"launcher INFO (\S+) started \(pid (\d+)\)")


@dataclass
class Launcher:
    proc: subprocess.Popen[bytes]
    log: Path
    data_dir: Path
    gateway_url: str
    # In the environment of every process the launcher starts, however far down.
    tag: str

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def started(self) -> list[tuple[str, int]]:
        return [(name, int(pid)) for name, pid in STARTED.findall(self.output())]

    def pid_of(self, name: str) -> int:
        return [pid for service, pid in self.started() if service == name][-1]

    def api(self, method: str, path: str, json: Any = None) -> dict[str, Any]:
        reply = httpx.request(method, f"{self.gateway_url}{path}", json=json, timeout=5)
        assert reply.status_code in (200, 201), reply.text
        body: dict[str, Any] = reply.json()
        return body

    def create(self, name: str, command: str, max_attempts: int = 1) -> int:
        job = {"name": name, "command": command, "max_attempts": max_attempts}
        job_id: int = self.api("POST", "/api/jobs/create", job)["id"]
        return job_id

    def job(self, job_id: int) -> dict[str, Any]:
        return self.api("GET", f"/api/jobs/{job_id}")

    def wait_running(self, *job_ids: int) -> list[dict[str, Any]]:
        jobs: list[dict[str, Any]] = []

        def running() -> bool:
            jobs[:] = [self.job(job_id) for job_id in job_ids]
            return all(job["status"] == "running" and job["started_at"] for job in jobs)

        wait_for(running, 15, f"jobs {job_ids} running")
        return jobs


def start_launcher(work: Path, data_dir: Path) -> Launcher:
    gateway_port = free_port()
    tag = uuid.uuid4().hex
    env = clean_env(
        GATEWAY_PORT=str(gateway_port),
        SCHEDULER_PORT=str(free_port()),
        METRICS_PORT=str(free_port()),
        JOBSCHED_DATA_DIR=str(data_dir),
        RUNNER_DRAIN_SECONDS=str(DRAIN_SECONDS),
        JOBSCHED_TEST_TAG=tag,
        # Jobs get a clean environment: the tag reaches them only when passed through.
        JOB_ENV_PASSTHROUGH="JOBSCHED_TEST_TAG",
    )
    log = work / "launcher.log"
    with open(log, "wb") as out:
        # Its own session, as a shell gives a foreground job its own process group.
        proc = subprocess.Popen(
            [str(BIN / "jobsched-launcher")],
            env=env,
            cwd=work,  # no .env of the repository's
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    launcher = Launcher(proc, log, data_dir, f"http://127.0.0.1:{gateway_port}", tag)

    def dashboard_up() -> bool:
        assert proc.poll() is None, f"the launcher exited:\n{launcher.output()[-3000:]}"
        return http_ok(f"{launcher.gateway_url}/healthz") and runners_connected(launcher) == 2

    wait_for(dashboard_up, 90, "the launcher's system")
    return launcher


def runners_connected(launcher: Launcher) -> int:
    count: int = launcher.api("GET", "/api/stats")["runners_connected"]
    return count


def stop_and_wait(launcher: Launcher) -> None:
    """Whatever a test left running is stopped, and the output shown if it failed."""
    if launcher.proc.poll() is None:
        launcher.proc.send_signal(signal.SIGTERM)
        try:
            launcher.proc.wait(DRAIN_SECONDS + 40)
        except subprocess.TimeoutExpired:
            os.killpg(launcher.proc.pid, signal.SIGKILL)
            launcher.proc.wait()
    print(launcher.output()[-6000:])


@contextlib.contextmanager
def launched(work: Path) -> Iterator[Launcher]:
    # Not under pytest's own temporary directory: the server runs as another user, who
    # must be able to reach its data, and pytest keeps its directory to itself.
    with tempfile.TemporaryDirectory(prefix="jobsched-launcher-") as data_dir:
        launcher = start_launcher(work, Path(data_dir))
        try:
            yield launcher
        finally:
            stop_and_wait(launcher)


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Launcher]:
    with launched(tmp_path_factory.mktemp("launcher")) as launcher:
        yield launcher


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[Launcher]:
    with launched(tmp_path) as launcher:
        yield launcher


def test_a_killed_runner_is_back_with_its_id_while_the_gateway_answers(
    running: Launcher,
) -> None:
    old = running.pid_of("runner-1")
    others = {name: running.pid_of(name) for name in ("scheduler", "runner-2", "gateway")}
    connected = running.output().count("Runner runner-1 connected")
    os.kill(old, signal.SIGKILL)
    killed = time.monotonic()

    def back() -> bool:
        # Every poll goes through the gateway: api() fails the test if it does not answer.
        return (
            runners_connected(running) == 2
            and running.pid_of("runner-1") != old
            and running.output().count("Runner runner-1 connected") > connected
        )

    wait_for(back, 5, "runner-1 back")
    print(f"runner-1 back after {time.monotonic() - killed:.2f} s")
    exited = r"runner-1 \(pid \d+\) exited with signal SIGKILL .*; restarting in"
    assert re.search(exited, running.output())
    assert {name: running.pid_of(name) for name in others} == others  # the others go on


def test_the_jobs_of_a_killed_runner_fail_or_are_retried(running: Launcher) -> None:
    once = running.create("once", "sleep 30", max_attempts=1)
    twice = running.create("twice", "sleep 30", max_attempts=2)
    jobs = running.wait_running(once, twice)
    for runner in {job["runner_id"] for job in jobs}:
        os.kill(running.pid_of(runner), signal.SIGKILL)
    killed = time.monotonic()

    def failed() -> bool:
        job = running.job(once)
        return bool(job["status"] == "failed" and job["reason"] == "runner lost")

    def retried() -> bool:
        job = running.job(twice)
        return bool(
            job["attempt"] == 2 or (job["status"], job["reason"]) == ("queued", "runner lost")
        )

    wait_for(lambda: failed() and retried(), 15, "the killed runner's jobs to end or be retried")
    print(f"jobs of the killed runner ended or retried after {time.monotonic() - killed:.2f} s")


def test_jobs_see_no_database_settings(running: Launcher) -> None:
    job_id = running.create("environment", "env")
    wait_for(lambda: running.job(job_id)["status"] == "completed", 15, "env to complete")
    output = running.api("GET", f"/api/jobs/{job_id}/output")["output"]
    assert "JOBSCHED_JOB_ID=" in output  # it is the job's environment
    names = [line.split("=", 1)[0] for line in output.splitlines()]
    assert [n for n in names if n == "DATABASE_URL" or n.startswith("DB_")] == []


def leftovers(pids: set[int], tag: str) -> list[str]:
    """Live processes that the launcher started, share a group with one, or carry its
    tag in their environment (the runners' reapers, jobs, ...)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            state, _, group = (entry / "stat").read_text().rsplit(")", 1)[1].split()[:3]
            environ = (entry / "environ").read_bytes()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue  # gone meanwhile
        ours = int(entry.name) in pids or int(group) in pids or tag.encode() in environ
        if ours and state != "Z":
            found.append(f"{entry.name} ({state}) {command}")
    return found


def stored_status(data_dir: Path, job_id: int) -> str:
    server = embedded_postgres(data_dir / "postgres")
    try:
        with psycopg.connect(server.get_uri(), autocommit=True) as conn:
            row = conn.execute("SELECT status FROM jobs WHERE id = %s", (job_id,)).fetchone()
    finally:
        server.cleanup()
    assert row is not None
    return str(row[0])


def ctrl_c(launcher: Launcher) -> None:
    """What a terminal does: SIGINT to the foreground process group."""
    os.killpg(launcher.proc.pid, signal.SIGINT)


def sigterm(launcher: Launcher) -> None:
    launcher.proc.send_signal(signal.SIGTERM)


@pytest.mark.parametrize("stop", [ctrl_c, sigterm], ids=["ctrl-c", "sigterm"])
def test_a_stop_signal_drains_stores_every_result_and_leaves_no_process(
    fresh: Launcher, stop: Callable[[Launcher], None]
) -> None:
    job_id = fresh.create("finishes-while-draining", "sleep 2")
    fresh.wait_running(job_id)
    postmaster = int((fresh.data_dir / "postgres" / "postmaster.pid").read_text().split()[0])
    pids = {pid for _, pid in fresh.started()} | {postmaster}
    stop(fresh)
    signalled = time.monotonic()
    assert fresh.proc.wait(DRAIN_SECONDS + 10) == 0
    print(f"all stopped after {time.monotonic() - signalled:.2f} s")
    output = fresh.output()
    assert "unacknowledged" not in output
    assert f"Job {job_id} completed successfully" in output
    assert "exited with" not in output  # nothing crashed or was restarted on the way out
    assert leftovers(pids, fresh.tag) == []
    assert stored_status(fresh.data_dir, job_id) == "completed"


def test_a_second_ctrl_c_kills_everything_at_once(fresh: Launcher) -> None:
    job_id = fresh.create("outlasts-the-drain", "sleep 60")
    fresh.wait_running(job_id)
    pids = {pid for _, pid in fresh.started()}
    assert any("sleep 60" in process for process in leftovers(pids, fresh.tag))  # seen
    ctrl_c(fresh)
    wait_for(lambda: "Draining: 1 job(s) running" in fresh.output(), 10, "a runner draining")
    ctrl_c(fresh)
    assert fresh.proc.wait(DRAIN_SECONDS) == 0
    assert "killing every service now" in fresh.output()
    # The killed runner's reaper ends its job's process group as soon as it notices.
    wait_for(lambda: leftovers(pids, fresh.tag) == [], 5, "no process left")
