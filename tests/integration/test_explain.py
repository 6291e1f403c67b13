"""ExplainJob and GetSeries served in-process over a real database: each situation that
keeps a job from starting is named in the answer, and the minutes count what happened."""

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any, TypeAlias

import grpc
import psycopg
import pytest
from jobsched.v1 import jobs_pb2 as pb
from jobsched.v1 import jobs_pb2_grpc
from jobsched_scheduler.api import JobApi
from jobsched_scheduler.dispatch import ConnectedRunner, Dispatcher
from jobsched_scheduler.events import EventHub
from jobsched_scheduler.explain import PgExplainer, behind_blocker
from jobsched_scheduler.model import AttemptKey
from jobsched_scheduler.series import PgSeries
from jobsched_scheduler.store import PgStore, new_pool

from tests.integration.serving import refused, served

pytestmark = pytest.mark.timeout(60)
# Its async class exists only in the type stubs.
Stub: TypeAlias = "jobs_pb2_grpc.JobServiceAsyncStub"


async def _api(url: str) -> AsyncIterator[tuple[Stub, Dispatcher]]:
    """The JobService in-process with a dispatcher that never claims: the runners the
    explainer sees are the ones a test attaches."""
    pool = new_pool(url, max_size=4)
    await pool.open(wait=True)
    store = PgStore(pool, lease_seconds=10, output_limit=1000)
    dispatcher = Dispatcher(store, check_interval=60)
    api = JobApi(
        store,
        dispatcher,
        EventHub(url, lambda: None),
        explainer=PgExplainer(pool),
        series=PgSeries(pool),
    )
    try:
        async with served(
            lambda server: jobs_pb2_grpc.add_JobServiceServicer_to_server(api, server)
        ) as channel:
            yield jobs_pb2_grpc.JobServiceStub(channel), dispatcher
    finally:
        await pool.close()


def _runner(dispatcher: Dispatcher, name: str, capacity: int, busy: int = 0) -> None:
    runner = ConnectedRunner(name, capacity, lambda claimed: None, lambda keys, why: None)
    runner.active.update(AttemptKey(-i, 1) for i in range(1, busy + 1))
    dispatcher.runners[name] = runner


def _sql(url: str, query: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(query.encode(), params)
        return cur.fetchall() if cur.description else []


async def _job(jobs: Stub, name: str, **fields: Any) -> int:
    job = await jobs.CreateJob(pb.CreateJobRequest(name=name, command="true", **fields))
    return job.id


async def _why(jobs: Stub, job_id: int) -> pb.JobExplanation:
    return await jobs.ExplainJob(pb.ExplainJobRequest(id=job_id))


def _kinds(answer: pb.JobExplanation) -> list[str]:
    return [b.kind for b in answer.blockers]


def _blocker(answer: pb.JobExplanation, kind: str) -> pb.Blocker:
    return next(b for b in answer.blockers if b.kind == kind)


def test_a_lone_queued_job_with_a_free_runner_is_next(database_url: str) -> None:
    async def scenario() -> None:
        async for jobs, dispatcher in _api(database_url):
            _runner(dispatcher, "runner-1", capacity=2)
            answer = await _why(jobs, await _job(jobs, "alone"))
            assert answer.runnable and answer.HasField("position") and answer.position == 0
            assert list(answer.blockers) == [] and answer.status == pb.JOB_STATUS_QUEUED
            assert answer.message.endswith(".") and "next" in answer.message
            assert await refused(jobs.ExplainJob(pb.ExplainJobRequest(id=999))) == (
                grpc.StatusCode.NOT_FOUND,
                "job 999 not found",
            )

    asyncio.run(scenario())


def test_each_situation_is_named(database_url: str) -> None:
    async def scenario() -> None:
        async for jobs, dispatcher in _api(database_url):
            answer = await _why(jobs, await _job(jobs, "no-runner"))
            assert _kinds(answer) == ["no_runners"] and not answer.runnable
            assert "no runner is connected" in answer.message

            _runner(dispatcher, "runner-1", capacity=1, busy=1)
            answer = await _why(jobs, await _job(jobs, "full"))
            assert _kinds(answer) == ["runner_capacity", "behind"] and answer.position == 1
            _runner(dispatcher, "runner-1", capacity=4)

            later = datetime.now(UTC) + timedelta(hours=1)
            delayed = await _job(jobs, "delayed", delay_seconds=3600)
            answer = await _why(jobs, delayed)
            assert _kinds(answer) == ["not_before"] and not answer.runnable
            assert not answer.HasField("position")
            run_at = _blocker(answer, "not_before").run_at.ToDatetime(UTC)
            assert abs((run_at - later).total_seconds()) < 60

            first = await _job(jobs, "first")
            waiter = await _job(jobs, "waiter", depends_on=[first])
            answer = await _why(jobs, waiter)
            # Out of the line until its dependency completes: no place in it.
            assert _kinds(answer) == ["dependencies"] and not answer.HasField("position")
            assert list(_blocker(answer, "dependencies").waiting_on) == [first]

            await jobs.UpdateConfig(pb.UpdateConfigRequest(paused=True))
            answer = await _why(jobs, first)
            assert _kinds(answer) == ["paused", "behind"] and not answer.runnable
            await jobs.UpdateConfig(pb.UpdateConfigRequest(paused=False))

    asyncio.run(scenario())


def test_limits_name_the_jobs_holding_them(database_url: str) -> None:
    async def scenario() -> None:
        async for jobs, dispatcher in _api(database_url):
            _runner(dispatcher, "runner-1", capacity=8)
            holder = await _job(jobs, "holder", concurrency_key="db")
            waiting = await _job(jobs, "waiting", concurrency_key="db")
            _sql(database_url, "UPDATE jobs SET status = 'running' WHERE id = %s", (holder,))
            _sql(
                database_url,
                "INSERT INTO concurrency_limits (key, max_concurrent_jobs) VALUES ('db', 1)",
            )
            answer = await _why(jobs, waiting)
            assert _kinds(answer) == ["key_limit"] and not answer.runnable
            limit = _blocker(answer, "key_limit")
            assert (limit.key, limit.limit, limit.running) == ("db", 1, 1)
            assert list(limit.holders) == [holder]

            _sql(database_url, "UPDATE concurrency_limits SET paused = true")
            assert _kinds(await _why(jobs, waiting)) == ["key_paused", "key_limit"]
            _sql(
                database_url, "UPDATE concurrency_limits SET paused = true, max_concurrent_jobs = 5"
            )
            answer = await _why(jobs, waiting)
            assert _kinds(answer) == ["key_paused"] and _blocker(answer, "key_paused").key == "db"

            await jobs.UpdateConfig(pb.UpdateConfigRequest(max_concurrent_jobs=1))
            other = await _job(jobs, "other")
            answer = await _why(jobs, other)
            assert _kinds(answer) == ["global_limit"]
            limit = _blocker(answer, "global_limit")
            assert (limit.limit, limit.running, list(limit.holders)) == (1, 1, [holder])
            assert "1 of 1" in limit.message

    asyncio.run(scenario())


def test_behind_counts_only_eligible_jobs_ahead_in_the_claims_order(database_url: str) -> None:
    async def scenario() -> None:
        async for jobs, dispatcher in _api(database_url):
            _runner(dispatcher, "runner-1", capacity=8)
            await _job(jobs, "a")
            await _job(jobs, "b")
            await _job(jobs, "paused-key", concurrency_key="off")
            _sql(database_url, "INSERT INTO concurrency_limits (key, paused) VALUES ('off', true)")
            await _job(jobs, "later-low", priority=-1)
            last = await _job(jobs, "c")
            urgent = await _job(jobs, "urgent", priority=5)
            answer = await _why(jobs, last)
            assert answer.runnable and answer.position == 3  # a, b, urgent
            assert _kinds(answer) == ["behind"] and _blocker(answer, "behind").position == 3
            assert "3 eligible jobs are ahead" in answer.message
            answer = await _why(jobs, urgent)
            assert answer.runnable and answer.position == 0 and _kinds(answer) == []
            assert behind_blocker(10_000).message == (
                "10,000 or more eligible jobs are ahead of it in the claim's order."
            )

    asyncio.run(scenario())


def test_running_and_finished_jobs_say_where_they_are(database_url: str) -> None:
    async def scenario() -> None:
        async for jobs, _ in _api(database_url):
            running = await _job(jobs, "running", max_attempts=3)
            _sql(
                database_url,
                "UPDATE jobs SET status = 'running', runner_id = 'runner-1', "
                "attempt = 2, started_at = '2026-01-02 12:00:03+00' WHERE id = %s",
                (running,),
            )
            answer = await _why(jobs, running)
            assert answer.message == (
                "Running on runner-1 since 2026-01-02 12:00:03 UTC (attempt 2 of 3)."
            )
            assert not answer.runnable and not answer.HasField("position")
            assert list(answer.blockers) == []
            _sql(
                database_url,
                "UPDATE jobs SET status = 'completed', "
                "finished_at = '2026-01-02 12:01:00+00' WHERE id = %s",
                (running,),
            )
            answer = await _why(jobs, running)
            assert answer.message == "Completed at 2026-01-02 12:01:00 UTC."
            assert answer.status == pb.JOB_STATUS_COMPLETED

    asyncio.run(scenario())


def test_series_counts_each_minute(database_url: str) -> None:
    (now,) = _sql(database_url, "SELECT date_trunc('minute', now())")[0]
    assert isinstance(now, datetime)
    base = now - timedelta(minutes=3)

    def at(seconds: float) -> datetime:
        return base + timedelta(seconds=seconds)

    _sql(database_url, "UPDATE scheduler_config SET value = '5' WHERE key = 'max_concurrent_jobs'")
    _sql(database_url, "INSERT INTO concurrency_limits (key, max_concurrent_jobs) VALUES ('k', 3)")
    rows = [
        ("done", None, "completed", at(-10), at(0), at(2), at(30)),
        ("broke", "k", "failed", at(0), at(5), at(10), at(70)),
    ]
    for name, key, status, created, claimed, started, finished in rows:
        (job_id,) = _sql(
            database_url,
            "INSERT INTO jobs (name, command, status, concurrency_key, created_at, finished_at, "
            "attempt) VALUES (%s, 'true', %s, %s, %s, %s, 1) RETURNING id",
            (name, status, key, created, finished),
        )[0]
        _sql(
            database_url,
            "INSERT INTO job_attempts (job_id, attempt, runner_id, claimed_at, started_at, "
            "finished_at) VALUES (%s, 1, 'r', %s, %s, %s)",
            (job_id, claimed, started, finished),
        )
    _sql(
        database_url,
        "INSERT INTO jobs (name, command, status, finished_at) "
        "VALUES ('dropped', 'true', 'cancelled', %s)",
        (at(20),),
    )

    async def scenario() -> None:
        async for jobs, _ in _api(database_url):
            series = await jobs.GetSeries(pb.GetSeriesRequest(window_seconds=600, key="k"))
            points = {p.at.ToDatetime(UTC): p for p in series.points}
            assert len(series.points) == 10
            assert list(points) == sorted(points)
            first, second, third = points[base], points[at(60)], points[at(120)]
            assert (first.running, first.key_running) == (2, 1)
            assert (first.completed, first.failed, first.cancelled) == (1, 0, 1)
            assert first.wait_p50_seconds == pytest.approx(11)
            assert first.wait_p95_seconds == pytest.approx(11.9)
            assert (second.running, second.key_running, second.failed) == (1, 1, 1)
            assert (third.running, third.completed, third.wait_p50_seconds) == (0, 0, 0)
            assert {(p.limit, p.key_limit) for p in series.points} == {(5, 3)}
            assert len((await jobs.GetSeries(pb.GetSeriesRequest())).points) == 60
            code, _ = await refused(jobs.GetSeries(pb.GetSeriesRequest(window_seconds=86401)))
            assert code == grpc.StatusCode.INVALID_ARGUMENT

    asyncio.run(scenario())
