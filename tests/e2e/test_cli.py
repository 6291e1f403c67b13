"""jobsctl, the installed command-line client, run against the whole system."""

import json
import os
import queue
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from jobsched_launcher import free_port, wait_for

from tests.conftest import LiveSystem, start_live_system

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

JOBSCTL = Path(sys.executable).parent / "jobsctl"


def cli_env(url: str, token: str = "") -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBSCHED_")}
    env["JOBSCHED_URL"] = url
    if token:
        env["JOBSCHED_TOKEN"] = token
    return env


def jobsctl(url: str, *args: str, token: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(JOBSCTL), *args],
        env=cli_env(url, token),
        capture_output=True,
        text=True,
        timeout=60,
    )


def ok(system: LiveSystem, *args: str) -> str:
    result = jobsctl(system.gateway_url, *args)
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result.stdout


def as_json(system: LiveSystem, *args: str) -> Any:
    return json.loads(ok(system, *args, "--json"))


def submit(system: LiveSystem, name: str, command: str, *options: str) -> int:
    job = as_json(system, "submit", name, command, *options)
    assert job["name"] == name and job["status"] == "queued"
    job_id: int = job["id"]
    return job_id


def test_submit_wait_exits_with_the_jobs_exit_code(live_system: LiveSystem) -> None:
    url = live_system.gateway_url
    hello = jobsctl(url, "submit", "hello", "echo hello from jobsctl; echo second line", "--wait")
    assert hello.returncode == 0, hello.stderr
    assert hello.stdout == "hello from jobsctl\nsecond line\n"
    assert "completed" in hello.stderr

    three = jobsctl(url, "submit", "three", "echo failing; exit 3", "--wait")
    assert three.returncode == 3, three.stderr
    assert three.stdout == "failing\n"
    assert "failed: exit code 3" in three.stderr

    timed_out = jobsctl(url, "submit", "slow", "sleep 30", "--timeout", "1", "--wait", "--json")
    job = json.loads(timed_out.stdout)
    assert job["status"] == "failed" and job["reason"] == "timed out"
    assert timed_out.returncode == (job["exit_code"] or 1), timed_out.stderr

    plain = ok(live_system, "submit", "later", "true")
    assert plain.startswith("submitted job ") and "(later)" in plain


def test_list_show_and_output(live_system: LiveSystem) -> None:
    url = live_system.gateway_url
    for i in range(3):
        assert jobsctl(url, "submit", f"good-{i}", f"echo good {i}", "--wait").returncode == 0
    assert jobsctl(url, "submit", "bad", "echo oops >&2; exit 4", "--wait").returncode == 4

    table = ok(live_system, "list").splitlines()
    assert table[0].split() == ["ID", "NAME", "STATUS", "EXIT", "CREATED"]
    assert [line.split()[1:4] for line in table[1:]] == [
        ["bad", "failed", "4"],
        ["good-2", "completed", "0"],
        ["good-1", "completed", "0"],
        ["good-0", "completed", "0"],
    ]
    jobs = as_json(live_system, "list")
    assert jobs == live_system.api("GET", "/api/jobs").json()
    assert [j["name"] for j in as_json(live_system, "list", "--status", "failed")] == ["bad"]
    assert len(as_json(live_system, "list", "--status", "completed")) == 3
    assert ok(live_system, "list", "--status", "queued").strip() == "no jobs"

    one_page = jobsctl(url, "list", "--limit", "1")
    assert len(one_page.stdout.splitlines()) == 2 and "--all" in one_page.stderr
    every_page = as_json(live_system, "list", "--limit", "1", "--all")
    assert every_page == jobs
    assert len(ok(live_system, "list", "--limit", "2", "--all").splitlines()) == 5

    bad_id = jobs[0]["id"]
    shown = ok(live_system, "show", str(bad_id))
    assert "name:" in shown and "bad" in shown and "reason:" in shown and "exit code 4" in shown
    assert "attempts:" in shown and "runner-" in shown
    detail = as_json(live_system, "show", str(bad_id))
    assert detail["status"] == "failed" and detail["exit_code"] == 4
    assert [a["attempt"] for a in detail["attempts"]] == [1]
    assert detail["attempts"][0]["output_length"] == len("oops\n")

    assert ok(live_system, "output", str(bad_id)) == "oops\n"
    assert ok(live_system, "output", str(bad_id), "--attempt", "1") == "oops\n"
    assert as_json(live_system, "output", str(bad_id)) == {
        "job_id": bad_id,
        "attempt": 1,
        "output": "oops\n",
        "truncated": False,
    }


class LineReader:
    """A process's stdout lines, read on a thread so that every wait is bounded."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: queue.Queue[str] = queue.Queue()
        self.process = process
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)

    def next(self, timeout: float = 15) -> str:
        return self.lines.get(timeout=timeout)


def test_output_follow_prints_lines_as_they_come(live_system: LiveSystem, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    # The first line, then nothing until the test has seen it: proof that --follow
    # streams; then five more over ~1.5 s.
    command = (
        f"echo line-1; while [ ! -e {gate} ]; do sleep 0.05; done; "
        "for i in 2 3 4 5 6; do echo line-$i; sleep 0.3; done"
    )
    job_id = submit(live_system, "lines", command, "--timeout", "60")
    process = subprocess.Popen(
        [str(JOBSCTL), "output", str(job_id), "--follow"],
        env=cli_env(live_system.gateway_url),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        reader = LineReader(process)
        assert reader.next() == "line-1\n"
        assert live_system.api("GET", f"/api/jobs/{job_id}").json()["status"] == "running"
        gate.touch()
        assert [reader.next() for _ in range(5)] == [f"line-{i}\n" for i in range(2, 7)]
        assert process.wait(timeout=15) == 0  # it stops by itself once the job has ended
        assert reader.lines.empty()
    finally:
        process.kill()
        process.wait()
        assert process.stderr is not None
        process.stderr.close()
        assert process.stdout is not None
        process.stdout.close()
    assert live_system.api("GET", f"/api/jobs/{job_id}").json()["status"] == "completed"
    # Following a finished job prints its output once and returns.
    assert ok(live_system, "output", str(job_id), "--follow").splitlines() == [
        f"line-{i}" for i in range(1, 7)
    ]


def test_cancel_a_running_job(live_system: LiveSystem) -> None:
    job_id = submit(live_system, "long", "sleep 30")
    live_system.wait_for_job(job_id, {"running"})
    assert "cancel" in ok(live_system, "cancel", str(job_id))
    job = live_system.wait_for_job(job_id, {"completed", "failed", "cancelled"}, timeout=15)
    assert job["status"] == "cancelled"
    again = jobsctl(live_system.gateway_url, "cancel", str(job_id))
    assert again.returncode == 2
    assert again.stderr == f"jobsctl: job {job_id} is already cancelled\n"


def test_retry_a_failed_job(live_system: LiveSystem, tmp_path: Path) -> None:
    marker = tmp_path / "tried"
    command = f"if [ -e {marker} ]; then echo second try; else touch {marker}; exit 1; fi"
    first = jobsctl(live_system.gateway_url, "submit", "flaky", command, "--wait", "--json")
    assert first.returncode == 1
    job_id = json.loads(first.stdout)["id"]
    assert "queued again" in ok(live_system, "retry", str(job_id))
    job = live_system.wait_for_job(job_id, {"completed", "failed"})
    assert job["status"] == "completed" and job["attempt"] == 2
    assert ok(live_system, "output", str(job_id)) == "second try\n"
    attempts = as_json(live_system, "show", str(job_id))["attempts"]
    assert [(a["attempt"], a["exit_code"]) for a in attempts] == [(1, 1), (2, 0)]


def test_config_and_stats(live_system: LiveSystem) -> None:
    # The configuration shows the pause too (issue 14).
    shown = "max_concurrent_jobs: 3\npaused:              no\n"
    assert ok(live_system, "config", "set", "3") == shown
    assert ok(live_system, "config", "get") == shown
    assert as_json(live_system, "config", "get") == {"max_concurrent_jobs": 3, "paused": False}
    assert as_json(live_system, "config", "set", "7") == {"max_concurrent_jobs": 7, "paused": False}
    assert live_system.api("GET", "/api/config").json() == {
        "max_concurrent_jobs": 7,
        "paused": False,
    }

    bad = jobsctl(live_system.gateway_url, "config", "set", "0")
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.startswith("jobsctl: max_concurrent_jobs: Input should be greater")
    assert jobsctl(live_system.gateway_url, "config", "set", "many").returncode == 2

    submit(live_system, "counted", "true")
    wait_for(lambda: as_json(live_system, "stats")["completed"] == 1, 20, "the job to complete")
    stats = as_json(live_system, "stats")
    assert stats == live_system.api("GET", "/api/stats").json()
    assert stats["total"] == 1 and stats["max_concurrent_jobs"] == 7
    text = ok(live_system, "stats")
    assert "completed:" in text and "runners_connected:" in text


def test_errors_are_the_apis_message_and_exit_2(live_system: LiveSystem) -> None:
    url = live_system.gateway_url
    submit(live_system, "unique", "true")
    duplicate = jobsctl(url, "submit", "unique", "true")
    assert duplicate.returncode == 2 and duplicate.stdout == ""
    assert duplicate.stderr == "jobsctl: job name 'unique' already exists\n"
    for args in [["show", "999999"], ["output", "999999"], ["cancel", "999999"]]:
        missing = jobsctl(url, *args)
        assert missing.returncode == 2, args
        assert missing.stderr == "jobsctl: job 999999 not found\n", args
    invalid = jobsctl(url, "submit", "x", "true", "--max-attempts", "0")
    assert invalid.returncode == 2 and invalid.stderr.startswith("jobsctl: max_attempts: ")


def test_an_unreachable_gateway_gets_a_helpful_message() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    for args in [["list"], ["--url", url, "stats"], ["stats", "--url", url]]:
        result = jobsctl("http://127.0.0.1:1" if "--url" in args else url, *args)
        assert result.returncode == 2, args
        assert result.stderr == (
            f"jobsctl: cannot reach the gateway at {url}: is it running? (make run)\n"
        ), args


def test_a_token_protected_system(database_url: str, tmp_path: Path) -> None:
    token = "t" * 32
    system = start_live_system(database_url, tmp_path, runners=1, API_TOKEN=token)
    try:
        url = system.gateway_url
        refused = jobsctl(url, "stats")
        assert refused.returncode == 2 and "JOBSCHED_TOKEN" in refused.stderr
        assert "bearer token" in refused.stderr
        assert jobsctl(url, "stats", token="wrong" * 8).returncode == 2
        done = jobsctl(url, "submit", "guarded", "echo let in", "--wait", token=token)
        assert done.returncode == 0 and done.stdout == "let in\n", done.stderr
        assert jobsctl(url, "list", "--token", token).returncode == 0
        assert json.loads(jobsctl(url, "--json", "stats", token=token).stdout)["completed"] == 1
    finally:
        system.stop_all()


def test_submit_many_reads_json_lines_in_requests_of_a_thousand(
    live_system: LiveSystem, tmp_path: Path
) -> None:
    lines = [json.dumps({"name": f"many-{i}", "command": f"echo {i}"}) for i in range(1500)]
    jobs_file = tmp_path / "jobs.jsonl"
    jobs_file.write_text("\n".join(lines[:700]) + "\n\n" + "\n".join(lines[700:]) + "\n")
    created = as_json(live_system, "submit-many", str(jobs_file))
    assert [j["name"] for j in created] == [f"many-{i}" for i in range(1500)]
    for job in (created[1234], created[-1]):
        live_system.wait_for_job(job["id"], {"completed"}, timeout=60)
    assert ok(live_system, "output", str(created[1234]["id"])) == "1234\n"

    again = jobsctl(live_system.gateway_url, "submit-many", str(jobs_file))
    assert again.returncode == 2
    assert "job name 'many-0' already exists (jobs from line 1)" in again.stderr
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"name": "fine", "command": "true"}\n[1, 2]\n')
    refused = jobsctl(live_system.gateway_url, "submit-many", str(bad))
    assert refused.returncode == 2 and "line 2: a job is a JSON object" in refused.stderr
    missing = jobsctl(live_system.gateway_url, "submit-many", str(tmp_path / "none.jsonl"))
    assert missing.returncode == 2 and "cannot read" in missing.stderr


def test_submit_many_each_alone_creates_what_it_can_and_names_what_it_refused(
    live_system: LiveSystem, tmp_path: Path
) -> None:
    ok(live_system, "submit", "alone-taken", "true")
    jobs = [
        {"name": "alone-taken", "command": "true"},
        {"name": "alone-1", "command": "echo 1"},
        {"name": "alone-bad", "command": "true", "max_attempts": 0},
        {"name": "alone-2", "command": "echo 2"},
    ]
    jobs_file = tmp_path / "jobs.jsonl"
    jobs_file.write_text("".join(json.dumps(job) + "\n" for job in jobs))
    done = jobsctl(live_system.gateway_url, "submit-many", "--each-alone", str(jobs_file))
    assert done.returncode == 1, done.stderr
    assert done.stdout == "submitted 2 jobs, 2 refused\n"
    assert "job 1 ('alone-taken'): job name 'alone-taken' already exists" in done.stderr
    assert "job 3 ('alone-bad'): max_attempts:" in done.stderr
    names = {name for (name,) in live_system.sql("SELECT name FROM jobs")}
    assert {"alone-1", "alone-2"} <= names and "alone-bad" not in names

    again = jobsctl(
        live_system.gateway_url, "--json", "submit-many", "--each-alone", str(jobs_file)
    )
    assert again.returncode == 1, again.stderr
    results = json.loads(again.stdout)
    assert [sorted(result) for result in results] == [["error"]] * 4
    assert [result["error"]["status"] for result in results] == [409, 409, 422, 409]
