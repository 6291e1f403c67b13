"""ExplainJob on the whole system as real processes: a job it calls runnable with
position 0 starts within a second, and the situations the claim waits out are named."""

import time
from collections.abc import Iterator

import grpc
import psycopg
import pytest
from jobsched.v1 import jobs_pb2 as pb
from jobsched.v1 import jobs_pb2_grpc
from jobsched_launcher import wait_for

from tests.conftest import LiveSystem

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

STARTED = {pb.JOB_STATUS_RUNNING, pb.JOB_STATUS_COMPLETED}


@pytest.fixture
def jobs(live_system: LiveSystem) -> Iterator[jobs_pb2_grpc.JobServiceStub]:
    with grpc.insecure_channel(live_system.scheduler_addr) as channel:
        yield jobs_pb2_grpc.JobServiceStub(channel)


def _runners_connected(jobs: jobs_pb2_grpc.JobServiceStub) -> None:
    wait_for(lambda: jobs.GetStats(pb.GetStatsRequest()).runners_connected >= 1, 20, "a runner")


def test_a_job_said_runnable_at_position_0_starts_within_a_second(
    live_system: LiveSystem, jobs: jobs_pb2_grpc.JobServiceStub
) -> None:
    _runners_connected(jobs)
    # The claim waits on this lock while held: the job stays queued for the question.
    with psycopg.connect(live_system.env["DATABASE_URL"]) as hold:
        hold.execute("SELECT pg_advisory_xact_lock(hashtext('jobsched.dispatch'))")
        job = jobs.CreateJob(pb.CreateJobRequest(name="next", command="true"))
        answer = jobs.ExplainJob(pb.ExplainJobRequest(id=job.id))
        told_at = time.monotonic()
        hold.rollback()
    assert answer.status == pb.JOB_STATUS_QUEUED, answer
    assert answer.runnable and answer.HasField("position") and answer.position == 0, answer
    assert list(answer.blockers) == []
    wait_for(lambda: jobs.GetJob(pb.GetJobRequest(id=job.id)).status in STARTED, 1, "the start")
    assert time.monotonic() - told_at <= 1.0
    answer = jobs.ExplainJob(pb.ExplainJobRequest(id=job.id))
    assert not answer.runnable and list(answer.blockers) == []
    assert answer.message.startswith(("Running on runner-", "Completed at ")), answer


def test_a_paused_scheduler_and_a_full_limit_are_named(
    live_system: LiveSystem, jobs: jobs_pb2_grpc.JobServiceStub
) -> None:
    _runners_connected(jobs)
    jobs.UpdateConfig(pb.UpdateConfigRequest(max_concurrent_jobs=1))
    holder = jobs.CreateJob(pb.CreateJobRequest(name="holder", command="sleep 30"))
    wait_for(
        lambda: jobs.GetJob(pb.GetJobRequest(id=holder.id)).status == pb.JOB_STATUS_RUNNING,
        20,
        "the holder running",
    )
    waiting = jobs.CreateJob(pb.CreateJobRequest(name="waiting", command="true"))
    answer = jobs.ExplainJob(pb.ExplainJobRequest(id=waiting.id))
    assert [b.kind for b in answer.blockers] == ["global_limit"] and not answer.runnable
    assert list(answer.blockers[0].holders) == [holder.id]
    jobs.UpdateConfig(pb.UpdateConfigRequest(paused=True))
    answer = jobs.ExplainJob(pb.ExplainJobRequest(id=waiting.id))
    assert [b.kind for b in answer.blockers] == ["paused", "global_limit"]
    jobs.CancelJob(pb.CancelJobRequest(id=holder.id))
    jobs.UpdateConfig(pb.UpdateConfigRequest(paused=False))
    wait_for(
        lambda: jobs.GetJob(pb.GetJobRequest(id=waiting.id)).status in STARTED,
        10,
        "the waiting job's start",
    )
