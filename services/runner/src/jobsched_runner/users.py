"""The unprivileged user jobs run as when the runner runs as root (`JOB_USER`).

The runner cannot change ids in a child of its own: posix_spawn has no such step, and a
fork of the runner (which subprocess needs to change ids) runs gRPC's fork handlers in a
process full of threads, which can crash the child. So the child execs util-linux's
`setpriv`, which takes the user's ids and groups and then execs the shell."""

import os
import pwd
import shutil
from dataclasses import dataclass


@dataclass(frozen=True)
class JobUser:
    name: str
    uid: int
    gid: int
    groups: tuple[int, ...]  # supplementary, as initgroups would set them
    home: str
    setpriv: str

    def command(self, argv: list[str]) -> list[str]:
        """`argv`, run as this user."""
        groups = f"--groups={','.join(map(str, self.groups))}" if self.groups else "--clear-groups"
        return [self.setpriv, f"--reuid={self.uid}", f"--regid={self.gid}", groups, "--", *argv]


def resolve_job_user(name: str) -> JobUser | None:
    """The user named by `JOB_USER`, or None for jobs as the runner's own user.
    ValueError if it cannot be used."""
    if not name:
        return None
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        raise ValueError(f"JOB_USER {name!r}: no such user") from None
    if entry.pw_uid == 0:
        raise ValueError(f"JOB_USER {name!r} is root: name an unprivileged user")
    if os.geteuid() != 0:
        raise ValueError(f"JOB_USER {name!r} needs the runner to run as root")
    setpriv = shutil.which("setpriv", path="/usr/bin:/bin:/usr/sbin:/sbin")
    if setpriv is None:
        raise ValueError("JOB_USER needs setpriv (util-linux) in /usr/bin or /bin")
    groups = tuple(os.getgrouplist(name, entry.pw_gid))
    return JobUser(name, entry.pw_uid, entry.pw_gid, groups, entry.pw_dir, setpriv)
