"""The scheduler, N runners and the gateway as child processes, each in its own process
group, stopped in the order that keeps every result: gateway, runners, scheduler."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from .credentials import Credentials
from .postgres import embedded_postgres
from .probes import free_port, http_ok, port_open, wait_for

# The repository this package is installed from (editable): web/ and .data/ live there.
ROOT = Path(__file__).resolve().parents[4]
BIN = Path(sys.executable).parent

log = logging.getLogger("jobsched.launcher")

SCHEDULER = "jobsched-scheduler"
RUNNER = "jobsched-runner"
# Only the scheduler holds the database's credentials and knows the runner tokens; a
# runner holds its own token alone (its jobs get none of its environment's secrets).
DATABASE_SETTINGS = ("DATABASE_URL", "DB_")
SCHEDULER_SECRETS = (*DATABASE_SETTINGS, "RUNNER_TOKENS")
RUNNER_WITHHELD = (*SCHEDULER_SECRETS, "API_TOKEN")

GATEWAY_STOP_SECONDS = 10.0  # uvicorn's graceful shutdown is 5 s
SCHEDULER_STOP_SECONDS = 15.0  # its gRPC grace, then its workers' grace
# A runner drains, stops what is left (KILL_GRACE_SECONDS), waits for the reaper and
# for acknowledgements; this bounds all of that beyond the two configured graces.
RUNNER_STOP_MARGIN_SECONDS = 20.0


@dataclass(frozen=True)
class Service:
    """How a child was started, so that it can be started again the same way."""

    program: str
    args: tuple[str, ...]
    extra: dict[str, str]


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
    services: dict[str, Service] = field(default_factory=dict, repr=False)
    # A token per runner id, made for this run: the scheduler reads them from a file
    # (RUNNER_TOKENS_FILE) at every connect, so runners started later count too.
    credentials: Credentials = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.credentials = Credentials(self.env)

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    @property
    def scheduler_addr(self) -> str:
        return f"127.0.0.1:{self.scheduler_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def env_for(self, program: str, extra: dict[str, str]) -> dict[str, str]:
        withheld = {SCHEDULER: (), RUNNER: RUNNER_WITHHELD}.get(program, SCHEDULER_SECRETS)
        env = {k: v for k, v in self.env.items() if not k.startswith(withheld)}
        credentials = self.credentials
        scheduler = program == SCHEDULER
        own = {"RUNNER_TOKENS_FILE": str(credentials.tokens_file)} if scheduler else {}
        return {
            **env,
            "SCHEDULER_BIND": self.scheduler_addr,
            "SCHEDULER_ADDR": self.scheduler_addr,
            "GATEWAY_PORT": str(self.gateway_port),
            "WEB_DIR": str(ROOT / "web"),
            "PYTHONUNBUFFERED": "1",
            **own,
            **credentials.tls_env(scheduler, extra.get("RUNNER_ID") or "gateway"),
            **extra,
        }

    @property
    def secrets_dir(self) -> Path:
        """Where this run's runner tokens and certificates are."""
        return self.credentials.dir

    def runner_token(self, runner_id: str) -> str:
        """The token a runner registering as `runner_id` authenticates with."""
        return self.credentials.runner_token(runner_id)

    def spawn(self, name: str, program: str, *args: str, **extra: str) -> None:
        if program == RUNNER and "RUNNER_TOKEN" not in extra:
            runner_id = extra.get("RUNNER_ID", name)
            extra = {"RUNNER_ID": runner_id, **extra, "RUNNER_TOKEN": self.runner_token(runner_id)}
        self.services[name] = Service(program, args, extra)
        self.restart(name)

    def restart(self, name: str) -> None:
        """Starts `name` again as it was last spawned."""
        service = self.services[name]
        command = [str(BIN / service.program), *service.args]
        with self._log_file(name) as out:  # the child keeps its own copy
            # Its own session: a terminal's Ctrl+C reaches the launcher alone, which
            # stops the children in order.
            self.procs[name] = subprocess.Popen(
                command,
                env=self.env_for(service.program, service.extra),
                stdout=out,
                stderr=out,
                start_new_session=True,
            )
        log.info("%s started (pid %d)", name, self.procs[name].pid)

    def _log_file(self, name: str) -> contextlib.AbstractContextManager[IO[bytes] | None]:
        """The file `name` logs to, or none: it shares the launcher's output."""
        if self.log_dir is None:
            return contextlib.nullcontext()
        self.log_dir.mkdir(parents=True, exist_ok=True)
        return open(self.log_dir / f"{name}.log", "ab")

    def migrate(self) -> None:
        subprocess.run(
            [str(BIN / SCHEDULER), "migrate"],
            env=self.env_for(SCHEDULER, {}),
            check=True,
            start_new_session=True,
        )

    def start_scheduler(self) -> None:
        self.spawn("scheduler", SCHEDULER, METRICS_BIND=f"127.0.0.1:{self.metrics_port}")

    def start_runner(self, index: int, **extra: str) -> None:
        name = f"runner-{index}"
        self.spawn(name, RUNNER, **{"RUNNER_ID": name, "METRICS_BIND": "", **extra})

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
        return _stop_together({name: proc}, sig, timeout)[name]

    def stop_all(self) -> None:
        """Gateway first (no new requests), runners next (they drain and report), the
        scheduler and anything else last, so that it stores the runners' results."""
        gateway = [n for n in self.procs if n == "gateway"]
        runners = [n for n in self.procs if n.startswith("runner")]
        for names, timeout in (
            (gateway, GATEWAY_STOP_SECONDS),
            (runners, self.runner_stop_seconds),
            (list(self.procs), SCHEDULER_STOP_SECONDS),
        ):
            procs = {name: self.procs[name] for name in names if name in self.procs}
            _stop_together(procs, signal.SIGTERM, timeout)
            for name in procs:
                del self.procs[name]

    def kill_all(self) -> None:
        """Kills every child's process group at once: the way out of a stop that waits
        too long for someone."""
        for proc in self.procs.values():
            if proc.poll() is None:
                kill_group(proc.pid)

    @property
    def runner_stop_seconds(self) -> float:
        drain = float(self.env.get("RUNNER_DRAIN_SECONDS", "30"))
        kill_grace = float(self.env.get("KILL_GRACE_SECONDS", "5"))
        return drain + kill_grace + RUNNER_STOP_MARGIN_SECONDS


def _stop_together(
    procs: dict[str, subprocess.Popen[bytes]], sig: int, timeout: float
) -> dict[str, int]:
    """Signals every process, then waits for all of them within one deadline; a
    straggler's whole process group is killed."""
    for proc in procs.values():
        if proc.poll() is None:
            proc.send_signal(sig)
    deadline = time.monotonic() + timeout
    codes: dict[str, int] = {}
    for name, proc in procs.items():
        try:
            codes[name] = proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop within %g s; killing its process group", name, timeout)
            kill_group(proc.pid)
            codes[name] = proc.wait()
    return codes


def kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without database, token or service settings, plus
    `extra`: what a throwaway system of the tests or benchmarks starts with."""
    own = ("DB_", "API_TOKEN", "DATABASE_URL", "RUNNER_", "SCHEDULER_", "TLS_")
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
