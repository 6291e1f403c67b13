"""The scheduler's side of the runner link, its gRPC method driven by a fake stream: a
runner registers, reconnects, reports, heartbeats, and is fenced off stale attempts."""

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any, NoReturn, cast

import grpc
import pytest
from jobsched.v1 import runner_pb2 as pb
from jobsched_common.limits import MAX_BATCH_BYTES, MAX_COMMAND_BYTES
from jobsched_common.timestamps import to_timestamp
from jobsched_scheduler import reports
from jobsched_scheduler.dispatch import Dispatcher
from jobsched_scheduler.model import AttemptKey, NewJob
from jobsched_scheduler.runner_auth import RunnerAuth, RunnerToken
from jobsched_scheduler.runner_link import RunnerLinks

from tests.fakes.memory_store import MemoryStore, retry_delay
from tests.unit.waiting import until

LEASE_SECONDS = 30
OUTPUT_LIMIT = 100
TOKEN = "a-runner-token-of-test"


class Aborted(Exception):
    pass


class FakeContext:
    """What the link asks of gRPC's context: who the caller is (here a client
    certificate the handshake verified, named `cert_name`, and the call's metadata),
    and to end the call with a status."""

    def __init__(self, cert_name: str | None, metadata: tuple[tuple[str, str], ...] = ()):
        self.cert_name = cert_name
        self.metadata = metadata

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self.metadata

    def peer(self) -> str:
        return "ipv4:127.0.0.1:40000"

    def auth_context(self) -> dict[str, list[bytes]]:
        return {"x509_common_name": [self.cert_name.encode()]} if self.cert_name else {}

    async def abort(self, code: grpc.StatusCode, details: str) -> NoReturn:
        raise Aborted(code, details)


def ref(key: AttemptKey) -> pb.AttemptRef:
    return pb.AttemptRef(job_id=key.job_id, attempt=key.attempt)


def keys(refs: Any) -> set[AttemptKey]:
    return {AttemptKey(r.job_id, r.attempt) for r in refs}


class Stream:
    """One runner's call: what it sends, and every message the scheduler answers."""

    def __init__(
        self,
        links: RunnerLinks,
        first: pb.RunnerMessage | None,
        context: FakeContext | None = None,
    ):
        self._sent: asyncio.Queue[pb.RunnerMessage | None] = asyncio.Queue()
        self._sent.put_nowait(first)
        self.received: list[pb.SchedulerMessage] = []
        if context is None:  # by default, the runner it registers as, by certificate
            named = first.register.runner_id if first is not None else ""
            context = FakeContext(named or "anyone")
        call = links.Connect(self._requests(), cast(Any, context))
        self.call = asyncio.create_task(self._answers(call))

    async def _requests(self) -> AsyncIterator[pb.RunnerMessage]:
        while (message := await self._sent.get()) is not None:
            yield message

    async def _answers(self, call: AsyncIterator[pb.SchedulerMessage]) -> None:
        async for message in call:
            self.received.append(message)

    def send(self, **body: Any) -> None:
        self._sent.put_nowait(pb.RunnerMessage(**body))

    def of(self, kind: str) -> list[Any]:
        return [getattr(m, kind) for m in self.received if m.WhichOneof("body") == kind]

    async def expect(self, kind: str, count: int = 1) -> list[Any]:
        await until(lambda: len(self.of(kind)) >= count, f"{count} {kind} message(s)")
        return self.of(kind)

    async def hang_up(self) -> None:
        self._sent.put_nowait(None)
        await asyncio.wait_for(self.call, 1)


def register(runner_id: str, capacity: int, *running: AttemptKey) -> pb.RunnerMessage:
    body = pb.Register(runner_id=runner_id, capacity=capacity, running=map(ref, running))
    return pb.RunnerMessage(register=body)


def finished(key: AttemptKey, exit_code: int = 0, tail: bytes = b"") -> pb.Finished:
    return pb.Finished(ref=ref(key), exit_code=exit_code, output_tail=tail)


class Scheduler:
    """A store, a dispatcher and the runner links wired as main.py wires them, with the
    report writer running."""

    def __init__(self, store: MemoryStore):
        self.store = store
        self.dispatcher = Dispatcher(store, check_interval=60)
        auth = RunnerAuth([RunnerToken("tokened", TOKEN)])
        self.links = RunnerLinks(store, self.dispatcher, 2.0, LEASE_SECONDS, OUTPUT_LIMIT, auth)
        self._stop = asyncio.Event()
        self._writer = asyncio.create_task(self.links.reports.run(self._stop))

    def connect(self, runner_id: str, capacity: int, *running: AttemptKey) -> Stream:
        return Stream(self.links, register(runner_id, capacity, *running))

    async def close(self) -> None:
        self._stop.set()
        await asyncio.wait_for(self._writer, 1)


async def scheduler(jobs: int) -> Scheduler:
    store = MemoryStore(lease_seconds=LEASE_SECONDS, output_limit=OUTPUT_LIMIT)
    store.max_concurrent = 100
    for n in range(jobs):
        await store.create_job(NewJob(f"job-{n}", "true", 2, None))
    return Scheduler(store)


async def supersede(store: MemoryStore, key: AttemptKey, keep: list[AttemptKey]) -> AttemptKey:
    """The key's lease runs out while the others' are renewed, the sweep retries its job,
    and another runner claims it: the key is now a stale attempt. Returns the new one."""
    store.advance(LEASE_SECONDS + 1)
    await store.renew_leases("r1", keep)
    assert await store.expire_leases() == [key]
    store.advance(retry_delay(key.attempt).total_seconds())
    [claimed] = (await store.claim({"elsewhere": 1})).by_runner["elsewhere"]
    return claimed.key


async def assigned(scheduler: Scheduler, stream: Stream) -> list[AttemptKey]:
    """Dispatches, and returns what the stream was assigned, oldest job first."""
    await scheduler.dispatcher.dispatch_once()
    [assignments] = await stream.expect("assignments")
    return sorted(keys(item.ref for item in assignments.items), key=lambda key: key.job_id)


def kills(stream: Stream) -> set[tuple[str, frozenset[AttemptKey]]]:
    return {(kill.reason, frozenset(keys(kill.refs))) for kill in stream.of("kill")}


@pytest.fixture(autouse=True)
def no_retry_pause(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reports, "RETRY_PAUSE_SECONDS", 0.0)


def test_a_runner_registers_gets_work_and_leaves() -> None:
    async def scenario() -> None:
        s = await scheduler(jobs=1)
        stream = s.connect("r1", 2)
        [registered] = await stream.expect("registered")
        assert registered == pb.Registered(
            heartbeat_interval_ms=2000,
            lease_ttl_ms=LEASE_SECONDS * 1000,
            output_limit_bytes=OUTPUT_LIMIT,
        )
        assert s.dispatcher.runners["r1"].capacity == 2
        await s.dispatcher.dispatch_once()
        [assignments] = await stream.expect("assignments")
        assert list(assignments.items) == [
            pb.Assignment(ref=pb.AttemptRef(job_id=1, attempt=1), command="true")
        ]
        assert s.dispatcher.runners["r1"].active == {AttemptKey(1, 1)}
        await stream.hang_up()
        assert s.dispatcher.runners == {}
        await s.close()

    asyncio.run(scenario())


@pytest.mark.parametrize(
    "first",
    [
        None,
        pb.RunnerMessage(heartbeat=pb.Heartbeat(seq=1)),
        register("", 1),
        register("r1", 0),
    ],
    ids=["nothing", "heartbeat", "no id", "no capacity"],
)
def test_a_runner_must_register_first(first: pb.RunnerMessage | None) -> None:
    async def scenario() -> None:
        s = await scheduler(jobs=0)
        stream = Stream(s.links, first)
        with pytest.raises(Aborted) as aborted:
            await asyncio.wait_for(stream.call, 1)
        assert aborted.value.args[0] == grpc.StatusCode.INVALID_ARGUMENT
        assert stream.received == [] and s.dispatcher.runners == {}
        await s.close()

    asyncio.run(scenario())


def test_a_reconnecting_runner_keeps_only_its_current_attempts() -> None:
    async def scenario() -> None:
        s = await scheduler(jobs=3)
        claimed = (await s.store.claim({"r1": 3})).by_runner["r1"]
        current, old, cancelled = (c.key for c in claimed)
        new = await supersede(s.store, old, keep=[current, cancelled])
        await s.store.cancel(cancelled.job_id)
        # The runner lost its stream, and comes back with what it still runs.
        stream = s.connect("r1", 3, current, old, cancelled)
        await stream.expect("registered")
        assert kills(stream) == {
            ("attempt superseded", frozenset({old})),
            ("cancelled", frozenset({cancelled})),
        }
        # A cancelled attempt runs until the runner reports it ended: it holds its slot.
        assert s.dispatcher.runners["r1"].active == {current, cancelled}
        assert s.store.jobs[current.job_id].lease_expires_at == s.store.now + s.store.lease
        assert s.store.jobs[old.job_id].key == new
        assert s.store.jobs[old.job_id].runner_id == "elsewhere"
        await stream.hang_up()
        await s.close()

    asyncio.run(scenario())


def test_a_restarted_runner_loses_the_attempts_it_no_longer_holds() -> None:
    async def scenario() -> None:
        s = await scheduler(jobs=4)
        mine = (await s.store.claim({"r1": 3})).by_runner["r1"]
        held, forgotten, last_try = (c.key for c in mine)
        s.store.jobs[last_try.job_id].max_attempts = 1
        [theirs] = (await s.store.claim({"r2": 1})).by_runner["r2"]
        # r1's process died, and a new one registers under its id holding one attempt
        # (say, a finished result not yet acknowledged): the others end now, not a
        # lease later.
        stream = s.connect("r1", 3, held)
        await stream.expect("registered")
        jobs = s.store.jobs
        assert (jobs[forgotten.job_id].status, jobs[forgotten.job_id].reason) == (
            "scheduled",
            "runner lost",
        )
        assert (jobs[last_try.job_id].status, jobs[last_try.job_id].reason) == (
            "failed",
            "runner lost",
        )
        assert jobs[held.job_id].status == "running"
        assert jobs[theirs.key.job_id].status == "running"
        assert s.dispatcher.runners["r1"].active == {held}
        await stream.hang_up()
        await s.close()

    asyncio.run(scenario())


def test_assignments_of_long_commands_are_split_into_bounded_messages() -> None:
    async def scenario() -> None:
        store = MemoryStore(lease_seconds=LEASE_SECONDS, output_limit=OUTPUT_LIMIT)
        store.max_concurrent = 100
        for n in range(40):
            await store.create_job(NewJob(f"long-{n}", "c" * MAX_COMMAND_BYTES, 1, None))
        s = Scheduler(store)
        stream = s.connect("r1", 40)
        await stream.expect("registered")
        await s.dispatcher.dispatch_once()
        await until(
            lambda: sum(len(m.items) for m in stream.of("assignments")) == 40, "all delivered"
        )
        messages = stream.of("assignments")
        assert len(messages) > 1
        assert all(m.ByteSize() <= MAX_BATCH_BYTES for m in messages)
        delivered = [item.ref.job_id for m in messages for item in m.items]
        assert sorted(delivered) == list(range(1, 41))
        await stream.hang_up()
        await s.close()

    asyncio.run(scenario())


def test_a_finish_is_acknowledged_on_its_own_stream_once_stored() -> None:
    async def scenario() -> None:
        s = await scheduler(jobs=2)
        r1, r2 = s.connect("r1", 1), s.connect("r2", 1)
        await r1.expect("registered")
        await r2.expect("registered")
        [key] = await assigned(s, r1)
        [assignments] = await r2.expect("assignments")
        [other] = keys(item.ref for item in assignments.items)
        s.store.gates["apply_reports"] = gate = asyncio.Event()
        s.store.failures["apply_reports"] = 1  # and the first write fails
        r1.send(finished=finished(key, tail=b"done"))
        await until(lambda: s.store.calls["apply_reports"], "the finish being written")
        assert s.dispatcher.runners["r1"].active == set()  # its slot is free at once
        r2.send(finished=finished(other))
        await until(lambda: not s.dispatcher.runners["r2"].active, "the other finish read")
        assert r1.of("acked") == [] and r2.of("acked") == []
        gate.set()
        # Both finishes are written together on the retry, each acknowledged to its runner.
        [acked] = await r1.expect("acked")
        assert keys(acked.refs) == {key}
        [acked] = await r2.expect("acked")
        assert keys(acked.refs) == {other}
        assert s.store.calls["apply_reports"] == 2
        assert s.store.jobs[key.job_id].status == "completed"
        assert s.store.attempts[key].output == "done"
        for stream in (r1, r2):
            await stream.hang_up()
        await s.close()

    asyncio.run(scenario())


def test_a_heartbeat_renews_current_attempts_and_stops_the_others() -> None:
    async def scenario() -> None:
        s = await scheduler(jobs=3)
        stream = s.connect("r1", 3)
        await stream.expect("registered")
        current, old, cancelled = await assigned(s, stream)
        new = await supersede(s.store, old, keep=[current, cancelled])
        await s.store.cancel(cancelled.job_id)
        lease_of_new = s.store.jobs[new.job_id].lease_expires_at
        s.store.advance(10)
        running = [ref(k) for k in (current, old, cancelled)]
        stream.send(heartbeat=pb.Heartbeat(seq=7, running=running))
        [renewed] = await stream.expect("renewed")
        assert renewed.seq == 7 and keys(renewed.refs) == {current, cancelled}
        await stream.expect("kill", 2)
        assert kills(stream) == {
            ("attempt superseded", frozenset({old})),
            ("cancelled", frozenset({cancelled})),
        }
        assert s.store.jobs[current.job_id].lease_expires_at == s.store.now + s.store.lease
        # The stale attempt's heartbeat did not touch the attempt that replaced it.
        assert s.store.jobs[new.job_id].lease_expires_at == lease_of_new
        assert s.store.jobs[new.job_id].runner_id == "elsewhere"
        await stream.hang_up()
        await s.close()

    asyncio.run(scenario())


def test_a_heartbeat_the_store_could_not_renew_goes_unanswered() -> None:
    async def scenario() -> None:
        s = await scheduler(jobs=1)
        stream = s.connect("r1", 1)
        await stream.expect("registered")
        [key] = await assigned(s, stream)
        s.store.failures["renew_leases"] = 1
        stream.send(heartbeat=pb.Heartbeat(seq=1, running=[ref(key)]))
        stream.send(heartbeat=pb.Heartbeat(seq=2, running=[ref(key)]))
        await stream.expect("renewed")
        assert [r.seq for r in stream.of("renewed")] == [2]
        assert stream.of("kill") == []
        await stream.hang_up()
        await s.close()

    asyncio.run(scenario())


def test_an_idle_runners_heartbeat_goes_unanswered_while_the_store_fails() -> None:
    """A scheduler that cannot reach its database is no use to a runner, busy or not:
    its silence sends the runner to another scheduler."""

    async def scenario() -> None:
        s = await scheduler(jobs=0)
        stream = s.connect("r1", 1)
        await stream.expect("registered")
        s.store.failures["renew_leases"] = 1
        stream.send(heartbeat=pb.Heartbeat(seq=1))
        stream.send(heartbeat=pb.Heartbeat(seq=2))
        await stream.expect("renewed")
        assert [r.seq for r in stream.of("renewed")] == [2]
        await stream.hang_up()
        await s.close()

    asyncio.run(scenario())


def test_a_stale_report_changes_nothing() -> None:
    async def scenario() -> None:
        s = await scheduler(jobs=2)
        stream = s.connect("r1", 2)
        await stream.expect("registered")
        current, old = await assigned(s, stream)
        new = await supersede(s.store, old, keep=[current])
        job, attempts = s.store.jobs[old.job_id], (s.store.attempts[old], s.store.attempts[new])
        before = replace(job), tuple(replace(a) for a in attempts)
        stream.send(started=pb.Started(ref=ref(old), at=to_timestamp(s.store.now)))
        stream.send(output=pb.OutputChunk(ref=ref(old), data=b"late"))
        items = [finished(current), finished(old, exit_code=1, tail=b"late")]
        stream.send(results=pb.Results(items=items))
        [acked] = await stream.expect("acked")
        # Both are acknowledged, so that the runner forgets them; only one was current.
        assert keys(acked.refs) == {current, old}
        assert s.store.jobs[current.job_id].status == "completed"
        assert (job, attempts) == before
        await stream.hang_up()
        await s.close()

    asyncio.run(scenario())


def test_a_draining_runner_is_given_no_more_work() -> None:
    async def scenario() -> None:
        s = await scheduler(jobs=1)
        stream = s.connect("r1", 1)
        await stream.expect("registered")
        stream.send(draining=pb.Draining())
        await until(lambda: s.dispatcher.runners["r1"].draining, "the runner draining")
        assert await s.dispatcher.dispatch_once() is None
        await stream.hang_up()
        await s.close()

    asyncio.run(scenario())


def test_closing_ends_every_stream() -> None:
    async def scenario() -> None:
        s = await scheduler(jobs=0)
        streams = [s.connect("r1", 1), s.connect("r2", 1)]
        for stream in streams:
            await stream.expect("registered")
        s.links.closing.set()
        await asyncio.wait_for(asyncio.gather(*(stream.call for stream in streams)), 1)
        assert s.dispatcher.runners == {}
        await s.close()

    asyncio.run(scenario())
