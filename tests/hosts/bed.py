"""The whole system spread over test hosts: two schedulers, three runners and the
gateway, each started inside its own host's namespace, talking over the bridge."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from jobsched_launcher import clean_env, http_ok, port_open, wait_for
from jobsched_launcher.system import BIN, ROOT

from tests.conftest import LiveSystem

from .database import HostedPostgres
from .network import Network

SCHEDULERS = ("scheduler-a", "scheduler-b")
RUNNERS = ("runner-1", "runner-2", "runner-3")
HOSTS = ("postgres", *SCHEDULERS, *RUNNERS, "gateway", "rogue")
SCHEDULER_PORT = 50051
METRICS_PORT = 9464
GATEWAY_PORT = 8080
# Short leases make a lost runner's job come back within seconds.
LEASE_TTL_SECONDS = "6"
IP = shutil.which("ip") or "/usr/sbin/ip"


class HostSystem(LiveSystem):
    """A LiveSystem whose services each run on the test host of the same name, over
    TLS: the schedulers show the certificate `make_certs` wrote, every client checks it
    against the CA, and each runner authenticates with a token of its own (the launcher
    makes one per runner id and gives the schedulers the file of them)."""

    net: Network
    certs: Path

    @property
    def gateway_url(self) -> str:
        return f"http://{self.net.address('gateway')}:{GATEWAY_PORT}"

    def addr(self, host: str) -> str:
        return f"{self.net.address(host)}:{SCHEDULER_PORT}"

    def restart(self, name: str) -> None:
        service = self.services[name]
        command = [IP, "netns", "exec", self.net.hosts[name].namespace, str(BIN / service.program)]
        with self._log_file(name) as out:
            # `ip netns exec` execs the program itself: the pid is the service's own.
            self.procs[name] = subprocess.Popen(
                [*command, *service.args],
                env=self.env_for(service.program, service.extra),
                stdout=out,
                stderr=out,
                start_new_session=True,
            )

    def start_scheduler_on(self, host: str) -> None:
        address = self.net.address(host)
        self.spawn(
            host,
            "jobsched-scheduler",
            SCHEDULER_BIND=self.addr(host),
            METRICS_BIND=f"{address}:{METRICS_PORT}",
            TLS_CERT_FILE=str(self.certs / "scheduler.pem"),
            TLS_KEY_FILE=str(self.certs / "scheduler-key.pem"),
        )

    def start_runner_on(self, host: str) -> None:
        both = ",".join(self.addr(s) for s in SCHEDULERS)
        self.spawn(
            host,
            "jobsched-runner",
            SCHEDULER_ADDR=both,
            RUNNER_ID=host,
            METRICS_BIND="",
            TLS_CA_FILE=self.ca_file,
        )

    def start_gateway_on(self, host: str) -> None:
        self.spawn(
            host,
            "jobsched-gateway",
            GATEWAY_HOST=self.net.address(host),
            GATEWAY_PORT=str(GATEWAY_PORT),
            SCHEDULER_ADDR=self.addr(SCHEDULERS[0]),
            TLS_CA_FILE=self.ca_file,
        )

    @property
    def ca_file(self) -> str:
        return str(self.certs / "ca.pem")

    def start(self, timeout: float = 60) -> None:
        for host in SCHEDULERS:
            self.start_scheduler_on(host)
        for host in SCHEDULERS:
            wait_for(lambda host=host: port_open(self.addr(host)), timeout, host)
        for host in RUNNERS:
            self.start_runner_on(host)
        self.start_gateway_on("gateway")
        wait_for(lambda: http_ok(f"{self.gateway_url}/healthz"), timeout, "gateway")
        wait_for(lambda: self.runners_connected() == len(RUNNERS), timeout, "every runner")

    def runners_connected(self, scheduler: str | None = None) -> int:
        """Runners connected, by the schedulers' own gauge."""
        return sum(self._gauge(s) for s in ([scheduler] if scheduler else SCHEDULERS))

    def _gauge(self, scheduler: str) -> int:
        url = f"http://{self.net.address(scheduler)}:{METRICS_PORT}/metrics"
        try:
            text = _get(url)
        except OSError:
            return 0
        found = re.search(r"^jobsched_runners_connected (\S+)$", text, re.MULTILINE)
        return int(float(found[1])) if found else 0

    def create(self, name: str, command: str, **extra: object) -> int:
        reply = self.api("POST", "/api/jobs/create", {"name": name, "command": command, **extra})
        assert reply.status_code == 201, reply.text
        job_id: int = reply.json()["id"]
        return job_id

    def runner_of(self, job_id: int) -> str:
        """The runner of the job's latest attempt."""
        rows = self.sql("SELECT runner_id FROM jobs WHERE id = %s", (job_id,))
        runner: str = rows[0][0]
        return runner

    def statuses(self) -> dict[str, int]:
        return dict(self.sql("SELECT status, count(*) FROM jobs GROUP BY status"))

    def rogue(self, action: str, *options: str, target: str = SCHEDULERS[0]) -> dict[str, Any]:
        """What the rogue host gets when it tries `action` on scheduler `target`."""
        command = [*self.net.exec_prefix("rogue"), sys.executable, "-m", "tests.hosts.rogue"]
        done = subprocess.run(
            [*command, self.addr(target), self.ca_file, action, *options],
            cwd=ROOT,
            env=clean_env(),
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert done.returncode == 0, done.stderr
        reply: dict[str, Any] = json.loads(done.stdout)
        return reply

    def log_of(self, name: str) -> str:
        assert self.log_dir is not None
        path = self.log_dir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""


def _get(url: str) -> str:
    import urllib.request

    with urllib.request.urlopen(url, timeout=2) as reply:
        text: str = reply.read().decode()
        return text


def make_certs(net: Network, directory: Path) -> Path:
    """A CA, and the schedulers' certificate naming both their addresses."""
    hosts = ",".join(net.address(s) for s in SCHEDULERS)
    subprocess.run(
        [str(BIN / "jobsched-scheduler"), "certs", str(directory), "--hosts", hosts], check=True
    )
    return directory


def host_system(
    net: Network, postgres: HostedPostgres, certs: Path, dbname: str, log_dir: Path, **env: str
) -> HostSystem:
    """The system over database `dbname`, already migrated, not started yet."""
    system = HostSystem(
        env=clean_env(
            DATABASE_URL=postgres.url(dbname),
            CHECK_INTERVAL="10",
            LEASE_TTL_SECONDS=LEASE_TTL_SECONDS,
            RUNNER_DRAIN_SECONDS="5",
            API_TOKEN="hosts-test-admin-token",
            **env,
        ),
        runners=len(RUNNERS),
        log_dir=log_dir,
    )
    system.net = net
    system.certs = certs
    system.token = system.env["API_TOKEN"]
    return system
