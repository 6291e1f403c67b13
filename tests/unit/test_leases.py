"""The lease sweep against the in-memory store: attempts whose runner stopped renewing
end as "runner lost", retried while attempts remain."""

import asyncio
import logging

import pytest
from jobsched_scheduler import leases
from jobsched_scheduler.leases import sweep_leases
from jobsched_scheduler.model import NewJob

from tests.fakes.memory_store import MemoryStore, retry_delay
from tests.unit.waiting import until

SWEEP_SECONDS = 0.001


async def claimed_jobs(*max_attempts: int) -> MemoryStore:
    store = MemoryStore(lease_seconds=30)
    store.max_concurrent = len(max_attempts)
    for n, attempts in enumerate(max_attempts):
        await store.create_job(NewJob(f"job-{n}", "true", attempts, None))
    await store.claim({"r1": len(max_attempts)})
    return store


def test_expired_leases_end_as_runner_lost(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        store = await claimed_jobs(2, 1, 3, 1)
        retried, failed, cancelled, renewed = (store.jobs[i] for i in (1, 2, 3, 4))
        await store.cancel(cancelled.id)
        store.advance(20)
        await store.renew_leases("r1", [renewed.key])
        store.advance(15)
        stop = asyncio.Event()
        sweep = asyncio.create_task(sweep_leases(store, SWEEP_SECONDS, stop))
        await until(lambda: store.calls["expire_leases"], "a sweep")
        stop.set()
        await asyncio.wait_for(sweep, 1)

        assert (retried.status, retried.reason) == ("scheduled", "runner lost")
        assert retried.run_after == store.now + retry_delay(1)
        assert (failed.status, failed.reason) == ("failed", "runner lost")
        assert (cancelled.status, cancelled.reason) == ("cancelled", "runner lost")
        assert renewed.status == "running"
        lost = [store.attempts[job.key] for job in (retried, failed, cancelled)]
        assert all(a.reason == "runner lost" and a.finished_at == store.now for a in lost)
        # Once its backoff is over, the retried job is claimed for its second attempt.
        store.advance(retry_delay(1).total_seconds())
        result = await store.claim({"r2": 1})
        assert [c.key for c in result.by_runner["r2"]] == [retried.key]
        assert retried.attempt == 2

    with caplog.at_level(logging.WARNING, logger=leases.__name__):
        asyncio.run(scenario())
    assert sorted(r.getMessage() for r in caplog.records) == [
        f"Job {n} attempt 1: runner lost" for n in (1, 2, 3)
    ]


def test_the_sweep_survives_a_store_error(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        store = await claimed_jobs(1)
        store.advance(31)
        store.failures["expire_leases"] = 2
        stop = asyncio.Event()
        sweep = asyncio.create_task(sweep_leases(store, SWEEP_SECONDS, stop))
        await until(lambda: store.jobs[1].status == "failed", "the lease expired")
        assert store.calls["expire_leases"] == 3
        stop.set()
        await asyncio.wait_for(sweep, 1)

    with caplog.at_level(logging.WARNING, logger=leases.__name__):
        asyncio.run(scenario())
    assert sum("Lease sweep failed" in r.message for r in caplog.records) == 2


def test_the_sweep_stops_when_asked() -> None:
    async def scenario() -> None:
        store = await claimed_jobs(1)
        stop = asyncio.Event()
        sweep = asyncio.create_task(sweep_leases(store, 3600, stop))
        await asyncio.sleep(0)  # the sweep is waiting out its interval
        stop.set()
        await asyncio.wait_for(sweep, 1)
        # Already stopped: it returns without sweeping.
        await asyncio.wait_for(sweep_leases(store, SWEEP_SECONDS, stop), 1)
        assert store.calls["expire_leases"] == 0

    asyncio.run(scenario())
