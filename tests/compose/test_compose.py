"""`docker compose up` for real, with podman: the three images built from their
Dockerfiles, the whole system run from docker-compose.yml and checked end to end.

Run by `make compose-test` (after scripts/containers/prepare.sh), not by `make test`.
podman 4.3 runs healthchecks only through systemd, so podman-compose cannot wait for
`service_healthy`: the system is started one service at a time (`up -d --no-deps`), each
gated on `podman healthcheck run` of its own healthcheck (tests/compose/podman.py)."""

from __future__ import annotations

import itertools
import json
import os
import secrets
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.compose import images
from tests.compose.podman import Compose, poll, run

pytestmark = pytest.mark.compose

GATEWAY = "http://127.0.0.1:8080"
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
FINAL = {"completed", "failed", "cancelled"}


class Api:
    def __init__(self, token: str) -> None:
        self.http = httpx.Client(
            base_url=GATEWAY, headers={"Authorization": f"Bearer {token}"}, timeout=10
        )
        self.names = itertools.count()

    def call(self, method: str, path: str, body: Any = None) -> httpx.Response:
        return self.http.request(method, path, json=body)

    def name(self) -> str:
        return f"compose-{next(self.names)}"

    def create(self, command: str, **fields: Any) -> int:
        reply = self.call(
            "POST", "/api/jobs/create", {"name": self.name(), "command": command, **fields}
        )
        assert reply.status_code == 201, reply.text
        job_id: int = reply.json()["id"]
        return job_id

    def job(self, job_id: int) -> dict[str, Any]:
        job: dict[str, Any] = self.call("GET", f"/api/jobs/{job_id}").raise_for_status().json()
        return job

    def finished(self, job_id: int, timeout: float = 60) -> dict[str, Any]:
        poll(lambda: self.job(job_id)["status"] in FINAL, timeout, f"job {job_id} finished")
        return self.job(job_id)

    def output(self, job_id: int) -> str:
        text: str = (
            self.call("GET", f"/api/jobs/{job_id}/output").raise_for_status().json()["output"]
        )
        return text

    def stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = self.call("GET", "/api/stats").raise_for_status().json()
        return stats


@pytest.fixture(scope="module")
def rebuild(tmp_path_factory: pytest.TempPathFactory) -> images.Build:
    builds = images.build_all()
    rebuild = images.rebuild_after_change("runner", tmp_path_factory.mktemp("context"))
    print("\n" + images.report(builds, rebuild))
    return rebuild


@pytest.fixture(scope="module")
def compose(rebuild: images.Build) -> Iterator[Compose]:
    env = {
        **os.environ,
        "DB_PASSWORD": secrets.token_hex(16),
        "API_TOKEN": secrets.token_hex(32),
        "RUNNER_TOKEN": secrets.token_hex(32),
    }
    system = Compose(env)
    system.down()
    try:
        system.up()
        yield system
    finally:
        system.save_logs(ARTIFACTS / "compose-logs.txt")
        system.down()


@pytest.fixture(scope="module")
def api(compose: Compose) -> Iterator[Api]:
    api = Api(compose.env["API_TOKEN"])
    yield api
    api.http.close()


def test_a_change_to_one_service_rebuilds_only_its_own_layers(rebuild: images.Build) -> None:
    assert rebuild.rebuilt[:2] == [
        "COPY services/runner/ services/runner/",
        "RUN pip install --no-cache-dir ./services/runner",
    ]
    assert not [step for step in rebuild.rebuilt if "protos" in step or "libs/common" in step]


def test_every_service_is_healthy_and_the_dashboard_answers(compose: Compose, api: Api) -> None:
    for service in ("postgres", "scheduler", "runner", "gateway"):
        names = compose.containers(service)
        assert names and all(map(compose.healthy, names)), service
    page = httpx.get(f"{GATEWAY}/", timeout=10)
    assert page.status_code == 200 and "<html" in page.text.lower()
    assert httpx.get(f"{GATEWAY}/api/stats", timeout=10).status_code == 401
    runners = compose.containers("runner")
    assert len(runners) == 2  # deploy.replicas
    poll(lambda: api.stats()["runners_connected"] == 2, 30, "both runners connected")


def test_a_job_runs_in_a_hardened_runner_and_its_output_comes_back(api: Api) -> None:
    job = api.finished(api.create("id -u; echo hi > /tmp/f && cat /tmp/f; env"))
    assert job["status"] == "completed", job
    output = api.output(job["id"])
    assert output.startswith("10001\nhi\n"), output
    assert "DB_PASSWORD" not in output and "POSTGRES" not in output


def test_a_job_writing_outside_tmp_fails_cleanly(api: Api) -> None:
    job = api.finished(api.create("echo x > /etc/x"))
    assert job["status"] == "failed" and job["exit_code"] not in (None, 0), job
    assert "Read-only file system" in api.output(job["id"])


def test_runners_hold_no_database_credentials_and_grpc_is_not_published(compose: Compose) -> None:
    for runner in compose.containers("runner"):
        env = compose.env_of(runner)
        assert not [name for name in env if name.startswith(("DB_", "POSTGRES", "PG"))], env
        # The CA's certificate only, not its key.
        tls = run("podman", "exec", runner, "ls", "/tls").split()
        assert "ca.pem" in tls and not [name for name in tls if "key" in name], tls
    published = {
        name: json.loads(
            run("podman", "inspect", "--format", "{{json .NetworkSettings.Ports}}", name)
        )
        for name in compose.containers()
    }
    host_ports = {
        name: [
            b["HostIp"] + ":" + b["HostPort"]
            for bindings in ports.values()
            if bindings
            for b in bindings
        ]
        for name, ports in published.items()
    }
    assert {name: ports for name, ports in host_ports.items() if ports} == {
        compose.containers("gateway")[0]: ["127.0.0.1:8080"]
    }


def peak_overlap(jobs: list[dict[str, Any]]) -> int:
    edges = []
    for job in jobs:
        edges.append((datetime.fromisoformat(job["started_at"]), 1))
        edges.append((datetime.fromisoformat(job["finished_at"]), -1))
    running = peak = 0
    for _, step in sorted(edges):
        running += step
        peak = max(peak, running)
    return peak


def idle(api: Api) -> bool:
    stats = api.stats()
    return int(stats["queued"]) + int(stats["running"]) == 0


def test_three_runners_complete_a_burst_of_200_within_the_limit(compose: Compose, api: Api) -> None:
    compose.scale("runner", 3)
    poll(lambda: api.stats()["runners_connected"] == 3, 60, "three runners connected")
    assert api.call("PUT", "/api/config", {"max_concurrent_jobs": 6}).status_code == 200
    batch = [{"name": f"burst-{i}", "command": "sleep 0.1"} for i in range(200)]
    ids = [
        job["id"]
        for job in api.call("POST", "/api/jobs/bulk", {"jobs": batch}).raise_for_status().json()
    ]
    poll(lambda: idle(api), 180, "the burst finished")
    jobs = [api.job(i) for i in ids]
    assert {job["status"] for job in jobs} == {"completed"}
    assert len({job["runner_id"] for job in jobs}) == 3
    assert 2 <= peak_overlap(jobs) <= 6, peak_overlap(jobs)


def runner_running(api: Api, job_id: int) -> str | None:
    job = api.job(job_id)
    return str(job["runner_id"]) if job["status"] == "running" else None


def test_a_killed_runner_s_job_is_rescued_and_the_runner_comes_back(
    compose: Compose, api: Api
) -> None:
    job_id = api.create("sleep 6", max_attempts=3)
    poll(lambda: runner_running(api, job_id), 30, "the job running")
    runner_id = runner_running(api, job_id)
    assert runner_id
    victim = next(
        name
        for name in compose.containers("runner")
        if run("podman", "inspect", "--format", "{{.Config.Hostname}}", name).strip() in runner_id
    )
    pid = run("podman", "inspect", "--format", "{{.State.Pid}}", victim).strip()
    os.kill(int(pid), 9)
    poll(lambda: api.job(job_id)["attempt"] >= 2, 15, "a second attempt within 15 s")
    assert api.finished(job_id)["status"] == "completed"
    attempts = api.call("GET", f"/api/jobs/{job_id}/attempts").json()
    assert attempts[0]["runner_id"] == runner_id and attempts[0]["reason"], attempts
    # The restart policy (unless-stopped) brings the killed container back.
    poll(lambda: compose.healthy(victim), 60, f"{victim} restarted", every=1)
    poll(lambda: api.stats()["runners_connected"] == 3, 60, "three runners again")


def test_while_postgres_restarts_the_api_answers_503_then_everything_completes(
    compose: Compose, api: Api
) -> None:
    before = [api.create("sleep 1") for _ in range(5)]
    postgres = compose.containers("postgres")[0]
    run("podman", "stop", "-t", "10", postgres)
    poll(lambda: api.call("GET", "/api/stats").status_code == 503, 30, "503 while postgres is down")
    assert (
        api.call("POST", "/api/jobs/create", {"name": api.name(), "command": "true"}).status_code
        == 503
    )
    run("podman", "start", postgres)
    compose.wait_healthy("postgres")
    poll(lambda: api.call("GET", "/api/stats").status_code == 200, 60, "the API back")
    after = [api.create("echo after") for _ in range(5)]
    for job_id in before + after:
        assert api.finished(job_id, timeout=90)["status"] in {"completed", "failed"}
    assert {api.job(i)["status"] for i in after} == {"completed"}
    assert api.stats()["queued"] == 0


def test_compose_down_leaves_nothing(compose: Compose) -> None:
    compose.down()
    assert compose.leftovers() == {"containers": [], "networks": [], "volumes": []}
