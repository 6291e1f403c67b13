"""Time and order on the whole system as real processes: priorities under a full limit,
delayed jobs, dependencies and their cascade, and pause, driven over gRPC (the REST
faces have their own tests) and checked against what the commands themselves log."""

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from jobsched.v1 import jobs_pb2 as pb
from jobsched.v1 import jobs_pb2_grpc
from jobsched_common.timestamps import from_timestamp
from jobsched_launcher import wait_for

from tests.checker import History, logged_command
from tests.conftest import LiveSystem

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

FINISHED = {"completed", "failed", "cancelled"}


@pytest.fixture
def jobs(live_system: LiveSystem) -> Iterator[jobs_pb2_grpc.JobServiceStub]:
    with grpc.insecure_channel(live_system.scheduler_addr) as channel:
        yield jobs_pb2_grpc.JobServiceStub(channel)


def test_the_highest_priority_takes_the_next_free_slot(
    live_system: LiveSystem, jobs: jobs_pb2_grpc.JobServiceStub, tmp_path: Path
) -> None:
    log = tmp_path / "history.log"
    jobs.UpdateConfig(pb.UpdateConfigRequest(max_concurrent_jobs=1), timeout=5)
    blocker = jobs.CreateJob(
        pb.CreateJobRequest(name="blocker", command=logged_command(log, "blocker", "sleep 1")),
        timeout=5,
    )
    live_system.wait_for_job(blocker.id, {"running"})
    priorities = {"p0": 0, "p10-a": 10, "minus5": -5, "p10-b": 10, "p50": 50}
    created = [
        jobs.CreateJob(
            pb.CreateJobRequest(
                name=tag, command=logged_command(log, tag, "true"), priority=priority
            ),
            timeout=5,
        )
        for tag, priority in priorities.items()
    ]
    for job in created:
        assert live_system.wait_for_job(job.id, FINISHED, timeout=30)["status"] == "completed"
    history = History.read(log)
    order = sorted(history.starts, key=lambda tag: history.starts[tag][0])
    assert order == ["blocker", "p50", "p10-a", "p10-b", "p0", "minus5"]
    assert history.peak_concurrency() == 1


def test_a_delayed_job_is_scheduled_then_starts_within_a_second_of_its_time(
    live_system: LiveSystem, jobs: jobs_pb2_grpc.JobServiceStub, tmp_path: Path
) -> None:
    log = tmp_path / "history.log"
    job = jobs.CreateJob(
        pb.CreateJobRequest(
            name="later", command=logged_command(log, "later", "true"), delay_seconds=2
        ),
        timeout=5,
    )
    assert job.status == pb.JOB_STATUS_SCHEDULED and job.HasField("run_at")
    stats = jobs.GetStats(pb.GetStatsRequest(), timeout=5)
    assert stats.scheduled == 1 and stats.queued == 0
    run_at = from_timestamp(job.run_at).timestamp()
    assert live_system.wait_for_job(job.id, FINISHED, timeout=10)["status"] == "completed"
    started = History.read(log).starts["later"][0]
    assert 0 <= started - run_at <= 1.0, started - run_at


def test_a_chain_of_three_runs_in_order_and_a_failure_cancels_its_dependents(
    live_system: LiveSystem, jobs: jobs_pb2_grpc.JobServiceStub, tmp_path: Path
) -> None:
    log = tmp_path / "history.log"
    jobs.UpdateConfig(pb.UpdateConfigRequest(max_concurrent_jobs=4), timeout=5)

    def create(tag: str, body: str, *after: int) -> pb.Job:
        request = pb.CreateJobRequest(
            name=tag, command=logged_command(log, tag, body), depends_on=after
        )
        return jobs.CreateJob(request, timeout=5)

    first = create("first", "sleep 0.3")
    second = create("second", "sleep 0.3", first.id)
    third = create("third", "true", second.id)
    broken = create("broken", "exit 1")
    child = create("child", "true", broken.id)
    grandchild = create("grandchild", "true", child.id, first.id)
    for job in (first, second, third):
        assert live_system.wait_for_job(job.id, FINISHED, timeout=20)["status"] == "completed"
    history = History.read(log)
    assert history.starts["second"][0] >= history.ends["first"][0]
    assert history.starts["third"][0] >= history.ends["second"][0]

    assert live_system.wait_for_job(broken.id, FINISHED)["status"] == "failed"
    for job, reason in (
        (child, f"dependency {broken.id} failed"),
        (grandchild, f"dependency {child.id} cancelled"),
    ):
        seen = live_system.wait_for_job(job.id, FINISHED, timeout=5)
        assert (seen["status"], seen["reason"]) == ("cancelled", reason)
    assert History.read(log).never_started(["child", "grandchild"]) == ["child", "grandchild"]
    with pytest.raises(grpc.RpcError) as refused:
        jobs.RetryJob(pb.RetryJobRequest(id=child.id), timeout=5)
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "retry that one first" in (refused.value.details() or "")
    with pytest.raises(grpc.RpcError) as missing:
        create("orphan", "true", 999_999)
    assert missing.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert missing.value.details() == "depends_on: job 999999 does not exist"


def test_a_pause_holds_new_starts_and_lets_running_jobs_finish(
    live_system: LiveSystem, jobs: jobs_pb2_grpc.JobServiceStub, tmp_path: Path
) -> None:
    log = tmp_path / "history.log"
    running = jobs.CreateJob(
        pb.CreateJobRequest(name="running", command=logged_command(log, "running", "sleep 1")),
        timeout=5,
    )
    live_system.wait_for_job(running.id, {"running"})
    config = jobs.UpdateConfig(pb.UpdateConfigRequest(paused=True), timeout=5)
    assert config.paused and config.max_concurrent_jobs == 2
    held = jobs.CreateJob(
        pb.CreateJobRequest(name="held", command=logged_command(log, "held", "true")), timeout=5
    )
    # The running job's end frees a slot and wakes dispatch: the held job still waits.
    assert live_system.wait_for_job(running.id, FINISHED)["status"] == "completed"
    wait_for(lambda: "running" in History.read(log).ends, 5, "the running job's end")
    stats = jobs.GetStats(pb.GetStatsRequest(), timeout=5)
    assert stats.paused and stats.queued == 1
    assert jobs.GetJob(pb.GetJobRequest(id=held.id), timeout=5).status == pb.JOB_STATUS_QUEUED
    assert not jobs.UpdateConfig(pb.UpdateConfigRequest(paused=False), timeout=5).paused
    assert live_system.wait_for_job(held.id, FINISHED, timeout=5)["status"] == "completed"
    with pytest.raises(grpc.RpcError) as empty:
        jobs.UpdateConfig(pb.UpdateConfigRequest(), timeout=5)
    assert empty.value.code() == grpc.StatusCode.INVALID_ARGUMENT
