"""How the runner finds its cgroup v2 (hybrid or unified hierarchies, namespaces), and
how the subreaper's sweep tells what each attempt owns from /proc alone."""

from pathlib import Path

from jobsched_runner.cgroups import CgroupJob, cgroup2_dir
from jobsched_runner.orphans import STALE, Proc, owners

HYBRID = """\
25 30 0:22 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
26 25 0:23 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw,nsdelegate
27 25 0:24 / /sys/fs/cgroup/memory rw,nosuid - cgroup cgroup rw,memory
"""
UNIFIED = "35 30 0:30 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw\n"
BIND_MOUNTED = "35 30 0:30 /system.slice/run.service /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n"
V1_ONLY = "27 25 0:24 / /sys/fs/cgroup/memory rw,nosuid - cgroup cgroup rw,memory\n"


def find(tmp_path: Path, mountinfo: str, cgroup: str) -> Path | None:
    (tmp_path / "mountinfo").write_text(mountinfo)
    (tmp_path / "cgroup").write_text(cgroup)
    return cgroup2_dir(str(tmp_path / "mountinfo"), str(tmp_path / "cgroup"))


def test_a_hybrid_hierarchy_is_found_beside_the_v1_controllers(tmp_path: Path) -> None:
    cgroup = "4:memory:/jobs\n1:name=systemd:/\n0::/\n"
    assert find(tmp_path, HYBRID, cgroup) == Path("/sys/fs/cgroup/unified")


def test_a_unified_hierarchy_gives_the_process_its_own_cgroup(tmp_path: Path) -> None:
    found = find(tmp_path, UNIFIED, "0::/system.slice/jobsched-runner.service\n")
    assert found == Path("/sys/fs/cgroup/system.slice/jobsched-runner.service")


def test_a_mount_of_a_subtree_is_followed_and_what_is_outside_it_refused(tmp_path: Path) -> None:
    inside = find(tmp_path, BIND_MOUNTED, "0::/system.slice/run.service/runner\n")
    assert inside == Path("/sys/fs/cgroup/runner")
    assert find(tmp_path, BIND_MOUNTED, "0::/user.slice\n") is None


def test_no_cgroup_v2_means_none(tmp_path: Path) -> None:
    assert find(tmp_path, V1_ONLY, "4:memory:/\n") is None
    assert find(tmp_path, UNIFIED, "4:memory:/\n") is None


def test_the_job_shell_moves_itself_in_or_waits_to_be_moved() -> None:
    path = Path("/sys/fs/cgroup/x/job-1-1-0")
    moving = CgroupJob(path, "/x/job-1-1-0").script_prefix()
    assert moving.startswith("{ echo $$ >/sys/fs/cgroup/x/job-1-1-0/cgroup.procs; }")
    assert "exit 126" in moving
    waiting = CgroupJob(path, "/x/job-1-1-0", moves_itself=False).script_prefix()
    assert "</proc/self/cgroup" in waiting and "= /x/job-1-1-0 ] && break" in waiting
    assert waiting.endswith("unset _jobsched_cg _jobsched_l\n")


def proc(ppid: int, pgid: int) -> Proc:
    return Proc(ppid, pgid, b"S", 0)


def test_each_process_belongs_to_its_group_or_to_the_orphan_it_descends_from() -> None:
    runner = 100
    procs = {
        runner: proc(1, runner),
        200: proc(runner, 200),  # job A's shell, its group leader
        201: proc(200, 200),  # in A's group
        202: proc(200, 202),  # setsid child of A's shell
        203: proc(202, 202),  # its child
        300: proc(runner, 300),  # a double-forked orphan of job A, adopted
        301: proc(300, 301),  # its child, in yet another session
        400: proc(runner, 400),  # an orphan of an attempt that ended
        401: proc(400, 200),  # it joined A's group: the group decides
        500: proc(1, 500),  # nobody's
    }
    a = (7, 1)
    found = owners(procs, roots={200: a, 300: a, 400: STALE}, groups={200: a})
    of_a = {pid for pid, owner in found.items() if owner == a}
    assert of_a == {200, 201, 202, 203, 300, 301, 401}
    assert {pid for pid, owner in found.items() if owner == STALE} == {400}
    assert runner not in found and 500 not in found
