"""What operators see: Prometheus metrics and JSON logs."""

import json
from pathlib import Path

import httpx
import pytest
from jobsched_launcher import free_port, wait_for

from tests.conftest import LiveSystem, start_live_system

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


def metric(text: str, name: str) -> float:
    """The value of an unlabelled sample."""
    for line in text.splitlines():
        key, _, value = line.rpartition(" ")
        if key == name:
            return float(value)
    raise AssertionError(f"{name} not in metrics")


def test_scheduler_and_runner_metrics(live_system: LiveSystem) -> None:
    port = free_port()
    live_system.stop("runner-2")
    live_system.start_runner(2, METRICS_BIND=f"127.0.0.1:{port}")
    reply = live_system.api("POST", "/api/jobs/create", {"name": "m", "command": "echo hi"})
    job_id = reply.json()["id"]
    live_system.wait_for_job(job_id, {"completed"})
    live_system.api("POST", "/api/jobs/create", {"name": "m", "command": "true"})  # 409

    def scheduler_metrics() -> str:
        return httpx.get(live_system.metrics_url, timeout=5).text

    wait_for(
        lambda: (
            'jobsched_jobs_finished_total{status="completed"} 1.0' in scheduler_metrics()
            and metric(scheduler_metrics(), "jobsched_runners_connected") == 2
        ),
        10,
        "the finish to be counted and both runners connected",
    )
    text = scheduler_metrics()
    assert metric(text, "jobsched_jobs_created_total") == 1
    assert metric(text, "jobsched_jobs_started_total") == 1
    assert metric(text, "jobsched_enqueue_to_start_seconds_count") == 1
    assert metric(text, "jobsched_job_duration_seconds_count") == 1
    assert metric(text, "jobsched_runners_connected") == 2
    assert metric(text, "jobsched_max_concurrent_jobs") == 2
    assert "jobsched_queue_depth" in text and "jobsched_jobs_running" in text
    assert (
        'grpc_server_handled_total{grpc_code="OK",grpc_method="/jobsched.v1.JobService/CreateJob"}'
        in text
    )
    assert (
        'grpc_server_handled_total{grpc_code="ALREADY_EXISTS",'
        'grpc_method="/jobsched.v1.JobService/CreateJob"}' in text
    )
    runner = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    assert metric(runner, "jobsched_runner_connected") == 1
    assert "jobsched_runner_jobs_finished_total" in runner


def test_json_logs_carry_the_job_id(database_url: str, tmp_path: Path) -> None:
    system = start_live_system(database_url, tmp_path, runners=1, LOG_FORMAT="json")
    try:
        reply = system.api("POST", "/api/jobs/create", {"name": "logged", "command": "true"})
        job_id = reply.json()["id"]
        system.wait_for_job(job_id, {"completed"})
    finally:
        system.stop_all()
    for name in ("scheduler", "runner-1", "gateway"):
        lines = (tmp_path / "logs" / f"{name}.log").read_text().splitlines()
        entries = [json.loads(line) for line in lines if line.strip()]
        assert entries and all({"time", "level", "service", "message"} <= e.keys() for e in entries)
    scheduler = [
        json.loads(x) for x in (tmp_path / "logs" / "scheduler.log").read_text().splitlines()
    ]
    runner = [json.loads(x) for x in (tmp_path / "logs" / "runner-1.log").read_text().splitlines()]
    assert any(e.get("job_id") == job_id and "Created" in e["message"] for e in scheduler)
    assert any(e.get("job_id") == job_id and "completed" in e["message"] for e in runner)


def test_gateway_metrics_label_requests_by_route(live_system: LiveSystem) -> None:
    job_id = live_system.api("POST", "/api/jobs/create", {"name": "g", "command": "true"}).json()[
        "id"
    ]
    live_system.api("GET", f"/api/jobs/{job_id}")
    live_system.api("GET", "/api/jobs/999999")
    text = httpx.get(f"{live_system.gateway_url}/metrics", timeout=5).text
    assert 'http_requests_total{method="GET",route="/api/jobs/{job_id}",status="200"} 1.0' in text
    assert 'http_requests_total{method="GET",route="/api/jobs/{job_id}",status="404"} 1.0' in text
    assert 'http_requests_total{method="POST",route="/api/jobs/create",status="201"} 1.0' in text
