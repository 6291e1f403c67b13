"""The runner link's attacks, tried on a real scheduler over real loopback gRPC: a rogue
registration (no token, a wrong token, another runner's name), a forged report and a
hijacking heartbeat on another runner's attempt; and jobs run over TLS and mTLS."""

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path

import grpc
import pytest
from jobsched.v1 import runner_pb2 as pb
from jobsched.v1 import runner_pb2_grpc
from jobsched_common.tls import TlsFiles, aio_channel
from jobsched_launcher import free_port, wait_for

from tests.conftest import LiveSystem, _print_logs, start_live_system

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

# Generous: the machine may be loaded; a refusal comes at once when it comes.
ANSWER_SECONDS = 15.0


class Rogue:
    """A process that speaks RunnerService itself: what it sends, what it is answered."""

    def __init__(self, channel: grpc.aio.Channel, metadata: Sequence[tuple[str, str]]):
        self._sent: asyncio.Queue[pb.RunnerMessage | None] = asyncio.Queue()
        stub = runner_pb2_grpc.RunnerServiceStub(channel)
        self.call = stub.Connect(self._requests(), metadata=tuple(metadata))
        self.received: list[pb.SchedulerMessage] = []

    async def _requests(self) -> AsyncIterator[pb.RunnerMessage]:
        while (message := await self._sent.get()) is not None:
            yield message

    def send(self, **body: object) -> None:
        self._sent.put_nowait(pb.RunnerMessage(**body))  # type: ignore[arg-type]

    async def until(self, kind: str) -> pb.SchedulerMessage:
        """The next message of `kind`; fails if the call ends or nothing comes in time."""
        async with asyncio.timeout(ANSWER_SECONDS):
            while True:
                message = await self.call.read()
                assert message is not grpc.aio.EOF, f"stream ended before {kind}"
                assert isinstance(message, pb.SchedulerMessage)
                self.received.append(message)
                if message.WhichOneof("body") == kind:
                    return message

    def close(self) -> None:
        self._sent.put_nowait(None)
        self.call.cancel()


def bearer(token: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {token}")]


async def refused(addr: str, runner_id: str, metadata: list[tuple[str, str]]) -> grpc.StatusCode:
    """How the scheduler ends a registration; it must answer nothing before that."""
    async with grpc.aio.insecure_channel(addr) as channel:
        rogue = Rogue(channel, metadata)
        rogue.send(register=pb.Register(runner_id=runner_id, capacity=10_000))
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await rogue.until("registered")
        assert rogue.received == []
        rogue.close()
        return error.value.code()


def create(system: LiveSystem, name: str, command: str) -> int:
    reply = system.api("POST", "/api/jobs/create", {"name": name, "command": command})
    assert reply.status_code == 201, reply.text
    job_id: int = reply.json()["id"]
    return job_id


def running_on(system: LiveSystem, job_id: int) -> tuple[int, str]:
    """Waits for the job to run; its attempt and the runner it was given to."""
    job = system.wait_for_job(job_id, {"running"})
    return job["attempt"], job["runner_id"]


def test_no_credential_a_wrong_one_or_another_runners_name_registers_nothing(
    live_system: LiveSystem,
) -> None:
    job_id = create(live_system, "held", "sleep 4")
    attempt, holder = running_on(live_system, job_id)
    other = ({"runner-1", "runner-2"} - {holder}).pop()
    addr = live_system.scheduler_addr

    async def attacks() -> list[grpc.StatusCode]:
        return [
            await refused(addr, holder, []),
            await refused(addr, holder, bearer("not-a-token-of-this-system")),
            await refused(addr, holder, bearer(live_system.runner_token(other))),
            await refused(addr, f"{holder}-x", bearer(live_system.runner_token(holder))),
        ]

    assert asyncio.run(attacks()) == [
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.PERMISSION_DENIED,
    ]
    # The holder's attempt was not ended by a registration in its name.
    job = live_system.wait_for_job(job_id, {"completed", "failed"})
    assert (job["status"], job["attempt"], job["runner_id"]) == ("completed", attempt, holder)
    log = (live_system.log_dir or Path()) / "scheduler.log"
    assert f"Runner {holder}-x connected" not in log.read_text()


@pytest.fixture
def one_runner(database_url: str, tmp_path: Path) -> Iterator[LiveSystem]:
    system = start_live_system(database_url, tmp_path, runners=1)
    try:
        yield system
    finally:
        system.stop_all()
        _print_logs(tmp_path / "logs")


def test_a_forged_report_and_a_hijacking_heartbeat_change_nothing(one_runner: LiveSystem) -> None:
    system = one_runner
    job_id = create(system, "real", "sleep 2; echo real")
    attempt, holder = running_on(system, job_id)
    ref = pb.AttemptRef(job_id=job_id, attempt=attempt)
    lease = "SELECT lease_expires_at, status FROM jobs WHERE id = %s"
    # The holder is paused, so that only the rogue could renew its lease meanwhile.
    runner = system.procs[holder]
    runner.send_signal(signal.SIGSTOP)
    try:
        before = system.sql(lease, (job_id,))

        async def attack() -> tuple[pb.SchedulerMessage, pb.SchedulerMessage]:
            async with grpc.aio.insecure_channel(system.scheduler_addr) as channel:
                # A real runner credential, of a runner that was given nothing.
                rogue = Rogue(channel, bearer(system.runner_token("mallory")))
                rogue.send(register=pb.Register(runner_id="mallory", capacity=1))
                rogue.send(draining=pb.Draining())
                await rogue.until("registered")
                rogue.send(started=pb.Started(ref=ref))
                rogue.send(output=pb.OutputChunk(ref=ref, data=b"forged "))
                rogue.send(finished=pb.Finished(ref=ref, exit_code=0, output_tail=b"forged"))
                acked = await rogue.until("acked")
                rogue.send(heartbeat=pb.Heartbeat(seq=7, running=[ref]))
                renewed = await rogue.until("renewed")
                rogue.close()
                return acked, renewed

        acked, renewed = asyncio.run(attack())
        # Acknowledged (not worth sending again), and renewed nothing.
        assert list(acked.acked.refs) == [ref]
        assert (renewed.renewed.seq, list(renewed.renewed.refs)) == (7, [])
        assert system.sql(lease, (job_id,)) == before
        assert before[0][1] == "running"
    finally:
        runner.send_signal(signal.SIGCONT)
    job = system.wait_for_job(job_id, {"completed", "failed"})
    assert (job["status"], job["exit_code"], job["runner_id"]) == ("completed", 0, holder)
    output = system.api("GET", f"/api/jobs/{job_id}/output").json()
    assert output["output"] == "real\n"
    log = (system.log_dir or Path()) / "scheduler.log"
    wait_for(lambda: "report from runner mallory refused" in log.read_text(), 5, "the warning")


@pytest.mark.parametrize("mode", ["tls", "mtls"])
def test_jobs_run_over_tls_and_plaintext_or_strangers_get_nothing(
    database_url: str, tmp_path: Path, mode: str
) -> None:
    system = start_live_system(database_url, tmp_path, runners=1, JOBSCHED_TLS=mode)
    try:
        job_id = create(system, f"over-{mode}", "echo secure")
        job = system.wait_for_job(job_id, {"completed", "failed"})
        assert (job["status"], job["runner_id"]) == ("completed", "runner-1")
        certs = system.secrets_dir / "tls"
        token = bearer(system.runner_token("runner-1"))
        # Plaintext to the TLS port: no handshake, no call.
        assert asyncio.run(refused(system.scheduler_addr, "runner-1", token)) in {
            grpc.StatusCode.UNAVAILABLE
        }
        stranger = TlsFiles(ca_file=str(certs / "ca.pem"))
        code = asyncio.run(tls_refused(system.scheduler_addr, stranger, []))
        # Without a token or certificate: refused by the scheduler (tls) or the handshake.
        assert code == {"tls": grpc.StatusCode.UNAUTHENTICATED}.get(
            mode, grpc.StatusCode.UNAVAILABLE
        )
    finally:
        system.stop_all()
        _print_logs(tmp_path / "logs")


async def tls_refused(
    addr: str, files: TlsFiles, metadata: list[tuple[str, str]]
) -> grpc.StatusCode:
    async with aio_channel(addr, files) as channel:
        rogue = Rogue(channel, metadata)
        rogue.send(register=pb.Register(runner_id="runner-1", capacity=1))
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await rogue.until("registered")
        rogue.close()
        return error.value.code()


def test_the_scheduler_refuses_a_plaintext_listener_off_loopback() -> None:
    env = {
        **os.environ,
        "SCHEDULER_BIND": f"0.0.0.0:{free_port()}",
        "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none",
        "TLS_CERT_FILE": "",
        "TLS_KEY_FILE": "",
    }
    done = subprocess.run(
        [str(Path(sys.executable).parent / "jobsched-scheduler")],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode != 0
    assert "refusing to listen on 0.0.0.0" in done.stderr
    assert "without TLS" in done.stderr
