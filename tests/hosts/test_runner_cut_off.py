"""A runner whose link goes down in the middle of a job: it kills its copy before the
lease runs out, the job is retried on another runner and never runs twice at once, and
once the link is back the runner rejoins and nothing runs again."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from jobsched_launcher import wait_for

from .bed import HostSystem
from .witness import lives, overlaps, witnessed

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


def lease_end(system: HostSystem, job_id: int) -> float:
    query = "SELECT extract(epoch FROM lease_expires_at) FROM jobs WHERE id = %s"
    rows = system.sql(query, (job_id,))
    return float(rows[0][0])


def test_a_runner_cut_off_from_everything_loses_its_job_to_another_and_rejoins(
    hosts: HostSystem, tmp_path: Path
) -> None:
    log = tmp_path / "lives.log"
    job_id = hosts.create("victim", witnessed(log, "victim", 6), max_attempts=2)
    wait_for(lambda: lives(log, "victim"), 15, "the job to start")
    lost = hosts.runner_of(job_id)

    hosts.net.cut(lost)
    time.sleep(1)  # a heartbeat already on its way lands now, or never
    lease = lease_end(hosts, job_id)
    wait_for(lambda: len(lives(log, "victim")) == 2, 40, "the job to be retried")
    first, retry = lives(log, "victim")
    assert not first.ended, "the cut runner's copy ran to its end"
    assert first.last_seen < lease, f"killed {first.last_seen - lease:.1f} s after its lease"
    assert overlaps([first, retry]) == []
    assert hosts.runner_of(job_id) != lost

    connected_before = hosts.log_of(lost).count("Connected to scheduler")
    hosts.net.heal(lost)
    assert hosts.wait_for_job_sql(job_id, timeout=30) == "completed"
    wait_for(
        lambda: (
            hosts.log_of(lost).count("Connected to scheduler") > connected_before
            and hosts.runners_connected() == 3
        ),
        30,
        f"{lost} to rejoin",
    )
    attempts = hosts.sql(
        "SELECT attempt, runner_id, exit_code FROM job_attempts WHERE job_id = %s ORDER BY 1",
        (job_id,),
    )
    assert [(a, r == lost) for a, r, _ in attempts] == [(1, True), (2, False)], attempts
    assert attempts[1][2] == 0
    # Nothing ran again after the runner came back.
    runs = lives(log, "victim")
    assert len(runs) == 2 and [r.ended for r in runs] == [False, True], runs
