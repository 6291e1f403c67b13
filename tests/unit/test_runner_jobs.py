"""The runner's jobs alone, with fake commands: fencing of duplicate deliveries, results
kept until acknowledged, kills, the lease and process-count watchdogs, output."""

import asyncio
from collections.abc import Awaitable, Callable

from jobsched.v1 import runner_pb2 as pb
from jobsched_runner.attempts import Key
from jobsched_runner.jobs import LEASE_SAFETY, REAPER_LEASE_SHARE, Jobs

from tests.unit.runner_fakes import (
    FakeLauncher,
    VirtualTime,
    assignment,
    keys_of,
    settings,
)
from tests.unit.waiting import until


class Harness:
    def __init__(self) -> None:
        self.sent: list[pb.RunnerMessage] = []
        self.launcher = FakeLauncher()
        self.time = VirtualTime()
        self.jobs = Jobs(settings(), self.sent.append, launch=self.launcher, clock=self.time)

    def finished(self) -> list[Key]:
        return keys_of(m.finished.ref for m in self.sent if m.HasField("finished"))

    def started(self) -> list[Key]:
        return keys_of(m.started.ref for m in self.sent if m.HasField("started"))


def run(scenario: Callable[[Harness], Awaitable[None]]) -> None:
    async def main() -> None:
        await scenario(Harness())

    asyncio.run(main())


def test_an_attempt_delivered_twice_starts_once() -> None:
    async def scenario(h: Harness) -> None:
        h.jobs.start(assignment((1, 1)))
        h.jobs.start(assignment((1, 1)))  # while it runs
        assert len(h.launcher.launched) == 1
        h.launcher.of((1, 1)).end(0)
        await until(lambda: h.finished() == [(1, 1)], "finished")
        h.jobs.start(assignment((1, 1)))  # finished, not yet acknowledged
        assert len(h.launcher.launched) == 1
        assert h.jobs.running_keys() == []
        # Another attempt of the same job is another start.
        h.jobs.start(assignment((1, 2)))
        assert len(h.launcher.launched) == 2
        assert h.jobs.running_keys() == [(1, 2)]

    run(scenario)


def test_a_finished_result_is_kept_until_acknowledged() -> None:
    async def scenario(h: Harness) -> None:
        h.jobs.start(assignment((3, 2), command="echo hi; exit 4", timeout=9))
        execution = h.launcher.of((3, 2))
        assert (execution.command, execution.timeout) == ("echo hi; exit 4", 9)
        assert execution.env[b"JOBSCHED_JOB_ID"] == b"3"
        execution.output.feed(b"hi\n")
        execution.end(4)
        await until(lambda: h.finished() == [(3, 2)], "finished")
        (result,) = h.jobs.unacked_results()
        assert (result.exit_code, result.reason, result.output_tail) == (4, "", b"hi\n")
        assert h.sent[-1].finished == result
        h.jobs.acked([(3, 1), (4, 2)])  # other attempts: nothing to forget
        assert h.jobs.unacked_results() == [result]
        h.jobs.acked([(3, 2)])
        assert h.jobs.unacked_results() == []

    run(scenario)


def test_a_kill_stops_only_its_attempt() -> None:
    async def scenario(h: Harness) -> None:
        for key in [(1, 1), (2, 1), (1, 2)]:
            h.jobs.start(assignment(key))
        h.jobs.stop([(1, 1), (9, 9)], "cancelled")
        await until(lambda: h.finished() == [(1, 1)], "the killed attempt finished")
        assert h.jobs.unacked[(1, 1)].reason == "cancelled"
        assert sorted(h.jobs.running_keys()) == [(1, 2), (2, 1)]
        assert not h.launcher.of((2, 1)).stopping
        assert not h.launcher.of((1, 2)).stopping

    run(scenario)


def test_a_lease_not_renewed_in_time_kills_the_job_at_once() -> None:
    async def scenario(h: Harness) -> None:
        ttl = 10.0
        h.jobs.set_terms(ttl, 0)
        start = h.time.now
        h.jobs.start(assignment((1, 1)))
        execution = h.launcher.of((1, 1))
        h.time.now = start + ttl * LEASE_SAFETY - 0.01
        h.jobs.kill_unrenewed()
        assert not execution.stopping
        # Renewed as of a heartbeat sent 5 s in; an older answer arriving late changes nothing.
        h.jobs.renewed([(1, 1)], start + 5)
        h.jobs.renewed([(1, 1)], start + 1)
        h.time.now = start + 5 + ttl * LEASE_SAFETY - 0.01
        h.jobs.kill_unrenewed()
        assert not execution.stopping
        h.time.now = start + 5 + ttl * LEASE_SAFETY + 0.01
        h.jobs.kill_unrenewed()
        assert execution.killed  # no grace period
        await until(lambda: h.finished() == [(1, 1)], "finished")
        assert h.jobs.unacked[(1, 1)].reason == "lease lost"

    run(scenario)


def test_a_job_with_too_many_processes_is_killed() -> None:
    async def scenario(h: Harness) -> None:
        limit = h.jobs.settings.JOB_MAX_PROCESSES
        for pgid, key in enumerate([(1, 1), (2, 1)], start=100):
            h.jobs.start(assignment(key))
            h.launcher.of(key).pgid = pgid
        h.jobs.kill_crowded({100: limit, 101: limit + 1})
        assert not h.launcher.of((1, 1)).stopping
        assert h.launcher.of((2, 1)).killed
        assert h.launcher.of((2, 1)).stop_reason == f"too many processes (over {limit})"

    run(scenario)


def test_a_start_is_reported_only_for_a_job_still_running_a_moment_later() -> None:
    async def scenario(h: Harness) -> None:
        h.jobs.start(assignment((1, 1)))
        h.jobs.start(assignment((2, 1)))
        h.launcher.of((1, 1)).end(0)
        await until(lambda: h.started() == [(2, 1)], "started reported")
        assert h.finished() == [(1, 1)]

    run(scenario)


def test_output_goes_out_in_chunks_and_the_rest_with_the_result() -> None:
    async def scenario(h: Harness) -> None:
        h.jobs.start(assignment((1, 1)))
        h.jobs.start(assignment((2, 1)))
        h.launcher.of((2, 1)).output.feed("héllo ".encode())
        (chunk,) = h.jobs.take_output()
        assert (chunk.ref.job_id, chunk.data) == (2, "héllo ".encode())
        assert h.jobs.take_output() == []
        h.launcher.of((2, 1)).output.feed(b"world")
        h.launcher.of((2, 1)).end(0)
        await until(lambda: h.finished() == [(2, 1)], "finished")
        assert h.jobs.unacked[(2, 1)].output_tail == b"world"

    run(scenario)


def test_a_crash_of_the_executor_is_reported_as_a_failure() -> None:
    async def scenario(h: Harness) -> None:
        h.launcher.crash = RuntimeError("boom")
        h.jobs.start(assignment((1, 1)))
        await until(lambda: h.finished() == [(1, 1)], "finished")
        result = h.jobs.unacked[(1, 1)]
        assert (result.exit_code, result.reason) == (1, "runner error: boom")
        assert h.jobs.running_keys() == []

    run(scenario)


class ReaperTimes:
    """The reaper as the jobs tell it when to kill them."""

    def __init__(self) -> None:
        self.times: list[float | None] = []

    def watch(self, entry: str) -> None:
        pass

    def forget(self, entry: str) -> None:
        pass

    def kill_at(self, deadline: float | None) -> None:
        self.times.append(deadline)


def test_the_reaper_is_told_to_kill_the_jobs_a_share_of_a_lease_after_the_last_renewal() -> None:
    async def scenario(h: Harness) -> None:
        reaper = ReaperTimes()
        h.jobs = Jobs(settings(), h.sent.append, reaper, launch=h.launcher, clock=h.time)
        ttl, start = 10.0, h.time.now
        h.jobs.set_terms(ttl, 0)
        assert LEASE_SAFETY < REAPER_LEASE_SHARE < 1  # after the runner would, before the end
        h.jobs.tell_reaper()
        assert reaper.times == []  # nothing runs
        h.jobs.start(assignment((1, 1)))
        assert reaper.times == [start + ttl * REAPER_LEASE_SHARE]  # the first job: at once
        h.time.now = start + 1
        h.jobs.start(assignment((2, 1)))
        h.jobs.tell_reaper()
        assert reaper.times[-1] == start + 1 + ttl * REAPER_LEASE_SHARE
        h.jobs.renewed([(1, 1), (2, 1)], start + 4)
        h.jobs.tell_reaper()
        assert reaper.times[-1] == start + 4 + ttl * REAPER_LEASE_SHARE
        told = len(reaper.times)
        h.jobs.renewed([(1, 1), (2, 1)], start + 4.05)
        h.jobs.tell_reaper()
        assert len(reaper.times) == told  # moved too little to write
        for key in [(1, 1), (2, 1)]:
            h.launcher.of(key).end(0)
        await until(lambda: sorted(h.finished()) == [(1, 1), (2, 1)], "finished")
        h.jobs.tell_reaper()
        assert reaper.times[-1] is None

    run(scenario)
