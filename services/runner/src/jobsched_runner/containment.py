"""What ends every process of a job with its attempt, chosen at start: a cgroup v2 per
job where the runner can make one, else the runner as child subreaper. Both tell the
reaper what to kill should the runner die, and both count a job's processes."""

import asyncio
import contextlib
import logging
import os
import signal
from typing import Protocol

from .attempts import Key
from .cgroups import CgroupJob, CgroupTree
from .orphans import OrphanSweeper, become_child_subreaper
from .settings import Settings

log = logging.getLogger(__name__)

REMOVE_RETRY_SECONDS = 0.1
REMOVE_TRIES = 50


class Watchdog(Protocol):
    """The reaper, as the containment tells it what to kill if the runner dies."""

    @property
    def pid(self) -> int: ...

    def watch(self, entry: str) -> None: ...

    def forget(self, entry: str) -> None: ...


class Boundary(Protocol):
    """One attempt's share of the containment."""

    def script_prefix(self) -> str: ...

    def enter(self, pid: int) -> None: ...

    def kill(self) -> None: ...

    def release(self) -> None: ...


class Containment(Protocol):
    def describe(self) -> str: ...

    def open(self, key: Key) -> Boundary: ...

    def wants_census(self) -> bool: ...

    async def census(self) -> dict[int, int]: ...

    def close(self) -> None: ...


class Unenclosable:
    """A boundary that could not be made: the job's shell exits before the command, and
    the attempt fails with the reason."""

    def __init__(self, error: OSError):
        self.error = error

    def script_prefix(self) -> str:
        return "exit 126\n"

    def enter(self, pid: int) -> None:
        raise self.error

    def kill(self) -> None:
        pass

    def release(self) -> None:
        pass


class CgroupBoundary:
    def __init__(self, job: CgroupJob, owner: "CgroupContainment", key: Key):
        self.job = job
        self.pid = 0
        self._owner = owner
        self._key = key

    def script_prefix(self) -> str:
        return self.job.script_prefix()

    def enter(self, pid: int) -> None:
        self.pid = pid
        self.job.enter(pid)

    def kill(self) -> None:
        self.job.kill()

    def release(self) -> None:
        self._owner.release(self._key, self)


class CgroupContainment:
    """A cgroup for each job running. An emptied one is kept for the next job, up to
    `keep` of them: making and removing a cgroup for every job cost the machine about
    0.085 ms of CPU a job more (docs/performance.md, "The front door, fourth pass")."""

    def __init__(
        self,
        tree: CgroupTree,
        reaper: Watchdog,
        keep: int,
        jobs_move_themselves: bool = True,
    ):
        self.tree = tree
        self.reaper = reaper
        self.keep = keep
        # A job run as another user may not write to the runner's cgroups.
        self.jobs_move_themselves = jobs_move_themselves
        self.live: dict[Key, CgroupBoundary] = {}
        self.idle: list[CgroupJob] = []  # empty, each watched by the reaper as it was
        reaper.watch(f"r{tree.root}")

    def describe(self) -> str:
        return self.tree.describe()

    def open(self, key: Key) -> Boundary:
        job = self.idle.pop() if self.idle else self._make()
        boundary = CgroupBoundary(job, self, key)
        self.live[key] = boundary
        return boundary

    def _make(self) -> CgroupJob:
        job = self.tree.make(self.jobs_move_themselves)
        self.reaper.watch(f"c{job.path}")
        return job

    def release(self, key: Key, boundary: CgroupBoundary, tries: int = REMOVE_TRIES) -> None:
        """The job has ended and been killed: once its cgroup is empty, it is kept for the
        next job or removed. Whatever is still in it is killed again before each further
        try; after the last, it is left behind, never given to another job."""
        job = boundary.job
        try:
            emptied = job.empty()
        except FileNotFoundError:  # removed from outside: nothing to wait for or keep
            emptied, tries = False, 1
        if not emptied and tries > 1:
            job.kill()
            loop = asyncio.get_running_loop()
            loop.call_later(REMOVE_RETRY_SECONDS, self.release, key, boundary, tries - 1)
            return
        self.live.pop(key, None)
        if emptied and len(self.idle) < self.keep:
            self.idle.append(job)
            return
        job.remove()
        self.reaper.forget(f"c{job.path}")

    def wants_census(self) -> bool:
        return False

    async def census(self) -> dict[int, int]:
        jobs = [(b.pid, b.job) for b in self.live.values() if b.pid]
        return await asyncio.to_thread(lambda: {pid: job.count() for pid, job in jobs})

    def close(self) -> None:
        for job in [*(b.job for b in self.live.values()), *self.idle]:
            job.kill()
            job.remove()
        self.tree.remove()


class GroupBoundary:
    """An attempt known by its process group; what leaves it is the sweeper's."""

    def __init__(self, owner: "SubreaperContainment", key: Key):
        self._owner = owner
        self._key = key
        self.pid = 0

    def script_prefix(self) -> str:
        return ""

    def enter(self, pid: int) -> None:
        self.pid = pid
        self._owner.live[self._key] = pid

    def kill(self) -> None:
        if self.pid:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signal.SIGKILL)

    def release(self) -> None:
        self._owner.live.pop(self._key, None)
        self._owner.swept = False


class SubreaperContainment:
    def __init__(self, reaper: Watchdog, why_not_cgroup: str):
        become_child_subreaper()
        self.reaper = reaper
        self.live: dict[Key, int] = {}  # the shell's pid, 0 until it started
        self.swept = True  # nothing has ended since the last sweep, and nothing is adopted
        self.why_not_cgroup = why_not_cgroup
        self._sweeper = OrphanSweeper(self.live, lambda: {self.reaper.pid})
        self._told: set[str] = set()

    def describe(self) -> str:
        return f"the runner as child subreaper (no cgroup: {self.why_not_cgroup})"

    def open(self, key: Key) -> Boundary:
        self.live[key] = 0
        return GroupBoundary(self, key)

    def wants_census(self) -> bool:
        return not self.swept

    async def census(self) -> dict[int, int]:
        self.swept = True
        sweep = await asyncio.to_thread(self._sweeper.sweep)
        if sweep.adopted:
            self.swept = False  # what was killed is reaped on the next round
        escaped = {f"p{pid}:{start}": (pid, key) for pid, start, key in sweep.escaped}
        for entry in escaped.keys() - self._told:
            pid, key = escaped[entry]
            log.info("Job %d attempt %d: process %d left its group, watched", *key, pid)
            self.reaper.watch(entry)
        for entry in self._told - escaped.keys():
            self.reaper.forget(entry)
        self._told = set(escaped)
        return sweep.counts

    def close(self) -> None:
        """At a stop, after the drain: whatever the runner adopted has no attempt left."""
        self.live.clear()
        self._sweeper.sweep()


def choose_containment(
    settings: Settings, reaper: Watchdog, as_other_user: bool = False
) -> Containment:
    """A cgroup where the runner can make one (unless told otherwise), else a subreaper."""
    mode = settings.JOB_CONTAINMENT
    why_not = "JOB_CONTAINMENT=subreaper"
    if mode != "subreaper":
        try:
            tree = CgroupTree.create(
                settings.RUNNER_ID,
                settings.JOB_MEMORY_LIMIT_MB * 1024 * 1024,
                settings.JOB_MAX_PROCESSES,
            )
            return CgroupContainment(
                tree, reaper, settings.RUNNER_CAPACITY, jobs_move_themselves=not as_other_user
            )
        except OSError as exc:
            if mode == "cgroup":
                raise
            why_not = str(exc)
    return SubreaperContainment(reaper, why_not)
