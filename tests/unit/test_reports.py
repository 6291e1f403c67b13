"""The ReportWriter against the in-memory store: reports are batched per attempt, kept
and merged when a write fails, and acknowledged once stored."""

import asyncio
from datetime import timedelta

import pytest
from jobsched_scheduler import reports
from jobsched_scheduler.model import AttemptKey, Finish, NewJob
from jobsched_scheduler.reports import Pending, ReportWriter
from prometheus_client import REGISTRY

from tests.fakes.memory_store import MemoryStore
from tests.unit.waiting import until


class Acks:
    """The on_stored callback: every call's keys, in order."""

    def __init__(self) -> None:
        self.calls: list[list[AttemptKey]] = []

    def __call__(self, finished: list[Pending]) -> None:
        self.calls.append([key for key, _runner in finished])


async def running_jobs(n: int) -> tuple[MemoryStore, list[AttemptKey]]:
    store = MemoryStore()
    store.max_concurrent = n
    for i in range(n):
        await store.create_job(NewJob(f"job-{i}", "true", 2, None))
    claimed = (await store.claim({"r1": n})).by_runner["r1"]
    return store, [c.key for c in claimed]


def succeeded(store: MemoryStore, ran: float = 0.5) -> Finish:
    return Finish(0, "", None, store.now + timedelta(seconds=ran))


@pytest.fixture(autouse=True)
def no_retry_pause(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reports, "RETRY_PAUSE_SECONDS", 0.0)


def test_reports_are_batched_per_attempt() -> None:
    async def scenario() -> None:
        store, (done, going) = await running_jobs(2)
        acks = Acks()
        writer = ReportWriter(store, acks)
        for key in (done, going):
            writer.started(key, store.now)
            writer.output(key, "a")
            writer.output(key, "b")
        writer.finished(done, succeeded(store))
        await writer.flush()
        assert store.calls["apply_reports"] == 1
        assert store.jobs[done.job_id].status == "completed"
        assert store.jobs[going.job_id].status == "running"
        for key in (done, going):
            assert store.attempts[key].output == "ab"
            assert store.attempts[key].started_at == store.now
        assert acks.calls == [[done]]
        # Nothing is left to write.
        await writer.flush()
        assert store.calls["apply_reports"] == 1

    asyncio.run(scenario())


def test_a_failed_write_keeps_and_merges_the_reports() -> None:
    async def scenario() -> None:
        store, [key] = await running_jobs(1)
        acks = Acks()
        writer = ReportWriter(store, acks)
        store.gates["apply_reports"] = gate = asyncio.Event()
        store.failures["apply_reports"] = 1
        writer.started(key, store.now)
        writer.output(key, "first ")
        flushing = asyncio.create_task(writer.flush())
        await until(lambda: store.calls["apply_reports"], "the write under way")
        # More arrives while the write that will fail is in flight.
        writer.output(key, "second", truncated=True)
        writer.finished(key, succeeded(store))
        gate.set()
        await flushing
        assert acks.calls == [] and store.attempts[key].output == ""
        await writer.flush()
        assert store.calls["apply_reports"] == 2
        attempt = store.attempts[key]
        assert (attempt.output, attempt.output_truncated) == ("first second", True)
        assert attempt.started_at == store.now
        assert store.jobs[key.job_id].status == "completed"
        assert acks.calls == [[key]]

    asyncio.run(scenario())


def test_the_loop_retries_a_failed_write_and_writes_what_came_last() -> None:
    async def scenario() -> None:
        store, [key] = await running_jobs(1)
        acks = Acks()
        writer = ReportWriter(store, acks)
        store.failures["apply_reports"] = 2
        stop = asyncio.Event()
        loop = asyncio.create_task(writer.run(stop))
        writer.output(key, "out")
        await until(lambda: store.attempts[key].output, "the output stored after retries")
        assert store.calls["apply_reports"] == 3
        # A finish that arrives while a write is in flight and the writer is stopping is
        # still written before the loop ends.
        store.gates["apply_reports"] = gate = asyncio.Event()
        writer.output(key, " more")
        await until(lambda: store.calls["apply_reports"] == 4, "the next write under way")
        writer.finished(key, succeeded(store))
        stop.set()
        gate.set()
        await asyncio.wait_for(loop, 1)
        assert store.attempts[key].output == "out more"
        assert store.jobs[key.job_id].status == "completed"
        assert acks.calls == [[key]]

    asyncio.run(scenario())


def test_on_stored_gets_every_finish_of_the_batch_also_stale_ones() -> None:
    async def scenario() -> None:
        store, [current, other] = await running_jobs(2)
        stale = AttemptKey(other.job_id, other.attempt + 1)
        acks = Acks()
        writer = ReportWriter(store, acks)
        writer.output(other, "no finish: nothing to acknowledge")
        await writer.flush()
        assert acks.calls == []
        writer.finished(current, succeeded(store))
        writer.finished(stale, Finish(1, "", None, store.now))
        await writer.flush()
        assert acks.calls == [[current, stale]]
        # The stale finish changed nothing.
        assert store.jobs[other.job_id].status == "running"
        assert store.attempts[other].exit_code is None

    asyncio.run(scenario())


def sample(name: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


def test_metrics_count_what_ended() -> None:
    async def scenario() -> None:
        store, [timed, untimed, failing] = await running_jobs(3)
        writer = ReportWriter(store, Acks())
        writer.started(timed, store.now + timedelta(seconds=0.25))
        writer.finished(timed, succeeded(store, ran=2))
        # No start time: neither a wait nor a duration to observe.
        writer.finished(untimed, succeeded(store))
        writer.finished(failing, Finish(1, "", store.now, store.now))
        await writer.flush()

    completed = {"status": "completed"}
    before = (
        sample("jobsched_jobs_finished_total", completed),
        sample("jobsched_jobs_finished_total", {"status": "scheduled"}),
        sample("jobsched_enqueue_to_start_seconds_count"),
        sample("jobsched_job_duration_seconds_count"),
    )
    asyncio.run(scenario())
    after = (
        sample("jobsched_jobs_finished_total", completed),
        sample("jobsched_jobs_finished_total", {"status": "scheduled"}),
        sample("jobsched_enqueue_to_start_seconds_count"),
        sample("jobsched_job_duration_seconds_count"),
    )
    assert [a - b for a, b in zip(after, before, strict=True)] == [2, 1, 2, 2]
