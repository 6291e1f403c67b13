"""The runner's link over in-memory streams, in virtual time: reconnect with backoff,
registration, resend of unacknowledged results, leases renewed by heartbeat seq, kills."""

import asyncio
from collections.abc import Awaitable, Callable

from jobsched.v1 import runner_pb2 as pb
from jobsched_runner.attempts import Key
from jobsched_runner.jobs import LEASE_SAFETY, Jobs
from jobsched_runner.link import (
    FIRST_RECONNECT_DELAY,
    MAX_RECONNECT_DELAY,
    OUTPUT_FLUSH_SECONDS,
    Link,
)
from prometheus_client import REGISTRY

from tests.unit.runner_fakes import (
    LEASE_TTL_SECONDS,
    FakeLauncher,
    FakeScheduler,
    FakeStream,
    VirtualTime,
    acked,
    assign,
    keys_of,
    kill,
    registered,
    renewed,
    settings,
    unavailable,
)
from tests.unit.waiting import until


class Harness:
    def __init__(self, refuse: int = 0) -> None:
        self.time = VirtualTime()
        self.scheduler = FakeScheduler(refuse)
        self.launcher = FakeLauncher()
        self.jobs = Jobs(settings(), self._send, launch=self.launcher, clock=self.time)
        self.link = Link(
            settings(), self.jobs, self.scheduler.connect, clock=self.time, sleep=self.time.sleep
        )

    def _send(self, message: pb.RunnerMessage) -> None:
        self.link.send(message)

    def _between_sessions(self) -> bool:
        return not self.scheduler.streams or self.scheduler.stream.ended

    async def reconnect(self) -> float:
        """Waits for the link to back off, lets the backoff pass; returns its delay."""
        tries = len(self.scheduler.tried)
        await until(
            lambda: len(self.time.sleeping) == 1 and self._between_sessions(), "backing off"
        )
        (delay,) = self.time.sleeping
        self.time.advance(delay)
        await until(lambda: len(self.scheduler.tried) == tries + 1, "another try")
        return delay

    async def connected(self, heartbeat_ms: int = 1000) -> FakeStream:
        """Answers Registered on the latest stream once it is open."""
        await until(lambda: self.scheduler.streams != [], "a stream")
        stream = self.scheduler.stream
        stream.answer(registered(heartbeat_ms))
        await until(self.link.connected.is_set, "connected")
        return stream

    async def heartbeat(self) -> pb.Heartbeat:
        """Lets one heartbeat interval pass; the heartbeat it sends."""
        stream = self.scheduler.stream
        before = stream.kinds().count("heartbeat")
        await until(lambda: len(self.time.sleeping) == 2, "heartbeat and flush waiting")
        self.time.advance(max(self.time.deadlines) - self.time.now)
        await until(lambda: stream.kinds().count("heartbeat") > before, "a heartbeat")
        return [m.heartbeat for m in stream.sent if m.HasField("heartbeat")][-1]


def run(scenario: Callable[[Harness], Awaitable[None]], refuse: int = 0) -> None:
    async def main() -> None:
        harness = Harness(refuse)
        link = asyncio.create_task(harness.link.run())
        try:
            await until(lambda: harness.scheduler.tried != [], "a first try")
            await scenario(harness)
        finally:
            link.cancel()
            await asyncio.gather(link, return_exceptions=True)

    asyncio.run(main())


def results(stream: FakeStream) -> list[list[Key]]:
    """The finished reports the runner sent, one list per message."""
    sent = []
    for message in stream.sent:
        if message.HasField("finished"):
            sent.append(keys_of([message.finished.ref]))
        elif message.HasField("results"):
            sent.append(keys_of(item.ref for item in message.results.items))
    return sent


def connected_gauge() -> float | None:
    return REGISTRY.get_sample_value("jobsched_runner_connected")


def test_a_failed_stream_is_retried_at_the_next_address_with_growing_backoff() -> None:
    def base(n: int) -> float:
        return min(FIRST_RECONNECT_DELAY * 2.0**n, MAX_RECONNECT_DELAY)

    async def scenario(h: Harness) -> None:
        for n in range(7):
            delay = await h.reconnect()
            assert 0.5 * base(n) <= delay <= 1.5 * base(n), (n, delay)
        assert h.scheduler.tried == ["first:1", "second:2"] * 4
        stream = await h.connected()
        assert connected_gauge() == 1
        stream.fail(unavailable("scheduler restarted"))
        # A stream that failed does not reset the backoff...
        assert 0.5 * base(7) <= await h.reconnect() <= 1.5 * base(7)
        assert not h.link.connected.is_set()
        assert connected_gauge() == 0
        assert h.scheduler.tried[-1] == "first:1"
        # ...a session that ended cleanly does.
        await h.connected()
        h.scheduler.stream.close()
        assert 0.5 * base(0) <= await h.reconnect() <= 1.5 * base(0)
        assert h.scheduler.tried[-1] == "second:2"

    run(scenario, refuse=7)


def test_register_on_reconnect_carries_running_attempts_and_draining() -> None:
    async def scenario(h: Harness) -> None:
        first = await h.connected()
        register = first.sent[0].register
        assert (register.runner_id, register.capacity, list(register.running)) == (
            "runner-1",
            4,
            [],
        )
        first.answer(assign((7, 1), (8, 2)))
        await until(lambda: len(h.launcher.launched) == 2, "started")
        assert "draining" not in first.kinds()
        h.link.drain()
        await until(lambda: "draining" in first.kinds(), "draining sent")
        first.fail(unavailable("scheduler restarted"))
        await h.reconnect()
        second = h.scheduler.stream
        await until(lambda: len(second.sent) >= 2, "registered again")
        assert second.kinds()[:2] == ["register", "draining"]
        assert keys_of(second.sent[0].register.running) == [(7, 1), (8, 2)]

    run(scenario)


def test_an_unacknowledged_result_is_resent_after_each_reconnect_until_acked() -> None:
    async def scenario(h: Harness) -> None:
        first = await h.connected()
        first.answer(assign((5, 1), (6, 1)))
        await until(lambda: len(h.launcher.launched) == 2, "started")
        h.launcher.of((5, 1)).end(0)
        h.launcher.of((6, 1)).end(2)
        # Finished back to back: one Results message.
        await until(lambda: results(first) != [], "results sent")
        assert results(first) == [[(5, 1), (6, 1)]]
        first.fail(unavailable("scheduler restarted"))

        await h.reconnect()
        second = h.scheduler.stream
        await until(lambda: len(second.sent) >= 2, "opening sent")
        assert second.kinds()[0] == "register"
        # Held until acknowledged, so the scheduler does not end them as lost.
        assert keys_of(second.sent[0].register.running) == [(5, 1), (6, 1)]
        assert results(second) == [[(5, 1), (6, 1)]]
        assert second.sent[1] == next(m for m in first.sent if m.HasField("results"))
        second.answer(acked((5, 1)))
        await until(lambda: list(h.jobs.unacked) == [(6, 1)], "(5, 1) forgotten")
        second.close()

        await h.reconnect()
        third = h.scheduler.stream
        await until(lambda: len(third.sent) >= 2, "opening sent")
        assert third.kinds()[:2] == ["register", "finished"]
        assert keys_of(third.sent[0].register.running) == [(6, 1)]
        assert results(third) == [[(6, 1)]]
        third.answer(acked((6, 1)))
        await until(lambda: h.jobs.unacked == {}, "(6, 1) forgotten")
        third.close()

        await h.reconnect()
        fourth = h.scheduler.stream
        await h.heartbeat()  # whatever the stream opened with came before it
        assert fourth.kinds() == ["register", "heartbeat"]

    run(scenario)


def test_a_renewal_counts_from_when_its_heartbeat_was_sent() -> None:
    async def scenario(h: Harness) -> None:
        stream = await h.connected(heartbeat_ms=1000)
        start = h.time.now
        stream.answer(assign((1, 1)))
        await until(lambda: len(h.launcher.launched) == 1, "started")
        first = await h.heartbeat()
        assert keys_of(first.running) == [(1, 1)]
        sent_at = h.time.now
        second = await h.heartbeat()
        assert second.seq > first.seq
        # The answer to the first heartbeat arrives after the second was sent, and a stray
        # answer to a heartbeat never sent renews nothing.
        stream.answer(renewed(first.seq, (1, 1)))
        stream.answer(renewed(second.seq + 100, (1, 1)))
        await until(stream.answered, "renewals handled")
        lease_safe = LEASE_TTL_SECONDS * LEASE_SAFETY
        h.time.now = sent_at + lease_safe - 0.01
        assert h.time.now > start + lease_safe  # unrenewed, it would be killed by now
        h.jobs.kill_unrenewed()
        assert not h.launcher.of((1, 1)).stopping
        h.time.now = sent_at + lease_safe + 0.01
        h.jobs.kill_unrenewed()
        assert h.launcher.of((1, 1)).stop_reason == "lease lost"

    run(scenario)


def test_a_reconnect_renews_from_when_the_runner_registered() -> None:
    async def scenario(h: Harness) -> None:
        first = await h.connected()
        first.answer(assign((1, 1)))
        await until(lambda: len(h.launcher.launched) == 1, "started")
        first.fail(unavailable("scheduler restarted"))
        await h.reconnect()
        registered_at = h.time.now
        h.time.now += 3  # the scheduler takes its time to answer Registered
        await h.connected()
        lease_safe = LEASE_TTL_SECONDS * LEASE_SAFETY
        h.time.now = registered_at + lease_safe - 0.01
        h.jobs.kill_unrenewed()
        assert not h.launcher.of((1, 1)).stopping
        h.time.now = registered_at + lease_safe + 0.01
        h.jobs.kill_unrenewed()
        assert h.launcher.of((1, 1)).stop_reason == "lease lost"

    run(scenario)


def test_a_kill_stops_only_the_attempts_it_names() -> None:
    async def scenario(h: Harness) -> None:
        stream = await h.connected()
        stream.answer(assign((1, 1), (2, 1), (3, 1)))
        await until(lambda: len(h.launcher.launched) == 3, "started")
        stream.answer(kill("", (1, 1)))
        stream.answer(kill("superseded", (3, 1), (3, 2)))
        await until(lambda: sum(map(len, results(stream))) == 2, "killed ones finished")
        assert h.jobs.unacked[(1, 1)].reason == "cancelled"
        assert h.jobs.unacked[(3, 1)].reason == "superseded"
        assert h.jobs.running_keys() == [(2, 1)]

    run(scenario)


def test_output_is_sent_at_the_flush_cadence() -> None:
    async def scenario(h: Harness) -> None:
        stream = await h.connected(heartbeat_ms=60_000)
        stream.answer(assign((1, 1)))
        await until(lambda: len(h.launcher.launched) == 1, "started")
        h.launcher.of((1, 1)).output.feed(b"partial ")
        await until(lambda: OUTPUT_FLUSH_SECONDS in h.time.sleeping, "flush waiting")
        assert "output" not in stream.kinds()
        h.time.advance(OUTPUT_FLUSH_SECONDS)
        await until(lambda: "output" in stream.kinds(), "output sent")
        (chunk,) = [m.output for m in stream.sent if m.HasField("output")]
        assert (keys_of([chunk.ref]), chunk.data) == ([(1, 1)], b"partial ")

    run(scenario)


def test_a_scheduler_that_answers_no_heartbeat_for_a_lease_is_left_for_the_next() -> None:
    async def scenario(h: Harness) -> None:
        stream = await h.connected(heartbeat_ms=1000)
        beat = await h.heartbeat()
        stream.answer(renewed(beat.seq))
        await until(stream.answered, "renewal handled")
        answered_at = h.time.now
        while h.time.now - answered_at <= LEASE_TTL_SECONDS - 1:
            await h.heartbeat()  # the scheduler keeps the stream, and answers nothing
        assert h.scheduler.tried == ["first:1"] and not stream.ended
        await until(lambda: len(h.time.sleeping) == 2, "heartbeat and flush waiting")
        h.time.advance(max(h.time.deadlines) - h.time.now)  # a lease and more: it gives up
        await h.reconnect()
        assert h.scheduler.tried == ["first:1", "second:2"]
        assert stream.ended

    run(scenario)
