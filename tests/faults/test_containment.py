"""Jobs that try to escape or to read secrets: a `setsid` child and a double fork outlive
neither a normal exit, nor a timeout, nor a cancel, nor the runner; the reaper killed is
replaced; a job sees no secret of the runner's environment, nor a file only root reads.
Each containment (a cgroup v2 per job, the runner as subreaper) is tried in turn."""

import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from jobsched_launcher import clean_env, wait_for

from tests.conftest import LiveSystem, _print_logs, start_live_system
from tests.faults.test_faults import alive

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

MODES = ["cgroup", "subreaper"]
GONE_WITHIN = 10.0


def escaping(marks: Path, then: str) -> str:
    """A job that writes its shell's pid and leaves two processes behind in other
    sessions, one by a double fork, each writing its pid; once the test has seen them
    all (`go`), it does `then`."""
    return (
        f"echo $$ > {marks}/shell.tmp; mv {marks}/shell.tmp {marks}/shell; "
        f"setsid sh -c 'echo $$ > {marks}/setsid.tmp; mv {marks}/setsid.tmp {marks}/setsid; "
        f"exec sleep 3600' & "
        f"(setsid sh -c 'echo $$ > {marks}/double.tmp; mv {marks}/double.tmp {marks}/double; "
        f"exec sleep 3601' &); "
        f"while [ ! -e {marks}/go ]; do sleep 0.05; done; {then}"
    )


def job_pids(marks: Path) -> list[int]:
    """The job's shell, then its two escapes, all alive."""
    files = [marks / "shell", marks / "setsid", marks / "double"]
    wait_for(lambda: all(f.exists() for f in files), 10, "escapes")
    pids = [int(f.read_text()) for f in files]
    assert all(alive(pid) for pid in pids)
    (marks / "go").touch()
    return pids


def assert_gone(pids: list[int], after: str) -> None:
    wait_for(lambda: not any(alive(pid) for pid in pids), GONE_WITHIN, f"escapes gone {after}")


def owner(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise AssertionError(f"no Uid for {pid}")


def create(system: LiveSystem, name: str, command: str, **extra: object) -> int:
    body = {"name": name, "command": command, **extra}
    reply = system.api("POST", "/api/jobs/create", body)
    assert reply.status_code == 201, reply.text
    job_id: int = reply.json()["id"]
    return job_id


def runner_log(system: LiveSystem, name: str = "runner-1") -> str:
    assert system.log_dir is not None
    return (system.log_dir / f"{name}.log").read_text(errors="replace")


def reaper_of(runner_pid: int) -> int | None:
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (entry / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == runner_pid and b"jobsched_runner.reaper" in cmdline:
            return int(entry.name)
    return None


@pytest.fixture(params=MODES)
def contained(
    request: pytest.FixtureRequest, database_url: str, tmp_path: Path
) -> Iterator[LiveSystem]:
    mode: str = request.param
    system = start_live_system(database_url, tmp_path, runners=1, JOB_CONTAINMENT=mode)
    try:
        wanted = "a cgroup v2 per job" if mode == "cgroup" else "the runner as child subreaper"
        wait_for(lambda: f"Job containment: {wanted}" in runner_log(system), 10, "the runner")
        yield system
    finally:
        system.stop_all()
        _print_logs(tmp_path / "logs")


def test_escapes_outlive_neither_an_exit_nor_a_timeout_nor_a_cancel(
    contained: LiveSystem, tmp_path: Path
) -> None:
    ends = {
        "exit": ("true", {}),
        "timeout": ("sleep 60", {"timeout_seconds": 1}),
        "cancel": ("sleep 60", {}),
    }
    for end, (then, extra) in ends.items():
        marks = tmp_path / end
        marks.mkdir()
        job_id = create(contained, f"escape-{end}", escaping(marks, then), **extra)
        pids = job_pids(marks)
        if end == "cancel":
            reply = contained.api("POST", f"/api/jobs/{job_id}/cancel")
            assert reply.status_code == 200, reply.text
        want = {"exit": "completed", "timeout": "failed", "cancel": "cancelled"}[end]
        job = contained.wait_for_job(job_id, {"completed", "failed", "cancelled"}, timeout=30)
        assert job["status"] == want, job
        assert_gone(pids, f"after {end}")


def test_the_reaper_killed_is_replaced_and_the_runner_killed_leaves_nothing(
    contained: LiveSystem, tmp_path: Path
) -> None:
    runner = contained.procs["runner-1"]
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    create(contained, "before", escaping(first, "sleep 600"))
    pids = job_pids(first)
    reaper = reaper_of(runner.pid)
    assert reaper is not None
    os.kill(reaper, signal.SIGKILL)
    wait_for(lambda: reaper_of(runner.pid) not in {None, reaper}, 10, "another reaper")
    assert "died with code -9: starting another" in runner_log(contained)
    after = create(contained, "after", escaping(second, "sleep 600"))
    contained.wait_for_job(after, {"running"})
    pids += job_pids(second)
    if "subreaper" in runner_log(contained):
        # Its sweep tells the reaper what left a job's group, once a round.
        for pid in pids[1:3] + pids[4:6]:
            told = f"process {pid} left its group, watched"
            wait_for(lambda told=told: told in runner_log(contained), 5, told)
    runner.send_signal(signal.SIGKILL)
    runner.wait(10)
    contained.procs.pop("runner-1")
    assert_gone(pids, "after the runner was killed")


def test_a_job_sees_no_secret_of_the_runner(database_url: str, tmp_path: Path) -> None:
    # Over mTLS, so that the runner holds a key of its own. Its real token and key: a
    # made-up token keeps it off the scheduler, a key without a certificate stops it.
    system = start_live_system(database_url, tmp_path, runners=0, JOBSCHED_TLS="mtls")
    runner_env = system.env_for("jobsched-runner", {"RUNNER_ID": "runner-1"})
    secrets = {
        "DATABASE_URL": database_url,
        "DB_PASSWORD": "hunter2hunter2",
        "RUNNER_TOKEN": system.runner_token("runner-1"),
        "TLS_KEY_FILE": runner_env["TLS_KEY_FILE"],
    }
    try:
        system.start_runner(1, JOB_ENV_PASSTHROUGH="GREETING", GREETING="hello", **secrets)
        job_id = create(system, "env", "env")
        job = system.wait_for_job(job_id, {"completed"})
        assert job["status"] == "completed"
        output = system.api("GET", f"/api/jobs/{job_id}/output").json()["output"]
        names = {line.split("=", 1)[0] for line in output.splitlines() if "=" in line}
        assert "GREETING=hello" in output.splitlines()
        assert f"JOBSCHED_JOB_ID={job_id}" in output.splitlines()
        assert not names & set(secrets), output
        assert not any(value in output for value in secrets.values())
        allowed = {"PATH", "HOME", "LANG", "TZ", "JOBSCHED_JOB_ID", "JOBSCHED_ATTEMPT"}
        assert names - {"PWD", "SHLVL", "OLDPWD", "_"} <= allowed | {"GREETING"}, names
    finally:
        system.stop_all()
        _print_logs(tmp_path / "logs")


def test_a_runner_told_to_pass_a_secret_through_refuses_to_start() -> None:
    env = clean_env(JOB_ENV_PASSTHROUGH="HOME,DB_PASSWORD,MY_API_TOKEN", RUNNER_ID="refuser")
    runner = Path(sys.executable).parent / "jobsched-runner"
    done = subprocess.run([runner], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "names secrets a job must never see: DB_PASSWORD, MY_API_TOKEN" in done.stderr


def test_a_job_run_as_job_user_cannot_read_the_runners_key(
    database_url: str, tmp_path: Path
) -> None:
    assert os.geteuid() == 0, "this test runs where CI does: as root"
    nobody = pwd.getpwnam("nobody")
    keys = Path(tempfile.mkdtemp(prefix="jobsched-keys-"))
    keys.chmod(0o755)
    marks = keys / "marks"
    marks.mkdir(mode=0o777)
    marks.chmod(0o777)
    (keys / "runner-key.pem").write_text("the runner's private key\n")
    (keys / "runner-key.pem").chmod(0o600)
    (keys / "ca.pem").write_text("a public certificate\n")
    (keys / "ca.pem").chmod(0o644)
    system = start_live_system(database_url, tmp_path, runners=1, JOB_USER="nobody")
    try:
        command = f"id -u; cat {keys}/ca.pem; cat {keys}/runner-key.pem"
        job_id = create(system, "thief", escaping(marks, command))
        pids = job_pids(marks)
        assert {owner(pid) for pid in pids} == {nobody.pw_uid}
        job = system.wait_for_job(job_id, {"completed", "failed"})
        assert_gone(pids, "after a job run as another user")
        output = system.api("GET", f"/api/jobs/{job_id}/output").json()["output"]
        assert job["status"] == "failed", (job, output)
        uid, public, *_ = output.splitlines()
        assert (uid, public) == (str(nobody.pw_uid), "a public certificate")
        assert "Permission denied" in output and "private key" not in output
        assert "Jobs run as nobody" in runner_log(system)
    finally:
        system.stop_all()
        shutil.rmtree(keys)
        _print_logs(tmp_path / "logs")
