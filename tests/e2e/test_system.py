"""The whole system as real processes on loopback, driven over REST, gRPC and SQL."""

import re
import subprocess
import sys
from datetime import datetime
from functools import partial
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from jobsched.v1 import jobs_pb2 as pb
from jobsched.v1 import jobs_pb2_grpc
from jobsched_common.limits import MAX_COMMAND_BYTES
from jobsched_launcher import free_port, wait_for

from tests.checker import History, logged_command
from tests.conftest import LiveSystem, start_live_system

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


def create(system: LiveSystem, name: str, command: str) -> int:
    reply = system.api("POST", "/api/jobs/create", {"name": name, "command": command})
    assert reply.status_code == 201, reply.text
    job_id: int = reply.json()["id"]
    return job_id


def test_the_original_example_limit_two_five_jobs(live_system: LiveSystem, tmp_path: Path) -> None:
    log = tmp_path / "history.log"
    assert live_system.api("PUT", "/api/config", {"max_concurrent_jobs": 2}).status_code == 200
    ids = [
        create(live_system, f"test_job_{i}", logged_command(log, f"job{i}", "sleep 0.4"))
        for i in range(1, 6)
    ]
    for job_id in ids:
        job = live_system.wait_for_job(job_id, {"completed", "failed"}, timeout=30)
        assert job["status"] == "completed", job
        assert job["exit_code"] == 0 and job["last_run"] and job["runner_id"]
    history = History.read(log)
    assert history.peak_concurrency() == 2
    assert history.duplicate_starts() == []
    assert history.never_started([f"job{i}" for i in range(1, 6)]) == []
    stats = live_system.api("GET", "/api/stats").json()
    assert stats["completed"] == 5 and stats["queued"] == 0 and stats["running"] == 0
    # The original's log lines, from the scheduler and the runners.
    logs = tmp_path / "logs"
    expected = [
        ("scheduler", r"Max concurrent: 2, Running: \d+, Available slots: \d+"),
        ("scheduler", r"Found \d+ queued job\(s\)"),
        ("scheduler", r"Assigned \d+ job\(s\) to runners"),
        *[("runner-*", rf"Job {job_id} completed successfully") for job_id in ids],
    ]

    def logged(service: str, pattern: str) -> bool:
        return any(re.search(pattern, f.read_text()) for f in logs.glob(f"{service}.log"))

    for service, pattern in expected:
        wait_for(partial(logged, service, pattern), 5, f"{pattern!r} in the {service} log")


def test_raising_the_limit_takes_effect_without_a_restart(
    live_system: LiveSystem, tmp_path: Path
) -> None:
    log = tmp_path / "history.log"
    live_system.api("PUT", "/api/config", {"max_concurrent_jobs": 1})
    ids = [
        create(live_system, f"wide-{i}", logged_command(log, f"w{i}", "sleep 3")) for i in range(4)
    ]
    wait_for(lambda: len(History.read(log).starts) == 1, 10, "the first job to start")
    assert live_system.api("PUT", "/api/config", {"max_concurrent_jobs": 4}).json() == {
        "max_concurrent_jobs": 4,
        "paused": False,  # shown since issue 14
    }
    # Well before the first job's 3 s are up, the other three run beside it.
    wait_for(lambda: History.read(log).peak_concurrency() == 4, 2.5, "all four running at once")
    for job_id in ids:
        assert live_system.wait_for_job(job_id, {"completed"}, timeout=15)["status"] == "completed"


def test_a_job_inserted_with_sql_runs(live_system: LiveSystem) -> None:
    live_system.sql("INSERT INTO jobs (name, command) VALUES ('by_hand', 'echo inserted by hand')")
    (job_id,) = live_system.sql("SELECT id FROM jobs WHERE name = 'by_hand'")[0]
    job = live_system.wait_for_job(job_id, {"completed", "failed"}, timeout=5)
    assert job["status"] == "completed"
    output = live_system.api("GET", f"/api/jobs/{job_id}/output").json()
    assert output["output"] == "inserted by hand\n"


def test_a_failing_job_keeps_its_exit_code_and_output(live_system: LiveSystem) -> None:
    job_id = create(live_system, "fails", "echo to-stdout; echo to-stderr >&2; exit 3")
    job = live_system.wait_for_job(job_id, {"completed", "failed"})
    assert job["status"] == "failed" and job["exit_code"] == 3 and job["reason"] == "exit code 3"
    assert job["started_at"] and job["finished_at"]
    output = live_system.api("GET", f"/api/jobs/{job_id}/output").json()
    assert output == {
        "job_id": job_id,
        "attempt": 1,
        "output": "to-stdout\nto-stderr\n",
        "truncated": False,
    }


def test_a_timeout_kills_the_whole_process_group(live_system: LiveSystem, tmp_path: Path) -> None:
    marker = tmp_path / "grandchild-survived"
    reply = live_system.api(
        "POST",
        "/api/jobs/create",
        {"name": "slow", "command": f"(sleep 3; touch {marker}) & sleep 60", "timeout_seconds": 1},
    )
    job = live_system.wait_for_job(reply.json()["id"], {"completed", "failed"}, timeout=15)
    assert job["status"] == "failed" and job["reason"] == "timed out"
    # The backgrounded grandchild was in the group and died with it.
    with pytest.raises(TimeoutError):
        wait_for(marker.exists, 3.5, "grandchild marker")


def test_bad_input_gets_a_clear_4xx(live_system: LiveSystem) -> None:
    cases = [
        ("POST", "/api/jobs/create", {"name": "x"}, 422),
        ("POST", "/api/jobs/create", {"name": "", "command": "true"}, 422),
        ("POST", "/api/jobs/create", {"name": "   ", "command": "true"}, 422),
        ("POST", "/api/jobs/create", {"name": "n" * 256, "command": "true"}, 422),
        ("POST", "/api/jobs/create", {"name": "x", "command": "c" * 70_000}, 422),
        ("POST", "/api/jobs/create", {"name": "x", "command": "true", "max_attempts": 0}, 422),
        ("POST", "/api/jobs/create", {"name": "nul\u0000", "command": "true"}, 422),
        ("POST", "/api/jobs/create", [1, 2], 422),
        ("PUT", "/api/config", {"max_concurrent_jobs": 0}, 422),
        ("PUT", "/api/config", {"max_concurrent_jobs": 10_001}, 422),
        ("PUT", "/api/config", {"max_concurrent_jobs": "many"}, 422),
        ("GET", "/api/jobs?limit=0", None, 422),
        ("GET", "/api/jobs?limit=1001", None, 422),
        ("GET", "/api/jobs?status=exploded", None, 422),
        ("GET", "/api/jobs/999999", None, 404),
        ("GET", "/api/jobs/0", None, 422),
        ("GET", "/api/jobs/abc", None, 422),
        ("GET", "/api/jobs/999999/output", None, 404),
    ]
    for method, path, body, expected in cases:
        reply = live_system.api(method, path, body)
        assert reply.status_code == expected, (method, path, body, reply.text)
        assert reply.json()["detail"], reply.text
    bad_json = live_system.api(
        "POST",
        "/api/jobs/create",
        content=b"{not json",
        headers={"content-type": "application/json"},
    )
    assert bad_json.status_code == 422
    huge = live_system.api("POST", "/api/jobs/create", content=b"x" * 300_000)
    assert huge.status_code == 413
    assert create(live_system, "unique", "true")
    duplicate = live_system.api("POST", "/api/jobs/create", {"name": "unique", "command": "true"})
    assert duplicate.status_code == 409
    assert duplicate.json()["detail"] == "job name 'unique' already exists"


def test_listing_pages_with_a_link_header_and_filters(live_system: LiveSystem) -> None:
    ids = [create(live_system, f"page-{i}", "true") for i in range(5)]
    for job_id in ids:
        live_system.wait_for_job(job_id, {"completed"})
    first = live_system.api("GET", "/api/jobs?limit=2")
    assert [j["id"] for j in first.json()] == ids[::-1][:2]
    seen = [j["id"] for j in first.json()]
    link = first.headers["link"]
    while link:
        url = link.split(";")[0].strip("<>")
        page = live_system.api("GET", url)
        seen += [j["id"] for j in page.json()]
        link = page.headers.get("link", "")
    assert seen == ids[::-1]
    assert len(live_system.api("GET", "/api/jobs?status=completed").json()) == 5
    assert live_system.api("GET", "/api/jobs?status=queued").json() == []


def test_any_page_the_api_accepts_can_be_listed(live_system: LiveSystem) -> None:
    """70 jobs of the longest command: more than any gRPC message of 4 MiB holds, and
    once a 429 for good. A page now ends at its byte budget, and Link goes on."""
    command = "true " + "#" * (MAX_COMMAND_BYTES - 5)
    ids = [create(live_system, f"long-{i}", command) for i in range(70)]
    first = live_system.api("GET", "/api/jobs?limit=1000")
    assert first.status_code == 200, first.text[:200]
    seen = [j["id"] for j in first.json()]
    assert 0 < len(seen) < 70 and "link" in first.headers
    link = first.headers["link"]
    while link:
        page = live_system.api("GET", link.split(";")[0].strip("<>"))
        assert page.status_code == 200, page.text[:200]
        seen += [j["id"] for j in page.json()]
        link = page.headers.get("link", "")
    assert seen == ids[::-1]


def test_grpc_api_health_reflection_and_events(live_system: LiveSystem) -> None:
    with grpc.insecure_channel(live_system.scheduler_addr) as channel:
        health = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=5
        )
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
        replies = reflection.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5
        )
        names = {s.name for r in replies for s in r.list_services_response.service}
        assert {"jobsched.v1.JobService", "jobsched.v1.RunnerService"} <= names

        jobs = jobs_pb2_grpc.JobServiceStub(channel)
        events = jobs.WatchEvents(pb.WatchEventsRequest(), timeout=20)
        job = jobs.CreateJob(pb.CreateJobRequest(name="via-grpc", command="true"), timeout=5)
        statuses = []
        for event in events:
            if event.job_id == job.id:
                statuses.append(event.status)
            if event.status == pb.JOB_STATUS_COMPLETED:
                break
        events.cancel()
        assert statuses == [pb.JOB_STATUS_QUEUED, pb.JOB_STATUS_RUNNING, pb.JOB_STATUS_COMPLETED]
        fetched = jobs.GetJob(pb.GetJobRequest(id=job.id), timeout=5)
        assert fetched.status == pb.JOB_STATUS_COMPLETED and fetched.exit_code == 0
        with pytest.raises(grpc.RpcError) as missing:
            jobs.GetJob(pb.GetJobRequest(id=10**9), timeout=5)
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND
        with pytest.raises(grpc.RpcError) as invalid:
            jobs.CreateJob(pb.CreateJobRequest(name="", command="true"), timeout=5)
        assert invalid.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_the_gateway_answers_503_while_the_scheduler_is_away(live_system: LiveSystem) -> None:
    live_system.stop("scheduler")
    for path in ["/api/jobs", "/api/stats", "/api/config"]:
        reply = live_system.api("GET", path)
        assert reply.status_code == 503, reply.text
        assert reply.json()["detail"].startswith("scheduler unavailable")
    live_system.start_scheduler()
    wait_for(lambda: live_system.api("GET", "/api/stats").status_code == 200, 20, "scheduler back")
    job_id = create(live_system, "after-restart", "true")
    assert live_system.wait_for_job(job_id, {"completed"})["status"] == "completed"


def test_a_runner_finishes_its_job_on_sigterm(live_system: LiveSystem) -> None:
    live_system.stop("runner-2")
    job_id = create(live_system, "drained", "sleep 1; echo finished")
    live_system.wait_for_job(job_id, {"running"})
    assert live_system.stop("runner-1") == 0  # SIGTERM: drains, then exits cleanly
    live_system.start_runner(1)
    job = live_system.wait_for_job(job_id, {"completed", "failed"})
    assert job["status"] == "completed"
    output = live_system.api("GET", f"/api/jobs/{job_id}/output").json()["output"]
    assert output == "finished\n"


def test_a_token_guards_the_api(database_url: str, tmp_path: Path) -> None:
    token = "t" * 32
    system = start_live_system(database_url, tmp_path, runners=1, API_TOKEN=token)
    try:
        system.token = ""
        assert system.api("GET", "/api/jobs").status_code == 401
        assert system.api("GET", "/healthz").status_code == 200
        system.token = "wrong" * 8
        assert system.api("GET", "/api/stats").status_code == 401
        system.token = token
        assert system.api("GET", "/api/stats").status_code == 200
    finally:
        system.stop_all()


def test_the_gateway_will_not_listen_beyond_loopback_without_a_token() -> None:
    gateway = Path(sys.executable).parent / "jobsched-gateway"
    result = subprocess.run(
        [str(gateway)],
        env={"GATEWAY_HOST": "0.0.0.0", "GATEWAY_PORT": str(free_port()), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode != 0
    assert "API_TOKEN" in result.stderr


def test_cancel_a_queued_and_a_running_job(live_system: LiveSystem, tmp_path: Path) -> None:
    marker = tmp_path / "survived"
    live_system.api("PUT", "/api/config", {"max_concurrent_jobs": 1})
    running = create(live_system, "long", f"(sleep 2; touch {marker}) & sleep 60")
    queued = create(live_system, "waiting", "echo never")
    live_system.wait_for_job(running, {"running"})
    reply = live_system.api("POST", f"/api/jobs/{queued}/cancel")
    assert reply.status_code == 200 and reply.json()["status"] == "cancelled"
    assert live_system.api("POST", f"/api/jobs/{running}/cancel").status_code == 200
    job = live_system.wait_for_job(running, {"cancelled", "failed", "completed"}, timeout=10)
    assert job["status"] == "cancelled" and job["reason"] == "cancelled"
    with pytest.raises(TimeoutError):
        wait_for(marker.exists, 2.5, "the cancelled job's grandchild")
    assert live_system.api("GET", f"/api/jobs/{queued}").json()["status"] == "cancelled"
    again = live_system.api("POST", f"/api/jobs/{running}/cancel")
    assert again.status_code == 409 and "already cancelled" in again.json()["detail"]
    assert live_system.api("POST", "/api/jobs/999999/cancel").status_code == 404


def test_retries_back_off_and_keep_every_attempt(live_system: LiveSystem, tmp_path: Path) -> None:
    counter = tmp_path / "tries"
    # Fails twice, then succeeds: each attempt prints which one it is.
    command = (
        f'echo x >> {counter}; n=$(wc -l < {counter}); echo "try $JOBSCHED_ATTEMPT"; [ "$n" -ge 3 ]'
    )
    reply = live_system.api(
        "POST", "/api/jobs/create", {"name": "flaky", "command": command, "max_attempts": 3}
    )
    job_id = reply.json()["id"]
    job = live_system.wait_for_job(job_id, {"completed", "failed"}, timeout=20)
    assert job["status"] == "completed" and job["attempt"] == 3
    attempts = live_system.api("GET", f"/api/jobs/{job_id}/attempts").json()
    assert [(a["attempt"], a["exit_code"], a["reason"]) for a in attempts] == [
        (1, 1, "exit code 1"),
        (2, 1, "exit code 1"),
        (3, 0, None),
    ]
    # Exponential backoff with jitter: at least half of 1 s, then of 2 s.
    starts = [datetime.fromisoformat(a["started_at"]) for a in attempts]
    assert (starts[1] - starts[0]).total_seconds() >= 0.5
    assert (starts[2] - starts[1]).total_seconds() >= 1.0
    for n in (1, 2, 3):
        output = live_system.api("GET", f"/api/jobs/{job_id}/output?attempt={n}").json()
        assert output["output"] == f"try {n}\n"


def test_a_finished_job_can_be_retried(live_system: LiveSystem) -> None:
    job_id = create(live_system, "once-more", "exit 4")
    assert live_system.wait_for_job(job_id, {"failed"})["exit_code"] == 4
    reply = live_system.api("POST", f"/api/jobs/{job_id}/retry")
    assert reply.status_code == 200 and reply.json()["status"] == "queued"
    job = live_system.wait_for_job(job_id, {"failed"}, timeout=10)
    assert job["attempt"] == 2
    assert len(live_system.api("GET", f"/api/jobs/{job_id}/attempts").json()) == 2
    running = create(live_system, "busy", "sleep 5")
    live_system.wait_for_job(running, {"running"})
    refused = live_system.api("POST", f"/api/jobs/{running}/retry")
    assert refused.status_code == 409 and "only a finished job" in refused.json()["detail"]
    assert live_system.api("POST", "/api/jobs/999999/retry").status_code == 404


def test_bulk_create_is_all_or_none_or_each_alone_in_order(live_system: LiveSystem) -> None:
    jobs: list[dict[str, str | int]] = [
        {"name": f"bulk-{i}", "command": f"echo {i}"} for i in range(50)
    ]
    jobs[7]["max_attempts"] = 3
    reply = live_system.api("POST", "/api/jobs/bulk", {"jobs": jobs})
    assert reply.status_code == 201, reply.text
    created = reply.json()
    assert [j["name"] for j in created] == [j["name"] for j in jobs]
    assert [j["id"] for j in created] == sorted(j["id"] for j in created)
    assert created[7]["max_attempts"] == 3 and created[8]["max_attempts"] == 1
    for job in created:
        assert live_system.wait_for_job(job["id"], {"completed"})["status"] == "completed"
    output = live_system.api("GET", f"/api/jobs/{created[42]['id']}/output").json()
    assert output["output"] == "42\n"

    before = live_system.sql("SELECT count(*) FROM jobs")[0][0]
    taken = [{"name": "bulk-fresh", "command": "true"}, {"name": "bulk-3", "command": "true"}]
    refused = live_system.api("POST", "/api/jobs/bulk", {"jobs": taken})
    assert refused.status_code == 409, refused.text
    assert refused.json()["detail"] == "job name 'bulk-3' already exists"
    twice = [{"name": "bulk-twice", "command": "true"}] * 2
    cases = [
        ({"jobs": twice}, "job 1: name 'bulk-twice' is given twice"),
        ({"jobs": [{"name": "ok", "command": "true"}, {"name": "x\u0000", "command": "y"}]}, ""),
        ({"jobs": []}, ""),
        ({"jobs": [{"name": f"many-{i}", "command": "true"} for i in range(1001)]}, ""),
    ]
    for body, detail in cases:
        reply = live_system.api("POST", "/api/jobs/bulk", body)
        assert reply.status_code == 422, (body, reply.text)
        assert detail in str(reply.json()["detail"]), reply.text
    # Nothing of a refused request was inserted.
    assert live_system.sql("SELECT count(*) FROM jobs")[0][0] == before
    # Each alone: what can be created is, and each refusal answers for its own job.
    body = {"jobs": [*taken, {"name": "bulk-bad", "command": "true", "max_attempts": 0}]}
    reply = live_system.api("POST", "/api/jobs/bulk", {**body, "each_alone": True})
    assert reply.status_code == 200, reply.text
    fresh, taken_again, bad = reply.json()
    assert fresh["job"]["name"] == "bulk-fresh" and "error" not in fresh
    assert taken_again["error"] == {"status": 409, "detail": "job name 'bulk-3' already exists"}
    assert bad["error"]["status"] == 422 and bad["error"]["detail"].startswith("max_attempts:")
    assert live_system.sql("SELECT count(*) FROM jobs")[0][0] == before + 1
