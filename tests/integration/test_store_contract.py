"""One set of store tests run against PgStore and against the unit tests' MemoryStore,
so that the fake keeps the rules of the SQL: claim, leases, fencing, finish, API."""

import asyncio
import json
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, Protocol

import pytest
from jobsched_scheduler.audit import Caller
from jobsched_scheduler.errors import InvalidValue
from jobsched_scheduler.model import AttemptKey, AttemptReport, Finish, NewJob, Refused
from jobsched_scheduler.ports import Store
from jobsched_scheduler.store import PgStore, new_pool

from tests.fakes.memory_store import MemoryStore

pytestmark = pytest.mark.timeout(60)

LEASE_SECONDS = 30
OUTPUT_LIMIT = 10


class Harness(Protocol):
    """A store, and a way to move its jobs through time."""

    @property
    def store(self) -> Store: ...

    async def lapse_leases(self, job_ids: list[int]) -> None: ...

    async def end_backoffs(self) -> None: ...

    async def moment_passes(self) -> None:
        """The next transaction's now() is later than the last one's."""


class MemoryHarness:
    def __init__(self) -> None:
        self.fake = self.store = MemoryStore(LEASE_SECONDS, OUTPUT_LIMIT, default_timeout=60)

    async def lapse_leases(self, job_ids: list[int]) -> None:
        for job_id in job_ids:
            self.fake.jobs[job_id].lease_expires_at = self.fake.now.replace(year=2000)

    async def end_backoffs(self) -> None:
        for job in self.fake.jobs.values():
            if job.run_after is not None:
                job.run_after = self.fake.now

    async def moment_passes(self) -> None:
        self.fake.advance(0.001)


class PgHarness:
    def __init__(self, store: PgStore):
        self.pg = self.store = store

    async def _sql(self, query: str, params: tuple[object, ...] = ()) -> None:
        async with self.pg.pool.connection() as conn:
            await conn.execute(query.encode(), params)

    async def lapse_leases(self, job_ids: list[int]) -> None:
        await self._sql(
            "UPDATE jobs SET lease_expires_at = now() - interval '1 s' WHERE id = ANY(%s)",
            (job_ids,),
        )

    async def end_backoffs(self) -> None:
        await self._sql("UPDATE jobs SET run_after = now() WHERE run_after IS NOT NULL")

    async def moment_passes(self) -> None:
        await asyncio.sleep(0.001)  # now() has microseconds


Scenario = Callable[[Harness], Coroutine[Any, Any, None]]


async def _on_postgres(url: str, scenario: Scenario) -> None:
    pool = new_pool(url, max_size=2)
    await pool.open(wait=True)
    try:
        await scenario(PgHarness(PgStore(pool, LEASE_SECONDS, OUTPUT_LIMIT, default_timeout=60)))
    finally:
        await pool.close()


@pytest.fixture(params=["memory", "postgres"])
def run_on_store(request: pytest.FixtureRequest) -> Callable[[Scenario], None]:
    if request.param == "memory":
        return lambda scenario: asyncio.run(scenario(MemoryHarness()))
    url: str = request.getfixturevalue("database_url")
    return lambda scenario: asyncio.run(_on_postgres(url, scenario))


def finish(key: AttemptKey, code: int = 0, reason: str = "", output: str = "") -> AttemptReport:
    now = datetime.now(UTC)
    return AttemptReport(key, output=[output], finished=Finish(code, reason, now, now))


async def jobs(store: Store, *max_attempts: int, limit: int = 100) -> list[AttemptKey]:
    """Creates jobs and claims them all for runner r1: their first attempts."""
    await store.set_max_concurrent(limit)
    for n, attempts in enumerate(max_attempts):
        await store.create_job(NewJob(f"job-{n}", "echo hi", attempts, None))
    claimed = (await store.claim({"r1": len(max_attempts)})).by_runner.get("r1", [])
    return [c.key for c in claimed]


def test_the_claim_keeps_to_the_limit_and_takes_the_oldest_first(
    run_on_store: Callable[[Scenario], None],
) -> None:
    async def scenario(h: Harness) -> None:
        await h.store.set_max_concurrent(3)
        for n in range(5):
            await h.store.create_job(NewJob(f"job-{n}", "true", 1, 5 if n == 0 else None))
        result = await h.store.claim({"a": 2, "b": 2})
        assert (result.limit, result.running, result.queued, result.claimed) == (3, 0, 5, 3)
        claimed = sorted(
            (c for cs in result.by_runner.values() for c in cs), key=lambda c: c.key.job_id
        )
        assert [c.key for c in claimed] == [AttemptKey(i, 1) for i in (1, 2, 3)]
        assert [c.timeout_seconds for c in claimed] == [5, 60, 60]
        assert all(len(cs) <= 2 for cs in result.by_runner.values())
        full = await h.store.claim({"a": 5})
        assert (full.running, full.queued, full.claimed, full.next_due_at) == (3, 2, 0, None)
        assert (await h.store.count_by_status())["running"] == 3

    run_on_store(scenario)


def test_a_finish_ends_the_current_attempt_by_the_rules(
    run_on_store: Callable[[Scenario], None],
) -> None:
    async def scenario(h: Harness) -> None:
        ok, retried, failed, reasoned, cancelled = await jobs(h.store, 1, 2, 1, 1, 2)
        await h.store.cancel(cancelled.job_id)
        stale = AttemptKey(ok.job_id, 2)
        reports = [
            finish(ok, output="0123456789abc"),
            finish(retried, 3),
            finish(failed, 4),
            finish(reasoned, reason="timed out"),
            finish(cancelled, 1),
            finish(stale, 1),
        ]
        stored = await h.store.apply_reports(reports)
        assert stored.acknowledged == [r.key for r in reports]
        assert {(e.key, e.status) for e in stored.ended} == {
            (ok, "completed"),
            (retried, "scheduled"),
            (failed, "failed"),
            (reasoned, "failed"),
            (cancelled, "cancelled"),
        }
        outcome = {}
        for key in (ok, retried, failed, reasoned, cancelled):
            row = await h.store.get_job(key.job_id)
            assert row is not None
            outcome[key] = (row.status, row.exit_code, row.reason)
        assert outcome == {
            ok: ("completed", 0, None),
            retried: ("scheduled", 3, "exit code 3"),
            failed: ("failed", 4, "exit code 4"),
            reasoned: ("failed", 0, "timed out"),
            cancelled: ("cancelled", 1, "cancelled"),
        }
        output = await h.store.get_output(ok.job_id)
        assert output == {
            "job_id": ok.job_id,
            "attempt": 1,
            "output": "0123456789",
            "output_truncated": True,
        }

    run_on_store(scenario)


def test_a_retry_waits_out_its_backoff(run_on_store: Callable[[Scenario], None]) -> None:
    async def scenario(h: Harness) -> None:
        [key] = await jobs(h.store, 2)
        await h.store.apply_reports([finish(key, 1)])
        waiting = await h.store.claim({"r1": 1})
        assert (waiting.claimed, waiting.queued) == (0, 0)  # it is `scheduled`
        assert waiting.next_due_at is not None
        await h.end_backoffs()
        again = await h.store.claim({"r2": 1})
        assert [c.key for c in again.by_runner["r2"]] == [AttemptKey(key.job_id, 2)]
        attempts = await h.store.list_attempts(key.job_id)
        assert [(a["attempt"], a["runner_id"], a["exit_code"]) for a in attempts] == [
            (1, "r1", 1),
            (2, "r2", None),
        ]

    run_on_store(scenario)


def test_leases_are_renewed_for_current_attempts_and_expire_as_runner_lost(
    run_on_store: Callable[[Scenario], None],
) -> None:
    async def scenario(h: Harness) -> None:
        retried, failed, cancelled, kept = await jobs(h.store, 2, 1, 2, 1)
        await h.store.cancel(cancelled.job_id)
        stale = AttemptKey(kept.job_id, 2)
        # Another runner's heartbeat renews nothing (and takes nothing over).
        assert await h.store.renew_leases("r2", [kept, cancelled]) == (set(), set())
        current, asked_to_stop = await h.store.renew_leases("r1", [kept, cancelled, stale])
        assert (current, asked_to_stop) == ({kept, cancelled}, {cancelled})
        assert await h.store.renew_leases("r1", []) == (set(), set())
        await h.lapse_leases([retried.job_id, failed.job_id, cancelled.job_id])
        assert sorted(await h.store.expire_leases(), key=str) == sorted(
            [retried, failed, cancelled], key=str
        )
        outcome = {}
        for key in (retried, failed, cancelled, kept):
            row = await h.store.get_job(key.job_id)
            assert row is not None
            outcome[key] = (row.status, row.reason, row.runner_id)
        assert outcome == {
            retried: ("scheduled", "runner lost", "r1"),
            failed: ("failed", "runner lost", "r1"),
            cancelled: ("cancelled", "runner lost", "r1"),
            kept: ("running", None, "r1"),
        }
        assert await h.store.expire_leases() == []

    run_on_store(scenario)


def test_a_runner_registering_again_loses_the_attempts_it_does_not_hold(
    run_on_store: Callable[[Scenario], None],
) -> None:
    async def scenario(h: Harness) -> None:
        held, retried, failed = await jobs(h.store, 1, 2, 1)
        await h.store.create_job(NewJob("elsewhere", "true", 1, None))
        [theirs] = (await h.store.claim({"r2": 1})).by_runner["r2"]
        lost = await h.store.expire_unheld("r1", [held, AttemptKey(theirs.key.job_id, 1)])
        assert sorted(lost, key=str) == sorted([retried, failed], key=str)
        outcome = {}
        for key in (held, retried, failed, theirs.key):
            row = await h.store.get_job(key.job_id)
            assert row is not None
            outcome[key] = (row.status, row.reason)
        assert outcome == {
            held: ("running", None),
            retried: ("scheduled", "runner lost"),
            failed: ("failed", "runner lost"),
            theirs.key: ("running", None),
        }
        assert await h.store.expire_unheld("r3", []) == []

    run_on_store(scenario)


def test_attempts_given_up_end_with_the_reason_and_are_retried_by_the_rules(
    run_on_store: Callable[[Scenario], None],
) -> None:
    async def scenario(h: Harness) -> None:
        retried, failed, cancelled, kept, renewed = await jobs(h.store, 2, 1, 2, 1, 1)
        await h.store.cancel(cancelled.job_id)
        # Taken by its runner to another scheduler, which renewed its lease: it stays.
        await h.moment_passes()
        await h.store.renew_leases("r1", [renewed])
        stale = AttemptKey(kept.job_id, 2)
        given_up = [retried, failed, cancelled, stale, renewed]
        ended = await h.store.end_attempts(given_up, "not acknowledged")
        assert sorted(ended, key=str) == sorted([retried, failed, cancelled], key=str)
        outcome = {}
        for key in (retried, failed, cancelled, kept, renewed):
            row = await h.store.get_job(key.job_id)
            assert row is not None
            outcome[key] = (row.status, row.reason, row.attempt)
        assert outcome == {
            retried: ("scheduled", "not acknowledged", 1),
            failed: ("failed", "not acknowledged", 1),
            cancelled: ("cancelled", "not acknowledged", 1),
            kept: ("running", None, 1),
            renewed: ("running", None, 1),
        }
        [attempt] = await h.store.list_attempts(retried.job_id)
        assert attempt["reason"] == "not acknowledged" and attempt["finished_at"] is not None
        # A given-up attempt is stale: its late finish changes nothing.
        await h.store.apply_reports([finish(retried)])
        row = await h.store.get_job(retried.job_id)
        assert row is not None and row.status == "scheduled"
        assert await h.store.end_attempts(given_up, "not acknowledged") == []
        assert await h.store.end_attempts([], "not delivered") == []

    run_on_store(scenario)


def test_reports_of_running_attempts_add_output_and_start_times(
    run_on_store: Callable[[Scenario], None],
) -> None:
    async def scenario(h: Harness) -> None:
        [key] = await jobs(h.store, 1)
        started = datetime(2030, 1, 2, tzinfo=UTC)
        stale = AttemptKey(key.job_id, 2)
        await h.store.apply_reports([AttemptReport(key, started_at=started, output=["abc"])])
        await h.store.apply_reports([AttemptReport(stale, started_at=started, output=["x"])])
        await h.store.apply_reports([AttemptReport(key, output=["defghijk"], truncated=False)])
        [attempt] = await h.store.list_attempts(key.job_id)
        assert attempt["started_at"] == started
        assert (attempt["output_length"], attempt["output_truncated"]) == (10, True)
        assert await h.store.get_output(key.job_id, 2) is None

    run_on_store(scenario)


def test_reports_from_another_runner_change_nothing_and_are_named(
    run_on_store: Callable[[Scenario], None],
) -> None:
    async def scenario(h: Harness) -> None:
        [started, finished] = await jobs(h.store, 1, 2)  # both given to r1
        at = datetime(2030, 1, 2, tzinfo=UTC)
        forged = [
            AttemptReport(started, started_at=at, output=["forged"], runner_id="r2"),
            replace(finish(finished, 0, output="forged"), runner_id="r2"),
        ]
        stored = await h.store.apply_reports(forged)
        assert stored.acknowledged == [finished]
        assert stored.ended == []
        assert sorted(stored.refused, key=str) == sorted(
            [Refused(started, "r2", "r1"), Refused(finished, "r2", "r1")], key=str
        )
        for key in (started, finished):
            row = await h.store.get_job(key.job_id)
            assert row is not None and (row.status, row.started_at) == ("running", None)
            [attempt] = await h.store.list_attempts(key.job_id)
            assert (attempt["started_at"], attempt["output_length"]) == (None, 0)
        own = await h.store.apply_reports(
            [replace(finish(finished, 0, output="ok"), runner_id="r1")]
        )
        assert ([e.key for e in own.ended], own.refused) == ([finished], [])

    run_on_store(scenario)


def test_cancel_and_retry(run_on_store: Callable[[Scenario], None]) -> None:
    async def scenario(h: Harness) -> None:
        [running] = await jobs(h.store, 1)
        queued = await h.store.create_job(NewJob("queued", "true", 1, None))

        async def status(outcome: Awaitable[tuple[object, bool]]) -> tuple[str | None, bool]:
            row, changed = await outcome
            return getattr(row, "status", None), changed

        assert await status(h.store.cancel(queued.id)) == ("cancelled", True)
        assert await status(h.store.cancel(queued.id)) == ("cancelled", False)
        assert await status(h.store.cancel(running.job_id)) == ("running", True)
        assert await status(h.store.cancel(999)) == (None, False)
        assert await status(h.store.retry(running.job_id)) == ("running", False)
        assert await status(h.store.retry(999)) == (None, False)
        row, queued_again = await h.store.retry(queued.id)
        assert row is not None and queued_again
        assert (row.status, row.reason, row.max_attempts) == ("queued", None, 1)
        assert row.finished_at is None
        await h.store.apply_reports([finish(running)])
        row, _ = await h.store.retry(running.job_id)
        assert row is not None and (row.status, row.attempt, row.max_attempts) == ("queued", 1, 2)

    run_on_store(scenario)


def test_pages_and_counts(run_on_store: Callable[[Scenario], None]) -> None:
    async def scenario(h: Harness) -> None:
        await jobs(h.store, 1, 1, limit=2)
        for n in range(3):
            await h.store.create_job(NewJob(f"more-{n}", "true", 1, None))
        assert [r.id for r in await h.store.list_jobs(None, 2, 0)] == [5, 4]
        assert [r.id for r in await h.store.list_jobs(None, 2, 4)] == [3, 2]
        assert [r.id for r in await h.store.list_jobs("running", 10, 0)] == [2, 1]
        assert [r.id for r in await h.store.list_jobs("queued", 10, 5)] == [4, 3]
        counts = await h.store.count_by_status()
        assert counts == {
            "queued": 3,
            "running": 2,
            "completed": 0,
            "failed": 0,
            "cancelled": 0,
            "scheduled": 0,
        }
        assert await h.store.set_max_concurrent(7) == 7
        assert await h.store.get_config() == (7, False)
        batch = [NewJob("batch-a", "a", 2, 9), NewJob("batch-b", "b", 1, None)]
        rows = await h.store.create_jobs(batch)
        assert [(r.id, r.name, r.command, r.max_attempts, r.timeout_seconds) for r in rows] == [
            (6, "batch-a", "a", 2, 9),
            (7, "batch-b", "b", 1, None),
        ]
        assert {r.status for r in rows} == {"queued"}

    run_on_store(scenario)


def test_the_claim_takes_the_highest_priority_first_then_the_oldest(
    run_on_store: Callable[[Scenario], None],
) -> None:
    async def scenario(h: Harness) -> None:
        await h.store.set_max_concurrent(100)
        for n, priority in enumerate([0, 5, -3, 5, 100]):
            await h.store.create_job(NewJob(f"p-{n}", "true", 1, None, priority=priority))
        order = []
        for _ in range(3):
            claimed = (await h.store.claim({"r1": 2})).by_runner.get("r1", [])
            order.append({c.key.job_id for c in claimed})
        assert order == [{5, 2}, {4, 1}, {3}]

    run_on_store(scenario)


def test_a_delayed_job_is_scheduled_until_its_time(
    run_on_store: Callable[[Scenario], None],
) -> None:
    async def scenario(h: Harness) -> None:
        later = await h.store.create_job(NewJob("later", "true", 1, None, delay_seconds=3600))
        past = datetime(2001, 1, 1, tzinfo=UTC)
        due = await h.store.create_job(NewJob("due", "true", 1, None, run_at=past))
        assert (later.status, due.status, due.run_at) == ("scheduled", "queued", past)
        assert later.run_at is not None and later.created_at is not None
        assert 3599 <= (later.run_at - later.created_at).total_seconds() <= 3601
        first = await h.store.claim({"r1": 5})
        assert [c.key.job_id for c in first.by_runner["r1"]] == [due.id]
        assert first.next_due_at == later.run_at
        counts = await h.store.count_by_status()
        assert (counts["scheduled"], counts["running"]) == (1, 1)
        await h.end_backoffs()
        second = await h.store.claim({"r1": 5})
        assert [c.key.job_id for c in second.by_runner["r1"]] == [later.id]
        assert second.next_due_at is None
        row = await h.store.get_job(later.id)
        assert row is not None and (row.status, row.run_at) == ("running", None)

    run_on_store(scenario)


def test_dependencies_hold_a_job_and_a_failure_cancels_the_chain(
    run_on_store: Callable[[Scenario], None],
) -> None:
    async def scenario(h: Harness) -> None:
        await h.store.set_max_concurrent(100)
        a = await h.store.create_job(NewJob("a", "true", 1, None))
        b = await h.store.create_job(NewJob("b", "true", 1, None, depends_on=(a.id,)))
        c = await h.store.create_job(NewJob("c", "true", 1, None, depends_on=(b.id,)))
        d = await h.store.create_job(NewJob("d", "true", 1, None, depends_on=(c.id, a.id)))
        assert (b.depends_on, d.depends_on) == ([a.id], [a.id, c.id])

        async def claim() -> list[AttemptKey]:
            return [c.key for c in (await h.store.claim({"r1": 5})).by_runner.get("r1", [])]

        [run_a] = await claim()
        assert run_a.job_id == a.id and await claim() == []
        await h.store.apply_reports([finish(run_a)])
        [run_b] = await claim()
        assert run_b.job_id == b.id
        await h.store.apply_reports([finish(run_b, 3)])
        for job, reason in ((c, f"dependency {b.id} failed"), (d, f"dependency {c.id} cancelled")):
            row = await h.store.get_job(job.id)
            assert row is not None and (row.status, row.reason) == ("cancelled", reason)
        assert await claim() == []

        late = await h.store.create_job(NewJob("late", "true", 1, None, depends_on=(b.id,)))
        assert (late.status, late.reason) == ("cancelled", f"dependency {b.id} failed")
        row, changed = await h.store.retry(c.id)
        assert row is not None and (row.status, changed) == ("cancelled", False)
        with pytest.raises(InvalidValue, match="depends_on: job 999 does not exist"):
            await h.store.create_job(NewJob("orphan", "true", 1, None, depends_on=(999,)))

    run_on_store(scenario)


def test_a_pause_holds_new_starts(run_on_store: Callable[[Scenario], None]) -> None:
    async def scenario(h: Harness) -> None:
        await h.store.create_job(NewJob("held", "true", 1, None))
        assert (await h.store.get_config())[1] is False
        assert await h.store.set_paused(True) is True
        held = await h.store.claim({"r1": 2})
        assert (held.claimed, held.queued, (await h.store.get_config())[1]) == (0, 1, True)
        await h.store.set_paused(False)
        assert (await h.store.claim({"r1": 2})).claimed == 1

    run_on_store(scenario)


def test_a_key_limit_is_nested_in_the_global_one_and_a_paused_key_starts_nothing(
    run_on_store: Callable[[Scenario], None],
) -> None:
    async def scenario(h: Harness) -> None:
        await h.store.set_max_concurrent(3)
        for n in range(4):
            await h.store.create_job(NewJob(f"a-{n}", "true", 1, None, concurrency_key="a"))
        await h.store.create_job(NewJob("b-0", "true", 1, None, concurrency_key="b"))
        await h.store.create_job(NewJob("none", "true", 1, None))
        assert (await h.store.set_limit("a", 2, False)).max_concurrent_jobs == 2
        await h.store.set_limit("b", None, True)
        first = (await h.store.claim({"r1": 10})).by_runner["r1"]
        names = {(await h.store.get_job(c.key.job_id)).name for c in first}  # type: ignore[union-attr]
        assert names == {"a-0", "a-1", "none"}
        assert (await h.store.claim({"r1": 10})).claimed == 0  # global limit full
        await h.store.apply_reports([finish(c.key) for c in first])
        again = (await h.store.claim({"r1": 10})).by_runner["r1"]
        assert len(again) == 2  # a's limit again, and b is paused
        limits = await h.store.list_limits()
        assert [(x.key, x.max_concurrent_jobs, x.paused, x.running, x.queued) for x in limits] == [
            ("a", 2, False, 2, 0),
            ("b", None, True, 0, 1),
        ]
        assert await h.store.delete_limit("b") and not await h.store.delete_limit("b")
        assert (await h.store.claim({"r1": 10})).claimed == 1  # b, unpaused with its limit gone
        assert await h.store.get_limit("nobody") is None

        # Within one claim, a key gets no more than its room, even with slots to spare.
        await h.store.set_max_concurrent(100)
        for n in range(3):
            await h.store.create_job(NewJob(f"c-{n}", "true", 1, None, concurrency_key="c"))
        await h.store.set_limit("c", 1, False)
        assert (await h.store.claim({"r1": 10})).claimed == 1

    run_on_store(scenario)


def test_keys_take_turns_so_a_late_key_is_not_starved(
    run_on_store: Callable[[Scenario], None],
) -> None:
    async def scenario(h: Harness) -> None:
        await h.store.set_max_concurrent(100)
        for n in range(20):
            await h.store.create_job(NewJob(f"a-{n}", "true", 1, None, concurrency_key="a"))
        first = (await h.store.claim({"r1": 2})).by_runner["r1"]
        await h.store.apply_reports([finish(c.key) for c in first])
        for n in range(3):
            await h.store.create_job(NewJob(f"b-{n}", "true", 1, None, concurrency_key="b"))
        order = []
        for _ in range(4):
            claimed = (await h.store.claim({"r1": 2})).by_runner["r1"]
            order.append(sorted(c.key.job_id for c in claimed))
        # a's third and b's first, then alternating: b does not wait behind a's backlog.
        assert order == [[3, 21], [4, 22], [5, 23], [6, 7]]

    run_on_store(scenario)


def test_each_write_records_its_caller_in_the_audit_log(
    run_on_store: Callable[[Scenario], None],
) -> None:
    ci, ops = Caller("ci", "192.0.2.1"), Caller("ops", "192.0.2.2")

    async def scenario(h: Harness) -> None:
        one = await h.store.create_job(NewJob("one", "echo hi", 1, None), ci)
        two = await h.store.create_jobs([NewJob(f"b{n}", "true", 1, None) for n in range(2)], ci)
        await h.store.cancel(one.id, ci)
        await h.store.cancel(one.id, ci)  # changes nothing: records nothing
        await h.store.retry(one.id, ci)
        await h.store.set_max_concurrent(4, ops)
        await h.store.set_paused(True, ops)
        await h.store.set_limit("k", 2, False, ops)
        await h.store.set_limit("k", 2, True, ops)
        await h.store.set_limit("k", 3, True, ops)
        assert await h.store.delete_limit("k", ops)
        assert not await h.store.delete_limit("k", ops)
        entries = list(reversed(await h.store.list_audit(100, 0)))
        remotes = {"ci": ci.remote, "ops": ops.remote}
        assert all(e.remote == remotes[e.actor] for e in entries)
        got = [(e.actor, e.action, e.target, _parsed(e.before), _parsed(e.after)) for e in entries]
        a, b = two[0].id, two[1].id
        assert got == [
            ("ci", "job.create", f"job/{one.id}", None, {"name": "one", "command": "echo hi"}),
            ("ci", "jobs.create", f"jobs/{a}-{b}", None, {"count": 2, "first_id": a, "last_id": b}),
            ("ci", "job.cancel", f"job/{one.id}", _status("queued"), _status("cancelled")),
            ("ci", "job.retry", f"job/{one.id}", _status("cancelled"), _status("queued")),
            ("ops", "config.update", "config", _max(2), _max(4)),
            ("ops", "config.update", "config", {"paused": False}, {"paused": True}),
            ("ops", "limit.set", "limit/k", None, _limit(2, False)),
            ("ops", "limit.pause", "limit/k", _limit(2, False), _limit(2, True)),
            ("ops", "limit.set", "limit/k", _limit(2, True), _limit(3, True)),
            ("ops", "limit.delete", "limit/k", _limit(3, True), None),
        ]
        page = await h.store.list_audit(2, entries[5].id)
        assert [e.id for e in page] == [entries[4].id, entries[3].id]

    run_on_store(scenario)


def _parsed(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _status(status: str) -> dict[str, str]:
    return {"status": status}


def _max(limit: int) -> dict[str, int]:
    return {"max_concurrent_jobs": limit}


def _limit(limit: int, paused: bool) -> dict[str, Any]:
    return {"max_concurrent_jobs": limit, "paused": paused}
