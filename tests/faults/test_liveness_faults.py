"""Liveness faults with real processes: a frozen runner (its stream silent) gets no new
work and its job runs elsewhere, never two at once, even when the runner froze and its
job did not (its reaper kills the job); a runner that never acknowledges what it is sent
has its job re-queued within the ack timeout."""

import os
import queue
import re
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from jobsched.v1 import runner_pb2 as pb
from jobsched.v1 import runner_pb2_grpc
from jobsched_launcher import wait_for

from tests.conftest import LiveSystem, start_live_system
from tests.faults.test_faults import alive, create

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

LEASE_TTL = 6.0
ACK_TIMEOUT = 3.0
# Keepalive (2 s + 2 s by default) and the scheduler's reaction, on a loaded machine.
DETECTION_SECONDS = 10.0


@pytest.fixture
def short_leases(database_url: str, tmp_path: Path) -> Iterator[LiveSystem]:
    system = start_live_system(
        database_url,
        tmp_path,
        LEASE_TTL_SECONDS=str(LEASE_TTL),
        ASSIGN_ACK_TIMEOUT=str(ACK_TIMEOUT),
    )
    try:
        yield system
    finally:
        for proc in system.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
        system.stop_all()


def ticking(log: Path, pidfile: Path, ticks: int | str) -> str:
    """A command that writes its pid, then a line with its attempt every 0.1 s: while it
    is frozen or dead it writes none. `ticks` may be a shell expression."""
    return (
        f"echo $$ > {pidfile}; i=0; while [ $i -lt {ticks} ]; do "
        f'echo "$JOBSCHED_ATTEMPT $(date +%s.%N)" >> {log}; sleep 0.1; i=$((i+1)); done'
    )


def ticks_by_attempt(log: Path) -> dict[int, list[float]]:
    ticks: dict[int, list[float]] = {}
    for line in log.read_text().splitlines():
        attempt, at = line.split()
        ticks.setdefault(int(attempt), []).append(float(at))
    return ticks


def scheduler_log(system: LiveSystem) -> str:
    assert system.log_dir is not None
    return (system.log_dir / "scheduler.log").read_text(errors="replace")


def attempts(system: LiveSystem, job_id: int) -> list[tuple[int, str, str | None]]:
    rows = system.sql(
        "SELECT attempt, runner_id, reason FROM job_attempts WHERE job_id = %s ORDER BY attempt",
        (job_id,),
    )
    return [(a, r, why) for a, r, why in rows]


def ticking_on_runner_1(
    system: LiveSystem, tmp_path: Path, ticks: int | str
) -> tuple[int, Path, int]:
    """A ticking job of two attempts run by runner-1 alone, once it ticks: its id, the
    log of its ticks and its process group."""
    system.stop("runner-2")
    log, pidfile = tmp_path / "ticks.log", tmp_path / "job.pid"
    job_id = create(system, "ticking", ticking(log, pidfile, ticks), max_attempts=2)
    wait_for(lambda: log.exists() and len(log.read_text().split("\n")) > 3, 15, "first ticks")
    return job_id, log, int(pidfile.read_text())


def test_a_frozen_runner_gets_no_work_and_its_job_runs_elsewhere_never_twice_at_once(
    short_leases: LiveSystem, tmp_path: Path
) -> None:
    system = short_leases
    job_id, log, pgid = ticking_on_runner_1(system, tmp_path, 40)
    frozen = system.procs["runner-1"]
    # The runner and its job stop as a frozen host would: the stream goes silent.
    frozen.send_signal(signal.SIGSTOP)
    os.killpg(pgid, signal.SIGSTOP)
    frozen_at = time.monotonic()
    system.start_runner(2)
    wait_for(
        lambda: "Runner runner-1 disconnected" in scheduler_log(system),
        DETECTION_SECONDS,
        "the scheduler to drop the frozen runner",
    )
    assert time.monotonic() - frozen_at <= DETECTION_SECONDS
    # New work goes to the runner that answers, and all of it is done there.
    others = [create(system, f"meanwhile-{n}", "true") for n in range(3)]
    for other in others:
        assert system.wait_for_job(other, {"completed"})["runner_id"] == "runner-2"
        assert [a for a, _, _ in attempts(system, other)] == [1]
    # The frozen job's lease ends, and it is retried on the other runner.
    job = system.wait_for_job(job_id, {"completed"}, timeout=40)
    assert job["attempt"] == 2
    assert attempts(system, job_id) == [(1, "runner-1", "runner lost"), (2, "runner-2", None)]
    # Thawed, the runner kills its stale copy before it runs again, and rejoins.
    frozen.send_signal(signal.SIGCONT)
    wait_for(lambda: not alive(pgid), 15, "the stale copy to be killed")
    wait_for(
        lambda: len(re.findall("Runner runner-1 connected", scheduler_log(system))) == 2,
        15,
        "runner-1 to rejoin",
    )
    ticks = ticks_by_attempt(log)
    assert set(ticks) == {1, 2}
    assert max(ticks[1]) < min(ticks[2]), "the two attempts ran at once"
    assert system.wait_for_job(job_id, {"completed"})["attempt"] == 2


def test_a_runner_frozen_alone_has_its_job_killed_by_its_reaper_before_the_lease_ends(
    short_leases: LiveSystem, tmp_path: Path
) -> None:
    system = short_leases
    # The first attempt would tick for a minute; the second is short.
    long_then_short = '$([ "$JOBSCHED_ATTEMPT" = 1 ] && echo 600 || echo 20)'
    job_id, log, pgid = ticking_on_runner_1(system, tmp_path, long_then_short)
    frozen = system.procs["runner-1"]
    # The runner alone stops (a debugger, a blocked event loop): its job would run on.
    frozen.send_signal(signal.SIGSTOP)
    frozen_at = time.monotonic()
    wait_for(lambda: not alive(pgid), LEASE_TTL + DETECTION_SECONDS, "the job to be killed")
    assert time.monotonic() - frozen_at < LEASE_TTL, "killed only after its lease could end"
    system.start_runner(2)
    job = system.wait_for_job(job_id, {"completed"}, timeout=40)
    assert job["attempt"] == 2
    assert attempts(system, job_id) == [(1, "runner-1", "runner lost"), (2, "runner-2", None)]
    ticks = ticks_by_attempt(log)
    assert max(ticks[1]) < min(ticks[2]), "the two attempts ran at once"
    assert system.log_dir is not None
    runner_log = (system.log_dir / "runner-1.log").read_text(errors="replace")
    assert "kept its jobs past their leases without a word: killing" in runner_log
    # Thawed, the runner rejoins; its stale attempt's result changes nothing.
    frozen.send_signal(signal.SIGCONT)
    wait_for(
        lambda: len(re.findall("Runner runner-1 connected", scheduler_log(system))) == 2,
        15,
        "runner-1 to rejoin",
    )
    assert system.wait_for_job(job_id, {"completed"})["attempt"] == 2


class DeafRunner:
    """Registers and heartbeats as a runner does, but never acknowledges an assignment
    (it neither starts it nor names it)."""

    def __init__(self, addr: str, runner_id: str, token: str):
        self.received: list[pb.SchedulerMessage] = []
        self._outgoing: queue.Queue[pb.RunnerMessage | None] = queue.Queue()
        self._stopped = threading.Event()
        self._channel = grpc.insecure_channel(addr)
        register = pb.Register(runner_id=runner_id, capacity=1)
        self._outgoing.put(pb.RunnerMessage(register=register))
        stub = runner_pb2_grpc.RunnerServiceStub(self._channel)
        metadata = (("authorization", f"Bearer {token}"),)
        self._call = stub.Connect(iter(self._outgoing.get, None), metadata=metadata)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        try:
            for message in self._call:
                self.received.append(message)
                if message.WhichOneof("body") == "registered":
                    interval = message.registered.heartbeat_interval_ms / 1000
                    threading.Thread(target=self._heartbeats, args=(interval,)).start()
        except grpc.RpcError:
            pass

    def _heartbeats(self, interval: float) -> None:
        seq = 0
        while not self._stopped.wait(interval):
            seq += 1
            self._outgoing.put(pb.RunnerMessage(heartbeat=pb.Heartbeat(seq=seq)))

    def of(self, kind: str) -> list[pb.SchedulerMessage]:
        return [m for m in self.received if m.WhichOneof("body") == kind]

    def close(self) -> None:
        self._stopped.set()
        self._outgoing.put(None)
        self._call.cancel()
        self._channel.close()


def test_an_assignment_never_acknowledged_is_requeued_within_the_ack_timeout(
    short_leases: LiveSystem,
) -> None:
    system = short_leases
    system.stop("runner-1")
    system.stop("runner-2")
    deaf = DeafRunner(system.scheduler_addr, "deaf", system.runner_token("deaf"))
    try:
        wait_for(lambda: deaf.of("registered"), 10, "the deaf runner to register")
        job_id = create(system, "unheard", "true", max_attempts=2)
        wait_for(lambda: deaf.of("assignments"), 10, "the assignment")
        sent_at = time.monotonic()
        first = system.wait_for_job(job_id, {"scheduled", "queued"}, timeout=ACK_TIMEOUT + 5)
        assert time.monotonic() - sent_at <= ACK_TIMEOUT + 2
        assert first["reason"] == "not acknowledged"
        assert attempts(system, job_id) == [(1, "deaf", "not acknowledged")]
        # It is told to kill what it may yet start, and is given nothing more.
        wait_for(lambda: deaf.of("kill"), 5, "the kill")
        [kill] = deaf.of("kill")
        assert kill.kill.reason == "not acknowledged"
        assert [(r.job_id, r.attempt) for r in kill.kill.refs] == [(job_id, 1)]
        system.start_runner(1)
        job = system.wait_for_job(job_id, {"completed"}, timeout=20)
        assert (job["attempt"], job["runner_id"]) == (2, "runner-1")
        later = create(system, "later", "true")
        assert system.wait_for_job(later, {"completed"})["runner_id"] == "runner-1"
        assert len(deaf.of("assignments")) == 1
    finally:
        deaf.close()
