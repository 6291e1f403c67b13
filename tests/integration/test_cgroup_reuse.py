"""Job cgroups are kept and given to the next job once empty: real commands in real
cgroup v2 directories, with a reaper that only records what it is told."""

import asyncio
from pathlib import Path

import pytest
from jobsched_runner.attempts import Key
from jobsched_runner.cgroups import CgroupTree
from jobsched_runner.containment import CgroupContainment
from jobsched_runner.execute import Execution, Outcome

pytestmark = pytest.mark.timeout(60)


class ToldReaper:
    pid = 0

    def __init__(self) -> None:
        self.watched: set[str] = set()

    def watch(self, entry: str) -> None:
        self.watched.add(entry)

    def forget(self, entry: str) -> None:
        self.watched.discard(entry)


def containment(keep: int) -> tuple[CgroupContainment, ToldReaper]:
    reaper = ToldReaper()
    return CgroupContainment(CgroupTree.create("reuse-test", 0, 0), reaper, keep), reaper


async def run(cgroups: CgroupContainment, key: Key, command: str) -> tuple[Outcome, Path]:
    boundary = cgroups.open(key)
    execution = Execution(command, None, 1.0, 1 << 20, boundary=boundary)
    outcome = await execution.run(lambda _: None)
    return outcome, boundary.job.path  # type: ignore[attr-defined]


async def released(cgroups: CgroupContainment, key: Key) -> None:
    async with asyncio.timeout(10):
        while key in cgroups.live:
            await asyncio.sleep(0.02)


def cgroup_of_shell(output: str) -> str:
    return next(line[3:] for line in output.splitlines() if line.startswith("0::"))


def test_the_next_job_runs_in_the_emptied_cgroup_of_the_last() -> None:
    async def scenario() -> None:
        cgroups, reaper = containment(keep=4)
        try:
            first, path = await run(cgroups, (1, 1), "cat /proc/self/cgroup")
            await released(cgroups, (1, 1))
            assert cgroups.idle and cgroups.idle[0].path == path
            boundary = cgroups.open((2, 1))
            assert boundary.job.path == path  # type: ignore[attr-defined]
            assert boundary.job.empty()  # type: ignore[attr-defined]
            execution = Execution("cat /proc/self/cgroup", None, 1.0, 1 << 20, boundary=boundary)
            second = await execution.run(lambda _: None)
            assert (first.exit_code, second.exit_code) == (0, 0)
            assert cgroup_of_shell(execution.output.take()).endswith(f"/{path.name}")
            assert reaper.watched == {f"r{cgroups.tree.root}", f"c{path}"}
        finally:
            cgroups.close()
        assert not cgroups.tree.root.exists()

    asyncio.run(scenario())


def test_what_a_job_leaves_behind_is_killed_before_its_cgroup_is_given_again() -> None:
    async def scenario() -> None:
        cgroups, _ = containment(keep=4)
        try:
            # Its own session and a closed pipe: only the cgroup still holds the sleep.
            command = "setsid sleep 30 >/dev/null 2>&1 </dev/null &"
            outcome, path = await run(cgroups, (1, 1), command)
            assert outcome.exit_code == 0
            await released(cgroups, (1, 1))
            assert [job.path for job in cgroups.idle] == [path]
            assert cgroups.idle[0].count() == 0
        finally:
            cgroups.close()

    asyncio.run(scenario())


def test_no_more_cgroups_are_kept_than_asked_and_the_others_are_removed() -> None:
    async def scenario() -> None:
        cgroups, reaper = containment(keep=1)
        try:
            boundaries = [cgroups.open((n, 1)) for n in (1, 2, 3)]
            paths = [b.job.path for b in boundaries]  # type: ignore[attr-defined]
            assert len(set(paths)) == 3
            for boundary in boundaries:
                boundary.release()
            assert [job.path for job in cgroups.idle] == [paths[0]]
            assert [p.exists() for p in paths] == [True, False, False]
            assert reaper.watched == {f"r{cgroups.tree.root}", f"c{paths[0]}"}
        finally:
            cgroups.close()

    asyncio.run(scenario())
