"""The launcher's restart policy and supervisor, with a fake clock and fake processes."""

from __future__ import annotations

import itertools
import multiprocessing
import signal
import socket
import stat
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from jobsched_launcher.backoff import Backoff
from jobsched_launcher.probes import free_port
from jobsched_launcher.supervisor import Supervisor, describe_exit
from jobsched_launcher.system import LocalSystem


def test_delays_double_from_half_a_second_up_to_ten() -> None:
    backoff = Backoff()
    assert [backoff.next_delay(uptime=0.1) for _ in range(7)] == [0.5, 1, 2, 4, 8, 10, 10]


def test_a_service_that_stayed_up_a_while_starts_over() -> None:
    backoff = Backoff()
    for _ in range(5):
        backoff.next_delay(uptime=1)
    assert backoff.next_delay(uptime=30) == 0.5
    assert backoff.next_delay(uptime=1) == 1


def test_thousands_of_crashes_stay_at_the_ceiling() -> None:
    backoff = Backoff()
    assert max(backoff.next_delay(uptime=0) for _ in range(5000)) == 10


@pytest.mark.parametrize(
    ("code", "text"), [(0, "code 0"), (3, "code 3"), (-signal.SIGKILL, "signal SIGKILL")]
)
def test_an_exit_says_its_code_or_signal(code: int, text: str) -> None:
    assert describe_exit(code) == text


@dataclass
class FakeProcess:
    pid: int
    code: int | None = None

    def poll(self) -> int | None:
        return self.code


@dataclass
class FakeSystem:
    procs: dict[str, FakeProcess] = field(default_factory=dict)
    restarts: list[str] = field(default_factory=list)
    next_pid: int = 100

    def restart(self, name: str) -> None:
        self.restarts.append(name)
        self.next_pid += 1
        self.procs[name] = FakeProcess(self.next_pid)


@dataclass
class FakeClock:
    now: float = 0.0

    def __call__(self) -> float:
        return self.now


def supervised(*names: str) -> tuple[Supervisor, FakeSystem, FakeClock]:
    system = FakeSystem({name: FakeProcess(pid) for pid, name in enumerate(names, 1)})
    clock = FakeClock()
    supervisor = Supervisor(system, clock=clock)
    supervisor.check()
    return supervisor, system, clock


def test_only_the_service_that_exited_is_restarted_after_its_delay() -> None:
    supervisor, system, clock = supervised("scheduler", "runner-1", "runner-2")
    system.procs["runner-1"].code = -signal.SIGKILL
    clock.now = 5.0
    supervisor.check()
    clock.now = 5.4
    supervisor.check()
    assert system.restarts == []
    clock.now = 5.5
    supervisor.check()
    assert system.restarts == ["runner-1"]
    assert system.procs["runner-1"].pid == 101
    assert [p.pid for n, p in system.procs.items() if n != "runner-1"] == [1, 3]


def test_a_crash_loop_backs_off_instead_of_spinning() -> None:
    supervisor, system, clock = supervised("gateway")
    restarted_at: list[float] = []
    while clock.now < 60:
        system.procs["gateway"].code = 1  # dies as soon as it is started
        supervisor.check()
        restarted_at += [clock.now] * (len(system.restarts) - len(restarted_at))
        clock.now = round(clock.now + 0.1, 1)
    gaps = [b - a for a, b in itertools.pairwise(restarted_at)]
    assert len(restarted_at) <= 10
    assert gaps[-1] == pytest.approx(10, abs=0.11)


def test_a_service_that_ran_a_while_is_restarted_quickly_again() -> None:
    supervisor, system, clock = supervised("runner-1")
    for _ in range(4):  # four quick crashes: the next delay would be 8 s
        system.procs["runner-1"].code = 1
        supervisor.check()
        clock.now += 10
        supervisor.check()
    clock.now += 60  # then it stays up for a minute
    system.procs["runner-1"].code = 1
    supervisor.check()
    assert supervisor.due["runner-1"] == clock.now + 0.5


def test_only_the_scheduler_gets_the_database_and_no_runner_a_token() -> None:
    secrets = {"DATABASE_URL": "postgresql://u:p@h/db", "DB_PASSWORD": "p", "API_TOKEN": "t"}
    system = LocalSystem({**secrets, "LOG_LEVEL": "DEBUG"})

    def given(program: str) -> set[str]:
        env = system.env_for(program, {})
        assert env["LOG_LEVEL"] == "DEBUG"
        return set(secrets) & set(env)

    assert given("jobsched-scheduler") == set(secrets)
    assert given("jobsched-gateway") == {"API_TOKEN"}
    assert given("jobsched-runner") == set()


def test_each_runner_gets_a_token_of_its_own_that_only_the_scheduler_lists(
    tmp_path: Path,
) -> None:
    elsewhere = tmp_path / "tokens"
    elsewhere.write_text("remote 0123456789abcdef\n")
    system = LocalSystem({"RUNNER_TOKENS_FILE": str(elsewhere), "RUNNER_TOKENS": "x:" + "y" * 16})
    first, second = system.runner_token("runner-1"), system.runner_token("runner-2")
    assert first != second and len(first) >= 16
    assert system.runner_token("runner-1") == first
    scheduler = system.env_for("jobsched-scheduler", {})
    listed = Path(scheduler["RUNNER_TOKENS_FILE"]).read_text().split()
    assert listed == ["remote", "0123456789abcdef", "runner-1", first, "runner-2", second]
    assert stat.S_IMODE(Path(scheduler["RUNNER_TOKENS_FILE"]).stat().st_mode) == 0o600
    runner = system.env_for("jobsched-runner", {"RUNNER_ID": "runner-1", "RUNNER_TOKEN": first})
    assert not {"RUNNER_TOKENS", "RUNNER_TOKENS_FILE"} & set(runner)
    gateway = system.env_for("jobsched-gateway", {})
    assert not {"RUNNER_TOKENS", "RUNNER_TOKENS_FILE"} & set(gateway)
    assert not any(first in value for value in gateway.values())


@pytest.mark.parametrize("mode", ["tls", "mtls"])
def test_jobsched_tls_gives_each_service_its_files(mode: str) -> None:
    system = LocalSystem({"JOBSCHED_TLS": mode})
    scheduler = system.env_for("jobsched-scheduler", {})
    runner = system.env_for("jobsched-runner", {"RUNNER_ID": "runner-1"})
    gateway = system.env_for("jobsched-gateway", {})
    assert scheduler["TLS_CERT_FILE"].endswith("scheduler.pem")
    assert ("TLS_CA_FILE" in scheduler) is (mode == "mtls")
    for client, name in ((runner, "runner-1"), (gateway, "gateway")):
        assert Path(client["TLS_CA_FILE"]).read_text().startswith("-----BEGIN CERTIFICATE")
        if mode == "mtls":
            assert client["TLS_CERT_FILE"].endswith(f"{name}.pem")
            assert Path(client["TLS_KEY_FILE"]).exists()
        else:
            assert "TLS_CERT_FILE" not in client
    with pytest.raises(SystemExit, match="JOBSCHED_TLS"):
        LocalSystem({"JOBSCHED_TLS": "yes"}).env_for("jobsched-runner", {})


def _pick_ports(count: int) -> list[int]:
    return [free_port() for _ in range(count)]


def test_free_ports_never_repeat_across_processes_and_skip_ports_in_use() -> None:
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        picks = [port for ports in pool.map(_pick_ports, [25] * 4) for port in ports]
    assert len(set(picks)) == len(picks) == 100
    assert all(20000 <= port < 32768 for port in picks)
    with socket.socket() as held:
        next_port = free_port() + 1
        held.bind(("127.0.0.1", next_port))
        assert free_port() != next_port
