"""A host on the network with no credential, or the wrong one, gets nothing from a
scheduler: it cannot register, report or call JobService. A real runner's credential
does not let it register under another runner's id, nor finish or renew another
runner's attempt: the job goes on and ends as its own runner says."""

from __future__ import annotations

from pathlib import Path

import pytest
from jobsched_launcher import wait_for

from .bed import RUNNERS, HostSystem
from .witness import lives, witnessed

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


def test_a_rogue_host_gets_nothing_and_a_runner_cannot_act_for_another(
    hosts: HostSystem, tmp_path: Path
) -> None:
    # The rogue reaches the scheduler (health stays open): what follows is refusal.
    assert hosts.rogue("health")["status"] == "SERVING"
    log = tmp_path / "lives.log"
    job_id = hosts.create("victim", witnessed(log, "victim", 6))
    wait_for(lambda: lives(log, "victim"), 15, "the job to start")
    owner = hosts.runner_of(job_id)
    attempt = f"{job_id}:1"
    acts = ("--finish", attempt, "--renew", attempt)

    # `--token=` in one word: a generated token may begin with `-`.
    for token in ("", "not-a-runner-token", hosts.token):
        reply = hosts.rogue("runner", f"--token={token}", "--runner-id", owner, *acts)
        assert (reply["code"], reply["heard"]) == ("UNAUTHENTICATED", []), (token, reply)
    for token in ("", "not-an-api-token", hosts.runner_token(owner)):
        reply = hosts.rogue("api", f"--token={token}")
        assert reply == {"list": "UNAUTHENTICATED", "create": "UNAUTHENTICATED"}, (token, reply)

    other = next(r for r in RUNNERS if r != owner)
    token = hosts.runner_token(other)
    posing = hosts.rogue("runner", f"--token={token}", "--runner-id", owner, *acts)
    assert "registered" not in posing["heard"], posing
    reply = hosts.rogue("runner", f"--token={token}", "--runner-id", f"{other}/rogue", *acts)
    assert "registered" in reply["heard"] and reply["renewed"] == [], reply

    assert hosts.wait_for_job_sql(job_id, timeout=30) == "completed"
    [(exit_code, output, runner)] = hosts.sql(
        "SELECT exit_code, output, runner_id FROM job_attempts WHERE job_id = %s", (job_id,)
    )
    assert (exit_code, runner) == (0, owner) and "forged" not in output
    runs = lives(log, "victim")
    assert len(runs) == 1 and runs[0].ended, runs
    assert hosts.sql("SELECT count(*) FROM jobs WHERE name = 'rogue'") == [(0,)]
