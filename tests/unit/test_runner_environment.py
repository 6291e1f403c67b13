"""A job's environment: the few names it gets, what is passed through, and the names of
secrets refused even when an operator lists them."""

import pytest
from jobsched_runner.environment import DEFAULT_PATH, job_environment, secret_names
from pydantic import ValidationError

from tests.unit.runner_fakes import settings

RUNNER_ENV = {
    "PATH": "/opt/venv/bin:/usr/bin",
    "HOME": "/root",
    "LANG": "C.UTF-8",
    "DATABASE_URL": "postgresql://postgres:secret@db/jobs",
    "DB_PASSWORD": "hunter2",
    "RUNNER_TOKEN": "runner-secret",
    "API_TOKEN": "api-secret",
    "TLS_KEY_FILE": "/certs/runner-key.pem",
    "SCHEDULER_ADDR": "scheduler:50051",
    "GREETING": "hello",
}


def test_a_job_gets_the_base_names_and_nothing_else() -> None:
    env = job_environment([], RUNNER_ENV)
    assert env == {b"PATH": b"/opt/venv/bin:/usr/bin", b"HOME": b"/root", b"LANG": b"C.UTF-8"}


def test_passed_through_names_come_along_when_set() -> None:
    env = job_environment(["GREETING", "UNSET_NAME", "PATH"], RUNNER_ENV)
    assert env[b"GREETING"] == b"hello"
    assert b"UNSET_NAME" not in env


def test_a_job_always_has_a_path_and_a_job_user_its_own_home() -> None:
    env = job_environment([], {}, home="/home/jobs")
    assert env == {b"PATH": DEFAULT_PATH.encode(), b"HOME": b"/home/jobs"}


@pytest.mark.parametrize(
    "name",
    [
        "DATABASE_URL",
        "READONLY_DATABASE_URL",
        "DB_PASSWORD",
        "DB_HOST",
        "PGPASSWORD",
        "RUNNER_TOKEN",
        "API_TOKENS_FILE",
        "github_token",
        "AWS_SECRET_ACCESS_KEY",
        "SMTP_PASSWORD",
        "TLS_KEY_FILE",
        "TLS_CA_FILE",
        "SSH_KEY_FILE",
    ],
)
def test_names_of_secrets_are_refused(name: str) -> None:
    assert secret_names([name]) == [name]
    with pytest.raises(ValueError, match=name):
        job_environment([name], RUNNER_ENV)
    with pytest.raises(ValidationError, match=f"names secrets a job must never see: {name}"):
        settings(JOB_ENV_PASSTHROUGH=f"GREETING, {name}")


@pytest.mark.parametrize("name", ["GREETING", "HTTP_PROXY", "LC_ALL", "KEYBOARD", "DBUS_ADDR"])
def test_ordinary_names_pass(name: str) -> None:
    assert secret_names([name]) == []
    assert settings(JOB_ENV_PASSTHROUGH=f" {name} ,").job_env_passthrough == [name]
