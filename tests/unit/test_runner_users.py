"""`JOB_USER`: which users are refused, and how a job's command takes the user's ids."""

import pytest
from jobsched_runner.users import JobUser, resolve_job_user


def test_no_job_user_means_the_runners_own() -> None:
    assert resolve_job_user("") is None


@pytest.mark.parametrize(
    ("name", "why"), [("root", "is root"), ("no-such-user-here", "no such user")]
)
def test_root_and_unknown_users_are_refused(name: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        resolve_job_user(name)


def test_the_shell_runs_under_setpriv_with_the_users_ids_and_groups() -> None:
    user = JobUser("jobs", 1001, 1002, (1002, 27), "/home/jobs", "/usr/bin/setpriv")
    assert user.command(["/bin/sh", "-c", "id"]) == [
        "/usr/bin/setpriv",
        "--reuid=1001",
        "--regid=1002",
        "--groups=1002,27",
        "--",
        "/bin/sh",
        "-c",
        "id",
    ]
    alone = JobUser("jobs", 1001, 1002, (), "/home/jobs", "/usr/bin/setpriv")
    assert "--clear-groups" in alone.command(["/bin/sh"])
