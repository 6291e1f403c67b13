"""The public gRPC API served in-process over a real database: the status code of each
domain error, the defaults of unset values, and times as grpcurl prints them."""

import asyncio
import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import grpc
import psycopg
import pytest
from google.protobuf.json_format import MessageToJson
from jobsched.v1 import jobs_pb2 as pb
from jobsched.v1 import jobs_pb2_grpc
from jobsched_scheduler import events
from jobsched_scheduler.api import JobApi
from jobsched_scheduler.dispatch import Dispatcher
from jobsched_scheduler.events import EventHub, JobEvent
from jobsched_scheduler.store import PgStore, new_pool

from tests.integration.serving import refused, served

pytestmark = pytest.mark.timeout(60)
RFC_3339_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3}|\.\d{6}|\.\d{9})?Z$")


async def _api(url: str) -> AsyncIterator[tuple["jobs_pb2_grpc.JobServiceAsyncStub", JobApi]]:
    """The API served in-process: a client stub on an aio channel (its async class exists
    only in the type stubs) and the servicer behind it."""
    pool = new_pool(url, max_size=4)
    await pool.open(wait=True)
    store = PgStore(pool, lease_seconds=10, output_limit=1000)
    api = JobApi(store, Dispatcher(store, check_interval=60), EventHub(url, lambda: None))
    try:
        async with served(
            lambda server: jobs_pb2_grpc.add_JobServiceServicer_to_server(api, server)
        ) as channel:
            yield jobs_pb2_grpc.JobServiceStub(channel), api
    finally:
        await pool.close()


def test_get_job_prints_rfc_3339_times_as_grpcurl_does(database_url: str) -> None:
    async def scenario() -> None:
        async for jobs, _ in _api(database_url):
            job = await jobs.CreateJob(pb.CreateJobRequest(name="timed", command="true"))
            with psycopg.connect(database_url, autocommit=True) as conn:
                conn.execute(
                    "UPDATE jobs SET last_run = %s, finished_at = 'infinity' WHERE id = %s",
                    (datetime(1969, 7, 20, 20, 17, 40, 1, tzinfo=UTC), job.id),
                )
                (created_at,) = conn.execute(
                    "SELECT created_at FROM jobs WHERE id = %s", (job.id,)
                ).fetchone() or (None,)
            printed = json.loads(MessageToJson(await jobs.GetJob(pb.GetJobRequest(id=job.id))))
            assert printed["lastRun"] == "1969-07-20T20:17:40.000001Z"
            assert RFC_3339_UTC.match(printed["createdAt"]), printed
            assert datetime.fromisoformat(printed["createdAt"]) == created_at
            assert "finishedAt" not in printed and "startedAt" not in printed

    asyncio.run(scenario())


def test_each_refusal_has_its_status_code(database_url: str) -> None:
    code = grpc.StatusCode

    async def scenario() -> None:
        async for jobs, api in _api(database_url):
            job = await jobs.CreateJob(pb.CreateJobRequest(name="taken", command="true"))
            assert job.max_attempts == 1 and not job.timeout_seconds  # unset: the defaults
            assert await refused(
                jobs.CreateJob(pb.CreateJobRequest(name="taken", command="true"))
            ) == (code.ALREADY_EXISTS, "job name 'taken' already exists")
            zero_attempts = pb.CreateJobRequest(name="n", command="true", max_attempts=0)
            assert (await refused(jobs.CreateJob(zero_attempts)))[0] == code.INVALID_ARGUMENT
            assert await refused(jobs.GetJob(pb.GetJobRequest(id=0))) == (
                code.INVALID_ARGUMENT,
                "id: Input should be greater than or equal to 1",
            )
            assert await refused(jobs.GetJob(pb.GetJobRequest(id=10**9))) == (
                code.NOT_FOUND,
                "job 1000000000 not found",
            )
            for missing in (
                jobs.GetJobOutput(pb.GetJobOutputRequest(id=10**9)),
                jobs.ListAttempts(pb.ListAttemptsRequest(job_id=10**9)),
                jobs.CancelJob(pb.CancelJobRequest(id=10**9)),
            ):
                assert (await refused(missing))[0] == code.NOT_FOUND
            assert await refused(jobs.RetryJob(pb.RetryJobRequest(id=job.id))) == (
                code.FAILED_PRECONDITION,
                f"job {job.id} is queued: only a finished job can be retried",
            )
            await jobs.CancelJob(pb.CancelJobRequest(id=job.id))
            assert await refused(jobs.CancelJob(pb.CancelJobRequest(id=job.id))) == (
                code.FAILED_PRECONDITION,
                f"job {job.id} is already cancelled",
            )
            assert len((await jobs.ListJobs(pb.ListJobsRequest())).jobs) == 1  # unset limit
            for limit in (0, 1001):
                page = jobs.ListJobs(pb.ListJobsRequest(limit=limit))
                assert (await refused(page))[0] == code.INVALID_ARGUMENT
            assert isinstance(api.store, PgStore)
            await api.store.pool.close()
            assert await refused(jobs.GetStats(pb.GetStatsRequest())) == (
                code.UNAVAILABLE,
                "database unavailable",
            )

    asyncio.run(scenario())


def test_events_stream_until_the_watcher_falls_behind(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(events, "WATCHER_BUFFER", 2)
    at = datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC)

    async def scenario() -> None:
        async for jobs, api in _api(database_url):
            stream = jobs.WatchEvents(pb.WatchEventsRequest())
            async with asyncio.timeout(5):  # subscribed once the call has begun
                while not api.events._watchers:
                    await asyncio.sleep(0.01)
            api.events.publish([JobEvent(7, "running", 1, at)])
            first = await stream.read()
            assert isinstance(first, pb.JobEvent)
            assert (first.job_id, first.status) == (7, pb.JOB_STATUS_RUNNING)
            assert first.at.ToDatetime(tzinfo=UTC) == at
            api.events.publish([JobEvent(7, "completed", 1, at)] * 3)  # one more than fits
            delivered = []
            with pytest.raises(grpc.aio.AioRpcError) as cut_off:
                while True:  # what was queued before the overflow may still arrive first
                    delivered.append(await stream.read())
            assert cut_off.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert cut_off.value.details() == "watcher fell behind"
            assert len(delivered) <= 2 and grpc.aio.EOF not in delivered
            assert not api.events._watchers

    asyncio.run(scenario())
