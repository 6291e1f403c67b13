"""Fakes for the runner's unit tests: virtual time, a scheduler at the far end of an
in-memory stream, and commands that run until the test ends them. No gRPC, no processes."""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterable
from datetime import UTC, datetime

import grpc
from jobsched.v1 import runner_pb2 as pb
from jobsched_runner.attempts import Key, to_key, to_ref
from jobsched_runner.execute import CapturedOutput, Outcome
from jobsched_runner.link import Incoming
from jobsched_runner.settings import Settings

LEASE_TTL_SECONDS = 10.0


def settings(**overrides: object) -> Settings:
    values: dict[str, object] = {
        "SCHEDULER_ADDR": "first:1,second:2",
        "RUNNER_ID": "runner-1",
        "RUNNER_CAPACITY": 4,
        "JOB_MAX_PROCESSES": 10,
        "KILL_GRACE_SECONDS": 0,
    }
    return Settings.model_validate(values | overrides)


class VirtualTime:
    """A clock and a sleep that move only when the test says so."""

    def __init__(self, now: float = 1000.0):
        self.now = now
        self._sleepers: list[tuple[float, float, asyncio.Future[None]]] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        sleeper = (self.now + delay, delay, asyncio.get_running_loop().create_future())
        self._sleepers.append(sleeper)
        try:
            await sleeper[2]
        finally:
            self._sleepers.remove(sleeper)

    @property
    def sleeping(self) -> list[float]:
        """The delays asked for by the sleeps still pending."""
        return [delay for _, delay, woken in self._sleepers if not woken.done()]

    @property
    def deadlines(self) -> list[float]:
        """When the sleeps still pending end."""
        return [due for due, _, woken in self._sleepers if not woken.done()]

    def advance(self, seconds: float) -> None:
        self.now += seconds
        for due, _, future in self._sleepers:
            if due <= self.now and not future.done():
                future.set_result(None)


def unavailable(details: str) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(grpc.StatusCode.UNAVAILABLE, details=details)


class FakeStream:
    """One stream as the scheduler sees it: what the runner sent, and what to answer."""

    def __init__(self, addr: str, outgoing: AsyncIterator[pb.RunnerMessage]):
        self.addr = addr
        self.sent: list[pb.RunnerMessage] = []
        self.ended = False
        self._answers: asyncio.Queue[pb.SchedulerMessage | Exception | None] = asyncio.Queue()
        self._reader = asyncio.create_task(self._read(outgoing))

    async def _read(self, outgoing: AsyncIterator[pb.RunnerMessage]) -> None:
        async for message in outgoing:
            self.sent.append(message)
        self.ended = True

    def kinds(self) -> list[str]:
        return [str(message.WhichOneof("body")) for message in self.sent]

    def answer(self, message: pb.SchedulerMessage) -> None:
        self._answers.put_nowait(message)

    def fail(self, error: Exception) -> None:
        self._answers.put_nowait(error)

    def close(self) -> None:
        self._answers.put_nowait(None)

    def answered(self) -> bool:
        """Whether the runner has taken, and so handled, every answer given so far."""
        return self._answers.empty()

    async def _incoming(self) -> AsyncIterator[pb.SchedulerMessage]:
        while (answer := await self._answers.get()) is not None:
            if isinstance(answer, Exception):
                raise answer
            yield answer

    def __aiter__(self) -> AsyncIterator[pb.SchedulerMessage]:
        return self._incoming()


class FakeScheduler:
    """The link's transport: refuses the first `refuse` connections, then opens streams."""

    def __init__(self, refuse: int = 0):
        self.refuse = refuse
        self.tried: list[str] = []
        self.streams: list[FakeStream] = []

    @contextlib.asynccontextmanager
    async def connect(
        self, addr: str, outgoing: AsyncIterator[pb.RunnerMessage]
    ) -> AsyncIterator[Incoming]:
        self.tried.append(addr)
        if len(self.tried) <= self.refuse:
            raise unavailable("connection refused")
        stream = FakeStream(addr, outgoing)
        self.streams.append(stream)
        yield stream

    @property
    def stream(self) -> FakeStream:
        """The latest stream."""
        return self.streams[-1]


class FakeExecution:
    """A command that runs until the test ends it, or until it is stopped; with `crash`,
    an executor that fails."""

    def __init__(
        self,
        command: str,
        timeout: float | None,
        output_limit: int,
        env: dict[bytes, bytes],
        crash: Exception | None = None,
    ):
        self.crash = crash
        self.command = command
        self.timeout = timeout
        self.env = env
        self.output = CapturedOutput(output_limit)
        self.started_at = datetime.now(UTC)
        self.pgid: int | None = None
        self.stop_reason: str | None = None
        self.killed = False
        self._exit = asyncio.get_running_loop().create_future()

    @property
    def stopping(self) -> bool:
        return self.stop_reason is not None

    def stop(self, reason: str) -> None:
        if self.stop_reason is None:
            self.stop_reason = reason
            self.end(143)  # a command that heeds SIGTERM

    def kill_now(self, reason: str) -> None:
        self.stop(reason)
        self.killed = True

    def end(self, exit_code: int) -> None:
        if not self._exit.done():
            self._exit.set_result(exit_code)

    async def run(self, on_started: Callable[[datetime], None]) -> Outcome:
        if self.crash is not None:
            raise self.crash
        on_started(self.started_at)
        code = await self._exit
        return Outcome(code, self.stop_reason or "", self.started_at, datetime.now(UTC))


class FakeLauncher:
    """Launches fake executions, keeping each by its attempt."""

    def __init__(self) -> None:
        self.launched: list[FakeExecution] = []
        self.crash: Exception | None = None

    def __call__(
        self,
        command: str,
        timeout: float | None,
        output_limit: int,
        env: dict[bytes, bytes],
        key: Key,
    ) -> FakeExecution:
        execution = FakeExecution(command, timeout, output_limit, env, self.crash)
        self.launched.append(execution)
        return execution

    def of(self, key: Key) -> FakeExecution:
        found = [e for e in self.launched if e.env[b"JOBSCHED_JOB_ID"] == b"%d" % key[0]]
        found = [e for e in found if e.env[b"JOBSCHED_ATTEMPT"] == b"%d" % key[1]]
        assert len(found) == 1, f"{key} launched {len(found)} times"
        return found[0]


def assignment(key: Key, command: str = "true", timeout: int = 0) -> pb.Assignment:
    return pb.Assignment(ref=to_ref(key), command=command, timeout_seconds=timeout)


def assign(*keys: Key) -> pb.SchedulerMessage:
    items = [assignment(key) for key in keys]
    return pb.SchedulerMessage(assignments=pb.Assignments(items=items))


def registered(heartbeat_ms: int = 1000) -> pb.SchedulerMessage:
    lease_ttl_ms = int(LEASE_TTL_SECONDS * 1000)
    terms = pb.Registered(heartbeat_interval_ms=heartbeat_ms, lease_ttl_ms=lease_ttl_ms)
    return pb.SchedulerMessage(registered=terms)


def acked(*keys: Key) -> pb.SchedulerMessage:
    return pb.SchedulerMessage(acked=pb.Acked(refs=[to_ref(k) for k in keys]))


def renewed(seq: int, *keys: Key) -> pb.SchedulerMessage:
    return pb.SchedulerMessage(renewed=pb.LeasesRenewed(seq=seq, refs=[to_ref(k) for k in keys]))


def kill(reason: str, *keys: Key) -> pb.SchedulerMessage:
    return pb.SchedulerMessage(kill=pb.Kill(refs=[to_ref(k) for k in keys], reason=reason))


def keys_of(refs: Iterable[pb.AttemptRef]) -> list[Key]:
    return [to_key(ref) for ref in refs]
