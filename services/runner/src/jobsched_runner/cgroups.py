"""A cgroup v2 per job: every process the job starts stays in it, however it leaves its
process group, and `cgroup.kill` ends them all at once."""

import contextlib
import os
import re
import shlex
from dataclasses import dataclass
from itertools import count
from pathlib import Path

# Controllers that bound a whole job, where the hierarchy offers them to the runner.
BOUNDING_CONTROLLERS = ("pids", "memory")


def cgroup2_dir(
    mountinfo: str = "/proc/self/mountinfo", own: str = "/proc/self/cgroup"
) -> Path | None:
    """The directory of this process's cgroup in the v2 hierarchy, wherever that is
    mounted (/sys/fs/cgroup, or /sys/fs/cgroup/unified beside v1 controllers)."""
    mount = _cgroup2_mount(Path(mountinfo).read_text())
    path = _own_cgroup2_path(Path(own).read_text())
    if mount is None or path is None:
        return None
    mount_root, mount_point = mount
    if mount_root != "/":
        if not (path == mount_root or path.startswith(mount_root + "/")):
            return None  # our cgroup is outside what is mounted: not ours to use
        path = path[len(mount_root) :]
    return Path(mount_point) / path.lstrip("/")


def _cgroup2_mount(mountinfo: str) -> tuple[str, str] | None:
    for line in mountinfo.splitlines():
        before, _, after = line.partition(" - ")
        if after.split(" ", 1)[0] == "cgroup2":
            fields = before.split()
            return _unescape(fields[3]), _unescape(fields[4])
    return None


def _own_cgroup2_path(cgroups: str) -> str | None:
    for line in cgroups.splitlines():
        if line.startswith("0::"):
            return line[3:].removesuffix(" (deleted)")
    return None


def _unescape(field: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


@dataclass
class CgroupJob:
    """A job's cgroup. Before anything else the job's shell moves itself in, or,
    run as another user who may not, waits until the runner has moved it: nothing it
    forks can start outside."""

    path: Path
    shown_as: str  # the path as /proc/PID/cgroup shows it
    # A move takes a lock that every fork on the machine waits for: done by the job's
    # own shell, it costs the runner's event loop nothing.
    moves_itself: bool = True

    def script_prefix(self) -> str:
        if self.moves_itself:
            procs = shlex.quote(str(self.path / "cgroup.procs"))
            return (
                f"{{ echo $$ >{procs}; }} 2>/dev/null || "
                "{ echo 'jobsched: the job could not enter its cgroup' >&2; exit 126; }\n"
            )
        cgroup = shlex.quote(self.shown_as)
        return (
            "while :; do _jobsched_cg=; while IFS= read -r _jobsched_l; do "
            "case $_jobsched_l in 0::*) _jobsched_cg=${_jobsched_l#0::};; esac; "
            f'done </proc/self/cgroup; [ "$_jobsched_cg" = {cgroup} ] && break; done; '
            "unset _jobsched_cg _jobsched_l\n"
        )

    def enter(self, pid: int) -> None:
        if not self.moves_itself:
            (self.path / "cgroup.procs").write_text(str(pid))

    def kill(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            if not self.empty():
                (self.path / "cgroup.kill").write_text("1")

    def empty(self) -> bool:
        """No process is left in it (the kernel's count: one that has exited is out).
        Read twice a job: a bare read costs half of a Python file's."""
        fd = os.open(self.path / "cgroup.events", os.O_RDONLY)
        try:
            return b"populated 0" in os.read(fd, 4096)
        finally:
            os.close(fd)

    def count(self) -> int:
        try:
            return len((self.path / "cgroup.procs").read_bytes().split())
        except FileNotFoundError:
            return 0

    def remove(self) -> bool:
        try:
            self.path.rmdir()
        except FileNotFoundError:
            pass
        except OSError:
            return False  # a killed process is still on its way out
        return True


class CgroupTree:
    """The runner's own cgroup of jobs, a child cgroup for each job running."""

    def __init__(self, root: Path, shown_as: str, memory_bytes: int, max_processes: int):
        self.root = root
        self.shown_as = shown_as
        self.memory_bytes = memory_bytes
        self.max_processes = max_processes
        self.controllers = _enable_controllers(root)
        self._serial = count()

    @classmethod
    def create(cls, name: str, memory_bytes: int, max_processes: int) -> "CgroupTree":
        """Makes the runner's cgroup of jobs; OSError if it cannot (no cgroup v2, not
        delegated to us, read-only, or a kernel without cgroup.kill)."""
        own = cgroup2_dir()
        if own is None:
            raise OSError("no cgroup v2 hierarchy holds this process")
        shown = _own_cgroup2_path(Path("/proc/self/cgroup").read_text()) or "/"
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:64]
        leaf = f"jobsched-{safe}-{os.getpid()}"
        root = own / leaf
        root.mkdir()
        if not (root / "cgroup.kill").exists():
            root.rmdir()
            raise OSError(f"{own} has no cgroup.kill (a kernel older than 5.14)")
        return cls(root, f"{shown.rstrip('/')}/{leaf}", memory_bytes, max_processes)

    def describe(self) -> str:
        bounds = ", ".join(self.controllers) or "none of pids, memory"
        return f"a cgroup v2 per job under {self.root} (controllers: {bounds})"

    def make(self, moves_itself: bool = True) -> CgroupJob:
        """A new, empty cgroup for jobs, with the bounds every job gets."""
        leaf = f"job-{next(self._serial)}"
        job = CgroupJob(self.root / leaf, f"{self.shown_as}/{leaf}", moves_itself)
        job.path.mkdir()
        # One more than the census allows: it sees the job cross its limit and kills it,
        # while the kernel keeps a fork bomb from going any further.
        if "pids" in self.controllers and self.max_processes:
            (job.path / "pids.max").write_text(str(self.max_processes + 1))
        if "memory" in self.controllers and self.memory_bytes:
            (job.path / "memory.max").write_text(str(self.memory_bytes))
        return job

    def remove(self) -> None:
        with contextlib.suppress(OSError):
            self.root.rmdir()


def _enable_controllers(root: Path) -> list[str]:
    """Turns on what bounds a job in the runner's cgroup of jobs, where the parent has
    it (on a hybrid hierarchy, pids and memory are often held by v1 instead)."""
    parent = root.parent
    offered = (parent / "cgroup.controllers").read_text().split()
    enabled = []
    for name in BOUNDING_CONTROLLERS:
        if name not in offered:
            continue
        try:
            if name not in (parent / "cgroup.subtree_control").read_text().split():
                (parent / "cgroup.subtree_control").write_text(f"+{name}")
            (root / "cgroup.subtree_control").write_text(f"+{name}")
        except OSError:
            continue  # the parent holds processes, or is not ours to change
        enabled.append(name)
    return enabled
