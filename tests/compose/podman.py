"""Drives docker-compose.yml with podman-compose, one service at a time, gating each on
its own healthcheck run by `podman healthcheck run`."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"


def run(*args: str, env: Mapping[str, str] | None = None, check: bool = True) -> str:
    done = subprocess.run(args, env=env, capture_output=True, text=True, check=False, cwd=ROOT)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} exited {done.returncode}: {done.stderr[-2000:]}")
    return done.stdout


def poll(check: Callable[[], object], timeout: float, what: str, every: float = 0.5) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(every)
    raise TimeoutError(f"{what} not within {timeout:.0f}s")


def start_order(spec: Mapping[str, Any]) -> list[str]:
    """The services in an order where each comes after what it depends on."""
    services: Mapping[str, Any] = spec["services"]
    order: list[str] = []

    def visit(name: str) -> None:
        if name in order:
            return
        for dependency in services[name].get("depends_on") or {}:
            visit(dependency)
        order.append(name)

    for name in services:
        visit(name)
    return order


def one_shots(spec: Mapping[str, Any]) -> set[str]:
    """Services that others wait for to exit (service_completed_successfully)."""
    found = set()
    for service in spec["services"].values():
        depends = service.get("depends_on") or {}
        if isinstance(depends, dict):
            for name, how in depends.items():
                if (how or {}).get("condition") == "service_completed_successfully":
                    found.add(name)
    return found


@dataclass
class Compose:
    """podman-compose's `condition: service_healthy` does not work with podman 4.3 (its
    healthchecks run only through systemd) and its `--requires` links fail once a
    one-shot has exited, so services start with `up -d --no-deps`, in dependency order."""

    env: Mapping[str, str]
    project: str = "jobsched"

    @property
    def spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
        return spec

    def compose(self, *args: str, check: bool = True) -> str:
        return run("podman-compose", "-f", str(COMPOSE_FILE), *args, env=self.env, check=check)

    def containers(self, service: str | None = None, *, all_states: bool = False) -> list[str]:
        filters = ["--filter", f"label=io.podman.compose.project={self.project}"]
        if service:
            filters += ["--filter", f"label=com.docker.compose.service={service}"]
        states = ["-a"] if all_states else []
        return run("podman", "ps", *states, *filters, "--format", "{{.Names}}").split()

    def healthy(self, container: str) -> bool:
        """Exit code 0 (podman 4.3 prints nothing when healthy, "unhealthy" otherwise)."""
        check = ("podman", "healthcheck", "run", container)
        return subprocess.run(check, capture_output=True, check=False).returncode == 0

    def wait_healthy(self, service: str, timeout: float = 90) -> None:
        if "healthcheck" not in self.spec["services"][service]:
            return
        poll(
            lambda: (names := self.containers(service)) and all(map(self.healthy, names)),
            timeout,
            f"{service} healthy",
            every=1,
        )

    def wait_exited(self, service: str, timeout: float = 90) -> None:
        """Waits for a one-shot to exit and requires exit code 0."""
        names = self.containers(service, all_states=True)
        assert names, f"no {service} container"
        code = run("podman", "wait", "--interval", "500ms", names[0], check=False)
        if code.strip() != "0":
            logs = run("podman", "logs", names[0], check=False)
            raise RuntimeError(f"{service} exited {code.strip()}: {logs[-2000:]}")

    def up(self, *, scale: Mapping[str, int] | None = None) -> None:
        spec = self.spec
        shots = one_shots(spec)
        for service in start_order(spec):
            extra = [f"--scale={service}={scale[service]}"] if scale and service in scale else []
            self.compose("up", "-d", "--no-deps", *extra, service)
            if service in shots:
                self.wait_exited(service)
            else:
                self.wait_healthy(service)

    def scale(self, service: str, replicas: int) -> None:
        self.compose("up", "-d", "--no-deps", f"--scale={service}={replicas}", service)
        poll(lambda: len(self.containers(service)) == replicas, 60, f"{replicas} {service}")
        self.wait_healthy(service)

    def save_logs(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w") as out:
            for name in self.containers(all_states=True):
                logs = subprocess.run(
                    ("podman", "logs", name), capture_output=True, text=True, check=False
                )
                out.write(f"===== {name}\n{logs.stdout}{logs.stderr}\n")

    def down(self) -> None:
        """`--remove-orphans`: podman-compose's down forgets replicas added by --scale."""
        self.compose("down", "-v", "--remove-orphans", "-t", "10", check=False)

    def env_of(self, container: str) -> dict[str, str]:
        lines = run("podman", "exec", container, "env").splitlines()
        return dict(line.split("=", 1) for line in lines if "=" in line)

    def leftovers(self) -> dict[str, list[str]]:
        label = f"label=io.podman.compose.project={self.project}"
        return {
            "containers": run(
                "podman", "ps", "-a", "--filter", label, "--format", "{{.Names}}"
            ).split(),
            "networks": run(
                "podman", "network", "ls", "--filter", label, "--format", "{{.Name}}"
            ).split(),
            "volumes": run(
                "podman", "volume", "ls", "--filter", label, "--format", "{{.Name}}"
            ).split(),
        }
