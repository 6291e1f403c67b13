"""The runner's executor on real commands: what a job sees when it starts, and what
comes back from it."""

import asyncio
import os

import pytest
from jobsched_runner.containment import Unenclosable
from jobsched_runner.execute import Execution, Outcome

pytestmark = pytest.mark.timeout(60)


def run(command: str, timeout: float | None = None, **env: str) -> tuple[Outcome, str]:
    async def go() -> tuple[Outcome, str]:
        environment = {**os.environb, **{k.encode(): v.encode() for k, v in env.items()}}
        execution = Execution(command, timeout, 1.0, 1 << 20, env=environment)
        outcome = await execution.run(lambda _: None)
        return outcome, execution.output.take()

    return asyncio.run(go())


def test_stdout_and_stderr_arrive_in_order_and_the_exit_code_comes_back() -> None:
    outcome, output = run("echo out; echo err >&2; exit 3")
    assert (outcome.exit_code, outcome.reason) == (3, "")
    assert output == "out\nerr\n"


def test_a_job_leads_its_own_session_and_reads_nothing() -> None:
    # Field 6 of /proc/PID/stat is the session: the shell started it.
    outcome, output = run('cut -d" " -f6 /proc/$$/stat; echo $$; read x; echo "read $?"')
    session, pid, read = output.splitlines()
    assert session == pid and read == "read 1"  # stdin is /dev/null: end of file at once
    assert outcome.exit_code == 0


def test_a_job_gets_default_signal_handling_and_its_environment() -> None:
    # SIGPIPE at its default ends `yes` quietly; ignored, as Python leaves it, `yes`
    # would complain of a broken pipe.
    outcome, output = run('yes | head -n 1; echo "$GREETING"', GREETING="hello")
    assert output == "y\nhello\n"
    assert outcome.exit_code == 0


def test_a_missing_command_and_a_killed_one_are_told_apart() -> None:
    missing, output = run("/no/such/command")
    assert missing.exit_code == 127 and "not found" in output
    killed, _ = run("kill -9 $$")
    assert (killed.exit_code, killed.reason) == (137, "killed by signal 9")


def test_a_job_past_its_timeout_is_stopped_with_its_children() -> None:
    outcome, _ = run("sleep 30 & sleep 30", timeout=0.2)
    assert outcome.reason == "timed out"
    assert (outcome.finished_at - outcome.started_at).total_seconds() < 10


def test_a_job_whose_boundary_cannot_be_made_never_runs_its_command() -> None:
    async def go() -> tuple[Outcome, str]:
        boundary = Unenclosable(OSError("no room for a cgroup"))
        execution = Execution("echo ran", None, 1.0, 1 << 20, boundary=boundary)
        outcome = await execution.run(lambda _: None)
        return outcome, execution.output.take()

    outcome, output = asyncio.run(go())
    assert outcome.reason == "could not contain the job: no room for a cgroup"
    assert output == ""
