"""Who may call what over gRPC, and the record of it: the public services behind the
access interceptor, over a real database. Each token's role is checked per method; each
write leaves one audit entry with the token's name and the caller's address."""

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from jobsched.v1 import jobs_pb2 as pb
from jobsched.v1 import jobs_pb2_grpc
from jobsched_common.tokens import ApiToken, Role
from jobsched_scheduler.access import AccessInterceptor
from jobsched_scheduler.api import JobApi
from jobsched_scheduler.dispatch import Dispatcher
from jobsched_scheduler.events import EventHub
from jobsched_scheduler.limit_api import LimitApi
from jobsched_scheduler.schedule_api import ScheduleApi
from jobsched_scheduler.schedule_store import PgSchedules
from jobsched_scheduler.store import PgStore, new_pool

from tests.integration.serving import refused, served

pytestmark = pytest.mark.timeout(60)
TOKENS = (
    ApiToken("wallboard", Role.READ, "r" * 32),
    ApiToken("ci", Role.OPERATE, "o" * 32),
    ApiToken("ops", Role.ADMIN, "a" * 32),
)
DENIED = grpc.StatusCode.PERMISSION_DENIED
UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED


@dataclass
class Stubs:
    jobs: Any
    limits: Any
    schedules: Any


def as_(secret: str, remote: str = "") -> list[tuple[str, str]]:
    metadata = [("authorization", f"Bearer {secret}")]
    return [*metadata, ("x-jobsched-remote", remote)] if remote else metadata


async def _serve(url: str, tokens: tuple[ApiToken, ...]) -> AsyncIterator[Stubs]:
    pool = new_pool(url, max_size=4)
    await pool.open(wait=True)
    store = PgStore(pool, lease_seconds=10, output_limit=1000)
    api = JobApi(store, Dispatcher(store, check_interval=60), EventHub(url, lambda: None))

    def add(server: grpc.aio.Server) -> None:
        jobs_pb2_grpc.add_JobServiceServicer_to_server(api, server)
        jobs_pb2_grpc.add_LimitServiceServicer_to_server(LimitApi(store), server)
        jobs_pb2_grpc.add_ScheduleServiceServicer_to_server(ScheduleApi(PgSchedules(pool)), server)

    try:
        async with served(add, [AccessInterceptor(tokens)]) as channel:
            yield Stubs(
                jobs_pb2_grpc.JobServiceStub(channel),
                jobs_pb2_grpc.LimitServiceStub(channel),
                jobs_pb2_grpc.ScheduleServiceStub(channel),
            )
    finally:
        await pool.close()


def test_each_method_takes_the_role_it_needs(database_url: str) -> None:
    read, operate, admin = (t.secret for t in TOKENS)

    async def scenario() -> None:
        async for api in _serve(database_url, TOKENS):
            create = pb.CreateJobRequest(name="a", command="true")
            assert (await refused(api.jobs.CreateJob(create)))[0] == UNAUTHENTICATED
            wrong = api.jobs.GetStats(pb.GetStatsRequest(), metadata=as_("x" * 32))
            assert (await refused(wrong))[0] == UNAUTHENTICATED
            assert await refused(api.jobs.CreateJob(create, metadata=as_(read))) == (
                DENIED,
                "token 'wallboard' is read: this needs operate",
            )
            await api.jobs.GetStats(pb.GetStatsRequest(), metadata=as_(read))
            job = await api.jobs.CreateJob(create, metadata=as_(operate))
            config = pb.UpdateConfigRequest(max_concurrent_jobs=4)
            assert (await refused(api.jobs.UpdateConfig(config, metadata=as_(operate))))[
                0
            ] == DENIED
            limit = pb.SetLimitRequest(key="k", max_concurrent_jobs=1)
            assert (await refused(api.limits.SetLimit(limit, metadata=as_(operate))))[0] == DENIED
            audit = api.jobs.ListAudit(pb.ListAuditRequest(), metadata=as_(operate))
            assert (await refused(audit))[0] == DENIED
            await api.jobs.UpdateConfig(config, metadata=as_(admin))
            await api.limits.SetLimit(limit, metadata=as_(admin))
            cancel = pb.CancelJobRequest(id=job.id)
            assert (await refused(api.jobs.CancelJob(cancel, metadata=as_(read))))[0] == DENIED
            await api.jobs.CancelJob(cancel, metadata=as_(operate))
            stream = api.jobs.WatchEvents(pb.WatchEventsRequest())
            with pytest.raises(grpc.aio.AioRpcError) as unauthenticated:
                await stream.read()
            assert unauthenticated.value.code() == UNAUTHENTICATED

    asyncio.run(scenario())


def test_every_write_is_recorded_with_its_caller(database_url: str) -> None:
    _, operate, admin = (t.secret for t in TOKENS)
    ci, ops = as_(operate, "203.0.113.7"), as_(admin, "198.51.100.2")

    async def scenario() -> None:
        async for api in _serve(database_url, TOKENS):
            job = await api.jobs.CreateJob(
                pb.CreateJobRequest(name="one", command="echo hi", delay_seconds=3600),
                metadata=ci,
            )
            bulk = pb.CreateJobsRequest(
                jobs=[pb.CreateJobRequest(name=f"b{i}", command="true") for i in range(3)]
            )
            made = (await api.jobs.CreateJobs(bulk, metadata=ci)).jobs
            await api.jobs.CancelJob(pb.CancelJobRequest(id=job.id), metadata=ci)
            await api.jobs.RetryJob(pb.RetryJobRequest(id=job.id), metadata=ci)
            await api.jobs.UpdateConfig(pb.UpdateConfigRequest(max_concurrent_jobs=5), metadata=ops)
            await api.limits.SetLimit(
                pb.SetLimitRequest(key="k", max_concurrent_jobs=2), metadata=ops
            )
            await api.limits.SetLimit(
                pb.SetLimitRequest(key="k", max_concurrent_jobs=2, paused=True), metadata=ops
            )
            await api.limits.DeleteLimit(pb.LimitRef(key="k"), metadata=ops)
            schedule = pb.Schedule(name="hourly", command="true", every_seconds=3600)
            await api.schedules.CreateSchedule(
                pb.CreateScheduleRequest(schedule=schedule), metadata=ops
            )
            schedule.command = "date"
            await api.schedules.UpdateSchedule(
                pb.UpdateScheduleRequest(schedule=schedule), metadata=ops
            )
            ref = pb.ScheduleRef(name="hourly")
            await api.schedules.PauseSchedule(ref, metadata=ops)
            await api.schedules.ResumeSchedule(ref, metadata=ops)
            triggered = await api.schedules.TriggerSchedule(ref, metadata=ci)
            await api.schedules.DeleteSchedule(ref, metadata=ops)
            reply = await api.jobs.ListAudit(pb.ListAuditRequest(), metadata=ops)
            seen = [(e.actor, e.action, e.target, e.remote) for e in reversed(reply.entries)]
            ci_at, ops_at = ("ci", "203.0.113.7"), ("ops", "198.51.100.2")

            def row(who: tuple[str, str], action: str, target: str) -> tuple[str, ...]:
                return (who[0], action, target, who[1])

            assert seen == [
                row(ci_at, "job.create", f"job/{job.id}"),
                row(ci_at, "jobs.create", f"jobs/{made[0].id}-{made[-1].id}"),
                row(ci_at, "job.cancel", f"job/{job.id}"),
                row(ci_at, "job.retry", f"job/{job.id}"),
                row(ops_at, "config.update", "config"),
                row(ops_at, "limit.set", "limit/k"),
                row(ops_at, "limit.pause", "limit/k"),
                row(ops_at, "limit.delete", "limit/k"),
                row(ops_at, "schedule.create", "schedule/hourly"),
                row(ops_at, "schedule.update", "schedule/hourly"),
                row(ops_at, "schedule.pause", "schedule/hourly"),
                row(ops_at, "schedule.resume", "schedule/hourly"),
                row(ci_at, "schedule.trigger", "schedule/hourly"),
                row(ops_at, "schedule.delete", "schedule/hourly"),
            ]
            entries = {e.action: e for e in reply.entries}
            assert json.loads(entries["job.create"].after) == {"name": "one", "command": "echo hi"}
            assert not entries["job.create"].before
            assert json.loads(entries["jobs.create"].after) == {
                "count": 3,
                "first_id": made[0].id,
                "last_id": made[-1].id,
            }
            assert json.loads(entries["job.cancel"].before) == {"status": "scheduled"}
            assert json.loads(entries["job.cancel"].after) == {"status": "cancelled"}
            assert json.loads(entries["job.retry"].after) == {"status": "queued"}
            assert json.loads(entries["config.update"].before) == {"max_concurrent_jobs": 2}
            assert json.loads(entries["config.update"].after) == {"max_concurrent_jobs": 5}
            update = entries["schedule.update"]
            assert json.loads(update.before)["command"] == "true"
            assert json.loads(update.after)["command"] == "date"
            assert json.loads(entries["schedule.trigger"].after)["job_id"] == triggered.id
            assert not entries["limit.delete"].after
            assert all(e.at.seconds > 0 for e in reply.entries)

    asyncio.run(scenario())


def test_the_audit_log_pages_newest_first(database_url: str) -> None:
    async def scenario() -> None:
        async for api in _serve(database_url, ()):  # tokenless, on loopback: `local`
            for n in range(5):
                await api.jobs.CreateJob(pb.CreateJobRequest(name=f"j{n}", command="true"))
            first = await api.jobs.ListAudit(pb.ListAuditRequest(limit=2))
            ids = [e.id for e in first.entries]
            assert len(ids) == 2 and ids[0] > ids[1] and first.next_before_id == ids[1]
            rest = await api.jobs.ListAudit(pb.ListAuditRequest(before_id=ids[1]))
            assert [e.id for e in rest.entries] == list(range(ids[1] - 1, 0, -1))
            assert rest.next_before_id == 0
            assert {(e.actor, e.remote) for e in first.entries} == {("local", "127.0.0.1")}
            too_many = api.jobs.ListAudit(pb.ListAuditRequest(limit=1001))
            assert (await refused(too_many))[0] == grpc.StatusCode.INVALID_ARGUMENT

    asyncio.run(scenario())


def test_creates_each_alone_answer_and_record_each_job(database_url: str) -> None:
    """CreateJobs with each_alone, as the gateway sends concurrent creates: each job is
    created or refused as its own CreateJob would be, and recorded as its own create."""
    reader, operate, admin = (t.secret for t in TOKENS)
    ci = as_(operate, "203.0.113.7")

    def create(name: str, **fields: Any) -> pb.CreateJobRequest:
        return pb.CreateJobRequest(name=name, command="true", **fields)

    async def scenario() -> None:
        async for api in _serve(database_url, TOKENS):
            first = await api.jobs.CreateJob(create("taken"), metadata=ci)
            asked = [create("a"), create("taken"), create("bad", max_attempts=0), create("b")]
            asked.append(create("b"))
            request = pb.CreateJobsRequest(jobs=asked, each_alone=True)
            reply = await api.jobs.CreateJobs(request, metadata=ci)
            outcomes = [r.WhichOneof("outcome") for r in reply.results]
            assert outcomes == ["job", "refusal", "refusal", "job", "refusal"]
            assert not reply.jobs
            a, taken, bad, b, twice = reply.results
            assert (a.job.name, b.job.name) == ("a", "b")
            assert taken.refusal.code == grpc.StatusCode.ALREADY_EXISTS.value[0]
            assert taken.refusal.message == "job name 'taken' already exists"
            assert bad.refusal.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
            assert bad.refusal.message.startswith("max_attempts:")
            assert twice.refusal.code == grpc.StatusCode.ALREADY_EXISTS.value[0]

            reply = await api.jobs.ListAudit(pb.ListAuditRequest(), metadata=as_(admin))
            seen = [(e.actor, e.action, e.target, e.remote) for e in reply.entries]
            ids = (first.id, a.job.id, b.job.id)
            assert sorted(seen) == sorted(
                ("ci", "job.create", f"job/{i}", "203.0.113.7") for i in ids
            )

            denied = api.jobs.CreateJobs(request, metadata=as_(reader))
            assert (await refused(denied))[0] == DENIED
            empty = api.jobs.CreateJobs(pb.CreateJobsRequest(each_alone=True), metadata=ci)
            assert (await refused(empty))[0] == grpc.StatusCode.INVALID_ARGUMENT

    asyncio.run(scenario())
