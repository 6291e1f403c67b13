"""The Dispatcher against the in-memory store: free slots go to connected runners, and
only to them."""

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from jobsched_scheduler import dispatch
from jobsched_scheduler.dispatch import ConnectedRunner, Dispatcher
from jobsched_scheduler.model import (
    AttemptKey,
    AttemptReport,
    Claimed,
    ClaimResult,
    Finish,
    NewJob,
)

from tests.fakes.memory_store import MemoryStore, StoreDown
from tests.unit.waiting import until


class Runner:
    """A connected runner that records what the dispatcher sends it."""

    def __init__(self, runner_id: str, capacity: int):
        self.delivered: list[AttemptKey] = []
        self.killed: list[tuple[list[AttemptKey], str]] = []
        self.link = ConnectedRunner(runner_id, capacity, self._deliver, self._kill)

    def _deliver(self, claimed: list[Claimed]) -> None:
        self.delivered.extend(c.key for c in claimed)

    def _kill(self, keys: list[AttemptKey], reason: str) -> None:
        self.killed.append((keys, reason))


async def store_with(jobs: int, limit: int = 100, max_attempts: int = 1) -> MemoryStore:
    store = MemoryStore()
    store.max_concurrent = limit
    for n in range(jobs):
        await store.create_job(NewJob(f"job-{n}", "true", max_attempts, None))
    return store


def attached(dispatcher: Dispatcher, *runners: Runner) -> None:
    for runner in runners:
        dispatcher.attach(runner.link)


async def woken_by_nothing_yet(jobs: int, capacity: int) -> tuple[MemoryStore, Dispatcher, Runner]:
    """`jobs` queued and one runner "a" of `capacity` attached, with the wake its attach
    set cleared: whatever wakes dispatch from here is the test's."""
    store = await store_with(jobs=jobs)
    dispatcher = Dispatcher(store, check_interval=60)
    a = Runner("a", capacity)
    attached(dispatcher, a)
    dispatcher._wake.clear()
    return store, dispatcher, a


def running(store: MemoryStore) -> set[AttemptKey]:
    return {job.key for job in store.jobs.values() if job.status == "running"}


def test_claims_only_up_to_free_capacity() -> None:
    async def scenario() -> None:
        store = await store_with(jobs=6)
        dispatcher = Dispatcher(store, check_interval=60)
        a, b = Runner("a", 2), Runner("b", 1)
        attached(dispatcher, a, b)
        result = await dispatcher.dispatch_once()
        assert result is not None and result.claimed == 3
        assert (len(a.delivered), len(b.delivered)) == (2, 1)
        assert a.link.active == set(a.delivered) and b.link.active == set(b.delivered)
        assert running(store) == {*a.delivered, *b.delivered}
        # Every slot is taken: no claim is made at all.
        assert await dispatcher.dispatch_once() is None
        assert store.calls["claim"] == 1

    asyncio.run(scenario())


def test_claims_no_more_than_the_limit_leaves() -> None:
    async def scenario() -> None:
        store = await store_with(jobs=6, limit=2)
        dispatcher = Dispatcher(store, check_interval=60)
        a = Runner("a", 5)
        attached(dispatcher, a)
        await dispatcher.dispatch_once()
        assert len(a.delivered) == 2
        store.max_concurrent = 3
        await dispatcher.dispatch_once()
        assert len(a.delivered) == 3
        # Lowered below what runs: running jobs go on, nothing new starts.
        store.max_concurrent = 1
        result = await dispatcher.dispatch_once()
        assert result is not None and result.claimed == 0 and len(running(store)) == 3

    asyncio.run(scenario())


def test_a_draining_runner_gets_nothing() -> None:
    async def scenario() -> None:
        store = await store_with(jobs=4)
        dispatcher = Dispatcher(store, check_interval=60)
        draining, open_ = Runner("draining", 3), Runner("open", 1)
        draining.link.draining = True
        attached(dispatcher, draining, open_)
        await dispatcher.dispatch_once()
        assert draining.delivered == [] and len(open_.delivered) == 1
        # With only the draining runner left with room, no claim is made.
        assert await dispatcher.dispatch_once() is None
        assert store.calls["claim"] == 1

    asyncio.run(scenario())


def test_attach_wakes_the_loop() -> None:
    async def scenario() -> None:
        store = await store_with(jobs=1)
        dispatcher = Dispatcher(store, check_interval=3600)  # no timer cycle in this test
        stop = asyncio.Event()
        loop = asyncio.create_task(dispatcher.run(stop))
        a = Runner("a", 1)
        attached(dispatcher, a)
        await until(lambda: a.delivered, "the job delivered after attach")
        assert store.calls["claim"] == 1
        stop.set()
        await asyncio.wait_for(loop, 1)

    asyncio.run(scenario())


def test_an_ended_job_wakes_dispatch_only_when_the_last_cycle_left_jobs_waiting() -> None:
    async def scenario() -> None:
        _, dispatcher, a = await woken_by_nothing_yet(jobs=3, capacity=2)
        await dispatcher.dispatch_once()  # claims 2 of 3: one left waiting for a slot
        dispatcher.slots_freed()
        assert dispatcher._wake.is_set()
        dispatcher._wake.clear()
        dispatcher.release(a.link, a.delivered[:1])
        await dispatcher.dispatch_once()  # claims the last: nothing left waiting
        dispatcher.slots_freed()
        assert not dispatcher._wake.is_set()
        # No free slot, so no claim to tell what waits: an ended job wakes it.
        assert await dispatcher.dispatch_once() is None
        dispatcher.slots_freed()
        assert dispatcher._wake.is_set()

    asyncio.run(scenario())


def claiming_while(store: MemoryStore, meanwhile: Callable[[], None]) -> None:
    """Makes `meanwhile` happen while the store's claim is under way."""
    claim = store.claim

    async def claim_meanwhile(free_by_runner: dict[str, int]) -> ClaimResult:
        meanwhile()
        return await claim(free_by_runner)

    store.claim = claim_meanwhile  # type: ignore[method-assign]


@pytest.mark.parametrize(("jobs", "woken"), [(2, False), (3, True)])
def test_a_job_ended_during_a_claim_wakes_dispatch_only_if_that_claim_left_jobs_waiting(
    jobs: int, woken: bool
) -> None:
    async def scenario() -> None:
        store, dispatcher, a = await woken_by_nothing_yet(jobs=jobs, capacity=2)
        claiming_while(store, dispatcher.slots_freed)
        await dispatcher.dispatch_once()  # claims two: all, or two of three
        assert len(a.delivered) == 2
        assert dispatcher._wake.is_set() is woken

    asyncio.run(scenario())


def test_a_job_ended_during_a_failed_claim_wakes_dispatch() -> None:
    async def scenario() -> None:
        store, dispatcher, _ = await woken_by_nothing_yet(jobs=1, capacity=1)
        store.failures["claim"] = 1
        claiming_while(store, dispatcher.slots_freed)
        with pytest.raises(StoreDown):
            await dispatcher.dispatch_once()
        assert dispatcher._wake.is_set()

    asyncio.run(scenario())


def test_a_claim_for_a_runner_that_left_meanwhile_is_not_delivered() -> None:
    async def scenario() -> None:
        store = await store_with(jobs=1)
        dispatcher = Dispatcher(store, check_interval=60)
        a = Runner("a", 1)
        attached(dispatcher, a)
        store.gates["claim"] = gate = asyncio.Event()
        cycle = asyncio.create_task(dispatcher.dispatch_once())
        await until(lambda: store.calls["claim"], "the claim under way")
        dispatcher.detach(a.link)
        gate.set()
        result = await cycle
        assert result is not None and result.claimed == 1
        assert a.delivered == [] and a.link.active == set()
        # Nothing could be sent: the claim ends at once, not a lease later, and the job
        # is retried by the normal rule (here it had one attempt).
        assert running(store) == set()
        [job] = store.jobs.values()
        assert (job.status, job.reason) == ("failed", "not delivered")

    asyncio.run(scenario())


def test_kill_reaches_only_a_connected_runners_active_attempt() -> None:
    async def scenario() -> None:
        store = await store_with(jobs=1)
        dispatcher = Dispatcher(store, check_interval=60)
        a = Runner("a", 1)
        attached(dispatcher, a)
        await dispatcher.dispatch_once()
        [key] = a.delivered
        assert not dispatcher.kill("a", AttemptKey(key.job_id, key.attempt + 1), "cancelled")
        assert not dispatcher.kill("elsewhere", key, "cancelled")
        assert a.killed == []
        assert dispatcher.kill("a", key, "cancelled")
        assert a.killed == [([key], "cancelled")]
        dispatcher.detach(a.link)
        assert not dispatcher.kill("a", key, "cancelled")

    asyncio.run(scenario())


def test_release_frees_slots() -> None:
    async def scenario() -> None:
        store = await store_with(jobs=2)
        dispatcher = Dispatcher(store, check_interval=60)
        a = Runner("a", 1)
        attached(dispatcher, a)
        await dispatcher.dispatch_once()
        [first] = a.delivered
        assert await dispatcher.dispatch_once() is None
        dispatcher.release(a.link, [first])
        assert a.link.free == 1
        await dispatcher.dispatch_once()
        assert len(a.delivered) == 2 and a.link.active == {a.delivered[1]}

    asyncio.run(scenario())


def test_the_loop_survives_a_failing_store(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(dispatch, "RETRY_PAUSE_SECONDS", 0.0)

    async def scenario() -> None:
        store = await store_with(jobs=1)
        store.failures["claim"] = 2
        dispatcher = Dispatcher(store, check_interval=0.01)
        stop = asyncio.Event()
        loop = asyncio.create_task(dispatcher.run(stop))
        a = Runner("a", 1)
        attached(dispatcher, a)
        await until(lambda: a.delivered, "the job delivered once the store is back")
        assert store.calls["claim"] == 3
        stop.set()
        await asyncio.wait_for(loop, 1)

    with caplog.at_level(logging.WARNING, logger=dispatch.__name__):
        asyncio.run(scenario())
    assert sum("Dispatch cycle failed" in r.message for r in caplog.records) == 2


async def timer_after_a_failure(store_clock_offset: float) -> float:
    """The dispatcher's timer once its only job failed and waits out its backoff, with
    the store's clock that far from this process's."""
    store = await store_with(jobs=1, max_attempts=2)
    store.advance(store_clock_offset)
    dispatcher = Dispatcher(store, check_interval=10)
    a = Runner("a", 1)
    attached(dispatcher, a)
    await dispatcher.dispatch_once()
    [key] = a.delivered
    now = store.now
    await store.apply_reports([AttemptReport(key, finished=Finish(1, "", now, now))])
    dispatcher.release(a.link, [key])
    result = await dispatcher.dispatch_once()
    assert result is not None and result.claimed == 0
    run_after = store.jobs[key.job_id].run_after
    assert run_after is not None and result.next_due_at == run_after
    return dispatcher._timeout()


def test_the_timer_honours_the_next_retry() -> None:
    # The first backoff is at most a second: the timer fires then, not after 10 s.
    assert 0 < asyncio.run(timer_after_a_failure(0)) <= 1.01
    # A retry already due by this process's clock is tried at once.
    assert asyncio.run(timer_after_a_failure(-10)) == pytest.approx(0.01)


def test_the_timer_is_the_check_interval_without_a_retry_waiting() -> None:
    async def scenario() -> None:
        store = await store_with(jobs=1)
        dispatcher = Dispatcher(store, check_interval=10)
        attached(dispatcher, Runner("a", 1))
        result = await dispatcher.dispatch_once()
        assert result is not None and result.next_due_at is None
        assert dispatcher._timeout() == 10
        dispatcher._next_due_at = datetime.now(UTC).replace(year=2100)
        assert dispatcher._timeout() == 10

    asyncio.run(scenario())
