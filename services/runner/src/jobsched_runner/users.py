"""The unprivileged user jobs run as when the runner runs as root (`JOB_USER`)."""

import os
import pwd
from dataclasses import dataclass


@dataclass(frozen=True)
class JobUser:
    name: str
    uid: int
    gid: int
    groups: tuple[int, ...]  # supplementary, as initgroups would set them
    home: str


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
    groups = tuple(os.getgrouplist(name, entry.pw_gid))
    return JobUser(name, entry.pw_uid, entry.pw_gid, groups, entry.pw_dir)
