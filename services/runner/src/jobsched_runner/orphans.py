"""Containment without a cgroup: the runner, parent of every job's shell, is a child
subreaper, so what a job leaves behind (a double fork, a daemon) becomes the runner's
child instead of init's. Each such orphan is known by its job's marks in its
environment; one whose attempt has ended, or that carries no marks, is killed."""

import ctypes
import os
import signal
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from .attempts import Key

PR_SET_CHILD_SUBREAPER = 36
STALE: Key = (-1, -1)  # the owner of what must go


def become_child_subreaper() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"prctl(PR_SET_CHILD_SUBREAPER): {os.strerror(errno)}")


class Proc(NamedTuple):
    ppid: int
    pgid: int
    state: bytes
    start: int


def read_processes() -> dict[int, Proc]:
    """Every process's parent, group, state and start time, from /proc."""
    procs: dict[int, Proc] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        procs[int(entry.name)] = Proc(int(fields[1]), int(fields[2]), fields[0], int(fields[19]))
    return procs


def job_marks(pid: int) -> Key | None:
    """The attempt named in a process's environment, as the runner started it."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as environ:
            names = dict(v.partition(b"=")[::2] for v in environ.read().split(b"\0") if v)
        return int(names[b"JOBSCHED_JOB_ID"]), int(names[b"JOBSCHED_ATTEMPT"])
    except (OSError, KeyError, ValueError):
        return None


@dataclass
class Sweep:
    counts: dict[int, int] = field(default_factory=dict)  # processes per job's pgid
    # (pid, start time, attempt) of each process outside its job's group
    escaped: list[tuple[int, int, Key]] = field(default_factory=list)
    killed: int = 0
    adopted: int = 0


def owners(
    procs: Mapping[int, Proc], roots: Mapping[int, Key], groups: Mapping[int, Key]
) -> dict[int, Key]:
    """The attempt each process belongs to: that of the job's process group it is in,
    or else that of its nearest ancestor that is a root (an adopted orphan)."""
    found: dict[int, Key] = {}
    for pid in procs:
        chain = []
        cur: int | None = pid
        owner: Key | None = None
        while cur is not None and cur in procs:
            if cur in found:
                owner = found[cur]
                break
            if procs[cur].pgid in groups:
                owner = groups[procs[cur].pgid]
                break
            if cur in roots:
                owner = roots[cur]
                break
            chain.append(cur)
            parent = procs[cur].ppid
            cur = parent if parent not in chain else None
        if owner is not None:
            for member in chain:
                found[member] = owner
            found[pid] = owner
    return found


@dataclass
class OrphanSweeper:
    """Finds what each running attempt has, kills what belongs to none. The attempts
    are read live (`live`: the pid of each open attempt's shell, 0 until it started;
    `spared`: the runner's other children), since a job may start while /proc is read."""

    live: Mapping[Key, int]
    spared: Callable[[], set[int]]
    _marks: dict[tuple[int, int], Key | None] = field(default_factory=dict)
    _zombies: set[int] = field(default_factory=set)

    def sweep(self) -> Sweep:
        me = os.getpid()
        procs = read_processes()
        spared = self.spared()
        shells = {pid: key for key, pid in list(self.live.items()) if pid}
        roots: dict[int, Key] = dict(shells)
        result = Sweep()
        for pid, proc in procs.items():
            if proc.ppid == me and pid not in shells and pid not in spared:
                roots[pid] = self._adopted_owner(pid, proc)
                result.adopted += 1
        self._reap_zombies(procs, me, shells, spared)
        for pid, owner in owners(procs, roots, shells).items():
            proc = procs[pid]
            if owner == STALE:
                if proc.state != b"Z":
                    _kill(pid)
                    result.killed += 1
                continue
            pgid = self.live.get(owner, 0)
            result.counts[pgid] = result.counts.get(pgid, 0) + 1
            if proc.pgid != pgid:
                result.escaped.append((pid, proc.start, owner))
        self._marks = {k: v for k, v in self._marks.items() if k[0] in procs}
        return result

    def _adopted_owner(self, pid: int, proc: Proc) -> Key:
        marks_key = (pid, proc.start)
        if marks_key not in self._marks:
            self._marks[marks_key] = job_marks(pid)
        owner = self._marks[marks_key]
        return owner if owner is not None and owner in self.live else STALE

    def _reap_zombies(
        self, procs: Mapping[int, Proc], me: int, shells: Mapping[int, Key], spared: set[int]
    ) -> None:
        """Reaps adopted orphans that died. A zombie is reaped on its second sighting, so
        that a job's shell that ended before the runner noted its pid is never taken
        from the waiter its exit code belongs to."""
        zombies = {
            pid
            for pid, proc in procs.items()
            if proc.ppid == me and proc.state == b"Z" and pid not in shells and pid not in spared
        }
        for pid in zombies & self._zombies:
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
        self._zombies = zombies


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
