"""A Hypothesis state machine against real PostgreSQL: jobs are created (with priorities,
delays and dependencies), claimed by runners, finished, lost with their runner, the
limit changes, the scheduler pauses and resumes, time passes, and the scheduler
"restarts" (a new store on a new pool: nothing survives but the database).

Invariants after every step: a claim never takes `running` above the limit, takes
nothing while paused, and takes exactly the first eligible jobs in the claim's order
(due, dependencies completed; highest priority, then oldest); the database's running
attempts are exactly those some live runner holds; no job waits on a dependency that
failed or was cancelled; stale reports change nothing. At the end, with every runner
gone and the limit wide, every job reaches a terminal state: none is stuck."""

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from jobsched_scheduler.model import AttemptKey, AttemptReport, Finish, NewJob
from jobsched_scheduler.store import PgStore, new_pool
from psycopg_pool import AsyncConnectionPool

pytestmark = pytest.mark.timeout(300)

RUNNERS = ["r1", "r2", "r3"]
LIMITED_KEYS = ["a", "b"]
KEYS = [*LIMITED_KEYS, None]


def report(key: AttemptKey, exit_code: int) -> AttemptReport:
    now = datetime.now(UTC)
    return AttemptReport(key, finished=Finish(exit_code, "", now, now))


class DispatchMachine(RuleBasedStateMachine):
    database_url = ""

    def __init__(self) -> None:
        super().__init__()
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            conn.execute("TRUNCATE jobs, job_attempts, job_search RESTART IDENTITY")
            conn.execute(
                "UPDATE scheduler_config SET value = '2' WHERE key = 'max_concurrent_jobs'"
            )
            conn.execute("UPDATE scheduler_config SET value = 'false' WHERE key = 'paused'")
        self.pool: AsyncConnectionPool[Any] | None = None
        # Hypothesis calls teardown only on a machine that was built: one that fails
        # here closes its loop (and pool) itself, or they outlive the test.
        self.loop = asyncio.new_event_loop()
        try:
            self.store = self._new_store()
        except BaseException:
            self._close()
            raise
        self.held: dict[str, set[AttemptKey]] = {r: set() for r in RUNNERS}
        self.stale: list[AttemptKey] = []
        self.created = 0
        self.paused = False

    def _run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def _new_store(self) -> PgStore:
        if self.pool is not None:
            self._run(self.pool.close())
        self.pool = new_pool(self.database_url, max_size=4)
        self._run(self.pool.open(wait=True))
        return PgStore(self.pool, lease_seconds=60, output_limit=1000)

    def _sql(self, query: str, params: Any = None) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            cur = conn.execute(query.encode(), params)
            return cur.fetchall() if cur.description else []

    def _running(self) -> set[AttemptKey]:
        rows = self._sql("SELECT id, attempt FROM jobs WHERE status = 'running'")
        return {AttemptKey(i, a) for i, a in rows}

    @rule(
        data=st.data(),
        n=st.integers(1, 5),
        attempts=st.integers(1, 3),
        delay=st.sampled_from([None, None, 0.0, 3600.0]),
    )
    def create(self, data: st.DataObject, n: int, attempts: int, delay: float | None) -> None:
        for _ in range(n):
            ids = range(1, self.created + 1)
            depends_on = data.draw(st.lists(st.sampled_from(ids), max_size=2)) if ids else []
            priority = data.draw(st.integers(-2, 2))
            key = data.draw(st.sampled_from(KEYS))
            self.created += 1
            name = f"job-{self.created}"
            job = NewJob(
                name, "true", attempts, None, priority, None, delay, tuple(depends_on), key
            )
            self._run(self.store.create_job(job))

    def _eligible_in_order(self, wanted: int) -> list[int]:
        """The claim's rule, written out again: due, every dependency completed, its key
        not paused and below its limit; highest priority first, then the key's turn, then
        oldest; at most a key's room of each key, and `wanted` in all."""
        rows = self._sql(
            """SELECT j.id, j.concurrency_key FROM jobs j
               WHERE (j.status = 'queued'
                      OR (j.status = 'scheduled' AND (j.run_after <= now() OR j.run_after IS NULL)))
                 AND NOT EXISTS (SELECT 1 FROM unnest(j.depends_on) d JOIN jobs p ON p.id = d
                                 WHERE p.status <> 'completed')
               ORDER BY j.priority DESC, j.fair_seq, j.id"""
        )
        room = self._key_room()
        taken: list[int] = []
        for job_id, key in rows:
            left = room.get(key)
            if len(taken) == wanted or left == 0:
                continue
            if left is not None:
                room[key] = left - 1
            taken.append(job_id)
        return taken

    def _key_room(self) -> dict[str, int | None]:
        rows = self._sql(
            """SELECT l.key, l.max_concurrent_jobs, l.paused, count(j.id)
               FROM concurrency_limits l
               LEFT JOIN jobs j ON j.concurrency_key = l.key AND j.status = 'running'
               GROUP BY 1, 2, 3"""
        )
        return {
            key: 0 if paused else None if limit is None else max(0, limit - running)
            for key, limit, paused, running in rows
        }

    @rule(runner=st.sampled_from(RUNNERS), capacity=st.integers(1, 4))
    def claim(self, runner: str, capacity: int) -> None:
        free = {runner: max(0, capacity - len(self.held[runner]))}
        before = len(self._running())
        limit, running = self._sql(
            "SELECT (SELECT value::int FROM scheduler_config WHERE key = 'max_concurrent_jobs'),"
            " (SELECT count(*) FROM jobs WHERE status = 'running')"
        )[0]
        wanted = 0 if self.paused else max(0, min(limit - running, free[runner]))
        eligible = self._eligible_in_order(wanted)
        key_before = self._running_by_key()
        result = self._run(self.store.claim(free))
        after = len(self._running())
        assert after <= max(result.limit, before), (before, after, result.limit)
        assert after - before == result.claimed <= free[runner]
        if self.paused:
            assert result.claimed == 0
        claimed = [c.key for c in result.by_runner.get(runner, [])]
        assert sorted(k.job_id for k in claimed) == sorted(eligible), eligible
        for key, limit, paused, before_key, after_key in self._key_counts(key_before):
            assert after_key <= (before_key if paused else max(limit, before_key)), key
        self.held[runner].update(claimed)

    @rule(
        key=st.sampled_from(LIMITED_KEYS),
        limit=st.sampled_from([None, 1, 1, 2]),
        paused=st.sampled_from([False, False, False, True]),
        remove=st.sampled_from([False, False, False, True]),
    )
    def change_key_limit(self, key: str, limit: int | None, paused: bool, remove: bool) -> None:
        if remove:
            self._run(self.store.delete_limit(key))
        else:
            self._run(self.store.set_limit(key, limit, paused))

    def _running_by_key(self) -> dict[str, int]:
        rows = self._sql(
            "SELECT concurrency_key, count(*) FROM jobs WHERE status = 'running' GROUP BY 1"
        )
        return {key: n for key, n in rows if key is not None}

    def _key_counts(self, before: dict[str, int]) -> list[tuple[str, int, bool, int, int]]:
        """Each limited key: its limit, pause, and running jobs before and after a claim."""
        after = self._running_by_key()
        rows = self._sql(
            "SELECT key, max_concurrent_jobs, paused FROM concurrency_limits"
            " WHERE max_concurrent_jobs IS NOT NULL OR paused"
        )
        return [
            (key, limit or 10**6, paused, before.get(key, 0), after.get(key, 0))
            for key, limit, paused in rows
        ]

    @rule(paused=st.booleans())
    def pause(self, paused: bool) -> None:
        self.paused = self._run(self.store.set_paused(paused))

    @rule()
    def time_passes(self) -> None:
        """Delays and backoffs run out."""
        self._sql("UPDATE jobs SET run_after = now() WHERE status = 'scheduled'")

    @precondition(lambda self: any(self.held.values()))
    @rule(data=st.data(), exit_code=st.sampled_from([0, 0, 1]))
    def finish(self, data: st.DataObject, exit_code: int) -> None:
        runner = data.draw(st.sampled_from([r for r in RUNNERS if self.held[r]]))
        key = data.draw(st.sampled_from(sorted(self.held[runner], key=str)))
        self._run(self.store.apply_reports([report(key, exit_code)]))
        self.held[runner].discard(key)
        self.stale.append(key)

    @precondition(lambda self: any(self.held.values()))
    @rule(runner=st.sampled_from(RUNNERS))
    def lose_runner(self, runner: str) -> None:
        """kill -9: its leases lapse and the sweep ends (or requeues) its attempts."""
        self._sql(
            "UPDATE jobs SET lease_expires_at = %s WHERE runner_id = %s AND status = 'running'",
            (datetime.now(UTC) - timedelta(seconds=1), runner),
        )
        expired = set(self._run(self.store.expire_leases()))
        assert expired == self.held[runner]
        self.stale.extend(self.held[runner])
        self.held[runner] = set()

    @precondition(lambda self: bool(self.stale))
    @rule(data=st.data())
    def late_report(self, data: st.DataObject) -> None:
        key = data.draw(st.sampled_from(self.stale))
        before = self._sql("SELECT id, status, attempt FROM jobs ORDER BY id")
        self._run(self.store.apply_reports([report(key, 0)]))
        assert self._sql("SELECT id, status, attempt FROM jobs ORDER BY id") == before

    @rule(limit=st.integers(1, 6))
    def change_limit(self, limit: int) -> None:
        self._run(self.store.set_max_concurrent(limit))

    @rule()
    def restart_scheduler(self) -> None:
        self.store = self._new_store()

    @invariant()
    def running_rows_are_held_by_live_runners(self) -> None:
        held: set[AttemptKey] = set().union(*self.held.values())
        assert self._running() == held

    @invariant()
    def no_job_waits_on_a_broken_dependency(self) -> None:
        assert not self._sql(
            """SELECT j.id FROM jobs j JOIN jobs p ON p.id = ANY (j.depends_on)
               WHERE j.status IN ('queued', 'scheduled') AND p.status IN ('failed', 'cancelled')"""
        )

    def teardown(self) -> None:
        try:
            self._drain()
        finally:
            self._close()

    def _close(self) -> None:
        try:
            if self.pool is not None:
                self._run(self.pool.close())
        finally:
            self.loop.close()

    def _drain(self) -> None:
        """Everything ends: finish what is held, then claim and finish the rest."""
        for runner, keys in self.held.items():
            self._run(self.store.apply_reports([report(k, 0) for k in keys]))
            self.held[runner] = set()
        self._run(self.store.set_max_concurrent(100))
        self._run(self.store.set_paused(False))
        for key in LIMITED_KEYS:
            self._run(self.store.delete_limit(key))
        for _ in range(40):
            self._sql("UPDATE jobs SET run_after = now() WHERE status = 'scheduled'")
            result = self._run(self.store.claim({"drain": 100}))
            claimed = result.by_runner.get("drain", [])
            if not claimed:
                break
            self._run(self.store.apply_reports([report(c.key, 0) for c in claimed]))
        counts = self._run(self.store.count_by_status())
        assert counts["queued"] == counts["running"] == counts["scheduled"] == 0, counts
        assert sum(counts.values()) == self.created


def test_dispatch_state_machine(database_url: str) -> None:
    DispatchMachine.database_url = database_url
    machine = DispatchMachine.TestCase
    machine.settings = settings(
        max_examples=25,
        stateful_step_count=30,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    machine().runTest()
