"""Partial partitions: a runner that loses one of two schedulers moves to the other; a
scheduler that loses PostgreSQL leaves the work to the other. Whatever was running or
queued ends exactly once, checked from the commands' own logs."""

from __future__ import annotations

from pathlib import Path

import pytest
from jobsched_launcher import wait_for

from tests.checker import History, logged_command

from .bed import RUNNERS, HostSystem
from .witness import Life, lives, overlaps, witnessed

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


def everything_on_scheduler_a(hosts: HostSystem) -> None:
    """Runners try the schedulers in the order given: all of them start on the first."""
    wait_for(lambda: hosts.runners_connected("scheduler-a") == len(RUNNERS), 20, "runners on a")


def start_victim(hosts: HostSystem, witness: Path, limit: int, seconds: int) -> int:
    """With every runner on scheduler a and the limit set, a job that runs `seconds`
    and logs its lives in `witness`, once it has started."""
    everything_on_scheduler_a(hosts)
    hosts.api("PUT", "/api/config", {"max_concurrent_jobs": limit})
    victim = hosts.create("victim", witnessed(witness, "victim", seconds), max_attempts=2)
    wait_for(lambda: lives(witness, "victim"), 15, "the job to start")
    return victim


def queue_work(hosts: HostSystem, log: Path, count: int) -> list[str]:
    """Jobs that may be retried once: one given to a runner that never got it (its
    stream was already dead) ends "not acknowledged" and runs on its second attempt."""
    tags = [f"w{i}" for i in range(count)]
    for tag in tags:
        hosts.create(tag, logged_command(log, tag, "sleep 0.5"), max_attempts=2)
    return tags


def assert_all_once(hosts: HostSystem, log: Path, tags: list[str], total: int, limit: int) -> None:
    try:
        wait_for(lambda: hosts.statuses().get("completed") == total, 40, f"all {total} completed")
    except TimeoutError:
        query = "SELECT a.job_id, a.attempt, a.runner_id, a.reason, j.status FROM job_attempts a"
        rows = hosts.sql(f"{query} JOIN jobs j ON j.id = a.job_id WHERE j.status <> 'completed'")
        raise AssertionError(
            f"not completed (job, attempt, runner, reason, status): {rows}"
        ) from None
    history = History.read(log)
    assert history.duplicate_starts() == [] and history.never_started(tags) == []
    assert history.peak_concurrency() <= limit


def assert_one_end(runs: list[Life]) -> None:
    """Never two at once, and only the last run ran to its end (carried over to the
    other scheduler, a job runs once; killed for its lease, it is retried)."""
    assert overlaps(runs) == [], runs
    assert [r.ended for r in runs] == [False] * (len(runs) - 1) + [True], runs


def test_a_runner_cut_off_from_one_scheduler_moves_to_the_other(
    hosts: HostSystem, tmp_path: Path
) -> None:
    witness, history = tmp_path / "lives.log", tmp_path / "history.log"
    victim = start_victim(hosts, witness, limit=4, seconds=8)
    moved = hosts.runner_of(victim)

    hosts.net.block(moved, "scheduler-a")
    # Scheduler a goes on giving out work meanwhile, with the runner's stream still open.
    tags = queue_work(hosts, history, 12)
    wait_for(
        lambda: f"Runner {moved} connected" in hosts.log_of("scheduler-b"), 30, f"{moved} on b"
    )
    assert_all_once(hosts, history, tags, total=len(tags) + 1, limit=4)
    assert_one_end(lives(witness, "victim"))
    assert hosts.runners_connected("scheduler-a") == len(RUNNERS) - 1
    assert hosts.runners_connected("scheduler-b") == 1


def test_a_scheduler_cut_off_from_postgres_leaves_the_work_to_the_other(
    hosts: HostSystem, tmp_path: Path
) -> None:
    witness, history = tmp_path / "lives.log", tmp_path / "history.log"
    victim = start_victim(hosts, witness, limit=1, seconds=6)
    # Queued behind the limit of 1 when the cut comes.
    tags = queue_work(hosts, history, 8)

    hosts.net.block("scheduler-a", "postgres")
    # The runners leave the scheduler that answers their heartbeats no more, busy or idle:
    # even the victim's, should it have killed its job for the lease before it left.
    wait_for(lambda: hosts.runners_connected("scheduler-b") == len(RUNNERS), 30, "runners on b")
    assert_all_once(hosts, history, tags, total=len(tags) + 1, limit=1)
    assert_one_end(lives(witness, "victim"))
    assert hosts.sql("SELECT status FROM jobs WHERE id = %s", (victim,)) == [("completed",)]
