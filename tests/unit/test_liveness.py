"""Liveness against the in-memory store: no new work to a runner that missed its
heartbeats or just lost leases, and an assignment not acknowledged in time ends as
"not acknowledged" (fenced, its runner told to kill it) and is retried elsewhere."""

import asyncio

import pytest
from jobsched.v1 import runner_pb2 as pb
from jobsched_scheduler.dispatch import Dispatcher
from jobsched_scheduler.liveness import NOT_ACKNOWLEDGED, Liveness
from jobsched_scheduler.model import AttemptKey, Claimed, NewJob
from jobsched_scheduler.runner_auth import RunnerAuth
from jobsched_scheduler.runner_link import RunnerLinks

from tests.fakes.memory_store import MemoryStore, retry_delay
from tests.unit.test_dispatch import Runner, store_with
from tests.unit.test_scheduler_runner_link import Stream, ref, register

SILENCE = 6.0
HANG_UP = 10.0
ACK_TIMEOUT = 5.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def watched(store: MemoryStore, clock: Clock) -> Dispatcher:
    liveness = Liveness(store, SILENCE, HANG_UP, ACK_TIMEOUT, clock)
    return Dispatcher(store, check_interval=60, liveness=liveness)


async def one_sent(
    name: str, jobs: int = 1, max_attempts: int = 1
) -> tuple[MemoryStore, Clock, Dispatcher, Runner, AttemptKey]:
    """A runner of one slot, attached, and the one assignment a claim sent it."""
    store, clock = await store_with(jobs=jobs, max_attempts=max_attempts), Clock()
    dispatcher = watched(store, clock)
    runner = Runner(name, 1)
    dispatcher.attach(runner.link)
    await dispatcher.dispatch_once()
    [key] = runner.delivered
    return store, clock, dispatcher, runner, key


def test_a_runner_silent_for_two_heartbeats_gets_no_work_until_heard_again() -> None:
    async def scenario() -> None:
        store, clock = await store_with(jobs=2), Clock()
        dispatcher = watched(store, clock)
        quiet = Runner("quiet", 2)
        dispatcher.attach(quiet.link)
        clock.now += SILENCE + 0.1
        assert await dispatcher.dispatch_once() is None
        assert quiet.delivered == [] and store.calls["claim"] == 0
        # What the why-explainer is told, as the claim sees it: no slot free there.
        assert dispatcher.offered() == {"quiet": 0}
        dispatcher.heartbeat(quiet.link, [])
        await dispatcher.dispatch_once()
        assert len(quiet.delivered) == 2

    asyncio.run(scenario())


def test_work_goes_to_the_runner_still_heard_from() -> None:
    async def scenario() -> None:
        store, clock = await store_with(jobs=3), Clock()
        dispatcher = watched(store, clock)
        quiet, talking = Runner("quiet", 3), Runner("talking", 3)
        dispatcher.attach(quiet.link)
        dispatcher.attach(talking.link)
        clock.now += SILENCE / 2
        dispatcher.heartbeat(talking.link, [])
        clock.now += SILENCE / 2 + 0.1
        await dispatcher.dispatch_once()
        assert quiet.delivered == [] and len(talking.delivered) == 3

    asyncio.run(scenario())


def test_a_runner_whose_leases_just_expired_gets_no_work_until_it_heartbeats() -> None:
    async def scenario() -> None:
        store, clock = await store_with(jobs=3, max_attempts=2), Clock()
        dispatcher = watched(store, clock)
        a = Runner("a", 3)
        dispatcher.attach(a.link)
        await dispatcher.dispatch_once()
        first = a.delivered[0]
        dispatcher.acknowledged(a.link, a.delivered)
        store.advance(store.lease.total_seconds() + 1)
        lost = await store.expire_leases()
        assert first in lost
        dispatcher.leases_expired(lost)
        store.advance(retry_delay(1).total_seconds())
        assert await dispatcher.dispatch_once() is None  # its slots are still held
        dispatcher.release(a.link, lost)
        assert await dispatcher.dispatch_once() is None
        assert store.calls["claim"] == 1
        dispatcher.heartbeat(a.link, [])
        await dispatcher.dispatch_once()
        assert len(a.delivered) == 6

    asyncio.run(scenario())


def test_an_unacknowledged_assignment_ends_at_the_ack_timeout_and_runs_elsewhere() -> None:
    async def scenario() -> None:
        store, clock, dispatcher, deaf, key = await one_sent("deaf", max_attempts=2)
        clock.now += ACK_TIMEOUT - 0.1
        await dispatcher.liveness.check()
        assert store.jobs[key.job_id].status == "running" and deaf.killed == []
        clock.now += 0.2
        await dispatcher.liveness.check()
        job = store.jobs[key.job_id]
        assert (job.status, job.reason) == ("scheduled", NOT_ACKNOWLEDGED)
        assert store.attempts[key].reason == NOT_ACKNOWLEDGED
        # Its runner is told to kill it, and its slot is free, but it gets no new work.
        assert deaf.killed == [([key], NOT_ACKNOWLEDGED)]
        assert deaf.link.active == set()
        other = Runner("other", 1)
        dispatcher.attach(other.link)
        dispatcher.heartbeat(deaf.link, [])  # heartbeats alone do not clear it
        store.advance(retry_delay(key.attempt).total_seconds())
        await dispatcher.dispatch_once()
        assert deaf.delivered == [key] and other.delivered == [AttemptKey(key.job_id, 2)]
        # A late start of the first attempt changes nothing: its number is stale.
        dispatcher.acknowledged(deaf.link, [key])
        assert dispatcher.liveness.eligible(deaf.link.heard)
        assert store.jobs[key.job_id].attempt == 2

    asyncio.run(scenario())


def test_only_the_runner_it_was_sent_to_acknowledges_an_assignment() -> None:
    async def scenario() -> None:
        store, clock, dispatcher, a, key = await one_sent("a")
        b = Runner("b", 1)
        dispatcher.attach(b.link)
        dispatcher.acknowledged(b.link, [key])
        dispatcher.heartbeat(b.link, [key])
        clock.now += ACK_TIMEOUT + 0.1
        await dispatcher.liveness.check()
        assert store.jobs[key.job_id].reason == NOT_ACKNOWLEDGED
        assert a.killed == [([key], NOT_ACKNOWLEDGED)] and b.killed == []

    asyncio.run(scenario())


@pytest.mark.parametrize("how", ["started", "output", "heartbeat", "finished"])
def test_any_message_naming_an_assignment_acknowledges_it(how: str) -> None:
    async def scenario() -> None:
        store, clock, dispatcher, a, key = await one_sent("a")
        if how == "heartbeat":
            dispatcher.heartbeat(a.link, [key])
        elif how == "finished":
            dispatcher.release(a.link, [key])
        else:
            dispatcher.acknowledged(a.link, [key])
        clock.now += ACK_TIMEOUT * 2
        dispatcher.heartbeat(a.link, [])
        await dispatcher.liveness.check()
        assert store.calls["end_attempts"] == 0 and a.killed == []
        assert store.jobs[key.job_id].status == "running"

    asyncio.run(scenario())


def test_a_stall_of_the_scheduler_itself_is_no_runner_s_fault() -> None:
    async def scenario() -> None:
        store, clock, dispatcher, a, key = await one_sent("a", jobs=2)
        # Frozen past the ack timeout and the runner's silence limit: the runner's
        # messages of that time wait to be read.
        clock.now += HANG_UP + 1
        dispatcher.liveness.stalled(HANG_UP + 1 - 0.25)
        await dispatcher.liveness.check()
        assert store.jobs[key.job_id].status == "running" and a.killed == []
        assert not a.link.heard.hang_up.is_set()
        assert dispatcher.liveness.eligible(a.link.heard)
        dispatcher.liveness.stalled(0.5)  # an ordinary late wake-up changes nothing
        clock.now += ACK_TIMEOUT
        await dispatcher.liveness.check()
        assert store.jobs[key.job_id].reason == NOT_ACKNOWLEDGED

    asyncio.run(scenario())


def test_a_failed_end_is_tried_again_at_the_next_check() -> None:
    async def scenario() -> None:
        store, clock, dispatcher, a, key = await one_sent("a")
        clock.now += ACK_TIMEOUT + 1
        store.failures["end_attempts"] = 1
        with pytest.raises(Exception, match="unavailable"):
            await dispatcher.liveness.check()
        assert store.jobs[key.job_id].status == "running" and a.killed == []
        await dispatcher.liveness.check()
        assert store.jobs[key.job_id].reason == NOT_ACKNOWLEDGED
        assert a.killed == [([key], NOT_ACKNOWLEDGED)]

    asyncio.run(scenario())


def test_an_assignment_that_cannot_be_sent_ends_at_once() -> None:
    async def scenario() -> None:
        store, clock = await store_with(jobs=1, max_attempts=2), Clock()
        dispatcher = watched(store, clock)
        broken = Runner("broken", 1)

        def cannot_send(claimed: list[Claimed]) -> None:
            raise TypeError("bad command text")

        broken.link.deliver = cannot_send
        dispatcher.attach(broken.link)
        await dispatcher.dispatch_once()
        [job] = store.jobs.values()
        assert (job.status, job.reason) == ("scheduled", "not delivered")
        assert broken.link.active == set()
        assert broken.killed == [([AttemptKey(job.id, 1)], "not delivered")]

    asyncio.run(scenario())


def test_a_runner_silent_for_a_lease_has_its_stream_ended() -> None:
    async def scenario() -> None:
        store, clock = MemoryStore(), Clock()
        dispatcher = watched(store, clock)
        links = RunnerLinks(store, dispatcher, 2.0, HANG_UP, 1000, RunnerAuth([]))
        stream = Stream(links, register("r1", 1))
        await stream.expect("registered")
        clock.now += HANG_UP - 0.1
        await dispatcher.liveness.check()
        assert not stream.call.done()
        stream.send(heartbeat=pb.Heartbeat(seq=1))
        await stream.expect("renewed")
        clock.now += HANG_UP + 0.1
        await dispatcher.liveness.check()
        await asyncio.wait_for(stream.call, 1)
        assert dispatcher.runners == {} and dispatcher.liveness.runners == set()

    asyncio.run(scenario())


def test_a_runner_that_comes_back_holding_an_assignment_has_acknowledged_it() -> None:
    async def scenario() -> None:
        store, clock = MemoryStore(), Clock()
        await store.create_job(NewJob("j", "true", 1, None))
        dispatcher = watched(store, clock)
        links = RunnerLinks(store, dispatcher, 2.0, HANG_UP, 1000, RunnerAuth([]))
        first = Stream(links, register("r1", 1))
        await first.expect("registered")
        await dispatcher.dispatch_once()
        [assignments] = await first.expect("assignments")
        [item] = assignments.items
        await first.hang_up()  # the stream breaks before the runner says anything of it
        again = Stream(links, register("r1", 1, AttemptKey(item.ref.job_id, 1)))
        await again.expect("registered")
        clock.now += ACK_TIMEOUT + 1
        await dispatcher.liveness.check()
        assert store.jobs[1].status == "running" and again.of("kill") == []
        again.send(started=pb.Started(ref=ref(AttemptKey(1, 1))))
        await again.hang_up()

    asyncio.run(scenario())
