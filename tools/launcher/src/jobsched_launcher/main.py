"""`jobsched-launcher` (`make run`): the whole system on this machine, supervised.

Each service runs in its own process group; one that exits is restarted after a backoff
(0.5 s doubling to 10 s, forgiven after 30 s up) and the others go on. Ctrl+C or SIGTERM
stops the gateway, then the runners (they drain and report), then the scheduler, then
the embedded PostgreSQL; a second Ctrl+C kills every service at once.

Read from the environment, or from `.env` in the working directory:

    DATABASE_URL or DB_HOST  a PostgreSQL to use; without either, an embedded server
    JOBSCHED_DATA_DIR        where the embedded server keeps its data (default: .data
                             in the repository; the server lives in its postgres/)
    GATEWAY_PORT             the dashboard and REST API (default 8080)
    SCHEDULER_PORT           the scheduler's gRPC API (default 50051)
    METRICS_PORT             the scheduler's Prometheus /metrics (default 9464)
    JOBSCHED_RUNNERS         how many runners (default 2)
    JOBSCHED_TLS             `tls`: the scheduler's gRPC over TLS, from a CA made for
                             this run; `mtls`: every gRPC client shows a certificate
                             too (runners by their id); default: plaintext on loopback

Each runner gets a token of its own, made for this run (the scheduler reads them from a
file), so that no other process can act as a runner. Everything else
(RUNNER_DRAIN_SECONDS, API_TOKEN, ...) is passed on to the services; the database's
settings to the scheduler alone."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from dotenv import dotenv_values

from .postgres import configured_database, embedded_postgres
from .probes import http_ok, port_open
from .supervisor import Supervisor
from .system import ROOT, LocalSystem

log = logging.getLogger("jobsched.launcher")


@dataclass(frozen=True)
class LauncherConfig:
    gateway_port: int
    scheduler_port: int
    metrics_port: int
    runners: int
    data_dir: Path

    @classmethod
    def from_env(cls, env: dict[str, str]) -> LauncherConfig:
        return cls(
            gateway_port=int(env.get("GATEWAY_PORT", "8080")),
            scheduler_port=int(env.get("SCHEDULER_PORT", "50051")),
            metrics_port=int(env.get("METRICS_PORT", "9464")),
            runners=int(env.get("JOBSCHED_RUNNERS", "2")),
            data_dir=Path(env.get("JOBSCHED_DATA_DIR") or ROOT / ".data"),
        )


def read_env() -> dict[str, str]:
    """`.env` in the working directory (as the services read it), then the environment."""
    env = {k: v for k, v in dotenv_values(".env").items() if v is not None}
    env.update(os.environ)
    return env


@contextlib.contextmanager
def database(env: dict[str, str], data_dir: Path) -> Iterator[dict[str, str]]:
    """`env` with a DATABASE_URL: the configured one, or an embedded server's, which is
    stopped on the way out."""
    if configured_database(env):
        yield env
        return
    server = embedded_postgres(data_dir / "postgres")
    log.info("Embedded PostgreSQL in %s", data_dir / "postgres")
    try:
        yield {**env, "DATABASE_URL": server.get_uri()}
    finally:
        server.cleanup()
        log.info("Embedded PostgreSQL stopped")


def supervise(system: LocalSystem, stop: threading.Event) -> None:
    """Starts the services in order and keeps them running until `stop` is set."""
    supervisor = Supervisor(system)
    system.migrate()
    system.start_scheduler()
    if not supervisor.run_until(lambda: port_open(system.scheduler_addr), stop):
        return
    for index in range(1, system.runners + 1):
        system.start_runner(index)
    system.start_gateway()
    if supervisor.run_until(lambda: http_ok(f"{system.gateway_url}/healthz"), stop):
        log.info("Dashboard: %s  (Ctrl+C stops everything)", system.gateway_url)
    supervisor.run_until(lambda: False, stop)


@dataclass
class StopSignals:
    """The first SIGINT or SIGTERM stops the system in order; a second kills it at once."""

    stop: threading.Event = field(default_factory=threading.Event)
    system: LocalSystem | None = None

    def install(self) -> None:
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGTERM, self._on_signal)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if not self.stop.is_set():
            log.info("%s: stopping in order (once more to kill everything at once)", name)
            self.stop.set()
        elif self.system is not None:
            log.warning("%s again: killing every service now", name)
            self.system.kill_all()


def setup_logging() -> None:
    """Lines like the services' own, on the output they share; the embedded server's
    chatter stays below WARNING."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        logging.Formatter("%(asctime)s launcher %(levelname)s %(message)s", "%Y/%m/%d %H:%M:%S")
    )
    logging.basicConfig(level=logging.WARNING, handlers=[handler])
    log.setLevel(logging.INFO)


def main() -> None:
    setup_logging()
    signals = StopSignals()
    signals.install()
    env = read_env()
    config = LauncherConfig.from_env(env)
    with database(env, config.data_dir) as env:
        system = LocalSystem(
            env,
            runners=config.runners,
            gateway_port=config.gateway_port,
            scheduler_port=config.scheduler_port,
            metrics_port=config.metrics_port,
        )
        signals.system = system
        try:
            supervise(system, signals.stop)
        finally:
            log.info("Stopping: gateway, runners, scheduler")
            system.stop_all()
    log.info("Stopped")
