"""The services' settings refuse what cannot work: unknown log options and placeholder
secrets, with a message that names the variable."""

from pathlib import Path

import pytest
import yaml
from jobsched_common.settings import is_placeholder
from jobsched_gateway.settings import Settings as GatewaySettings
from jobsched_runner.settings import Settings as RunnerSettings
from jobsched_scheduler.settings import Settings as SchedulerSettings
from pydantic import ValidationError

ROOT = Path(__file__).resolve().parents[2]
ALL = [GatewaySettings, RunnerSettings, SchedulerSettings]
PLACEHOLDERS = ["CHANGE-ME", "changeme", "change_me", "Change Me", "changethis", "password"]


@pytest.mark.parametrize("settings", ALL)
def test_log_level_is_one_of_python_s_in_any_case(
    monkeypatch: pytest.MonkeyPatch, settings: type[GatewaySettings]
) -> None:
    assert settings().LOG_LEVEL == "INFO"
    for given, read in [("debug", "DEBUG"), ("Warning", "WARNING"), ("ERROR", "ERROR")]:
        monkeypatch.setenv("LOG_LEVEL", given)
        assert settings().LOG_LEVEL == read
    monkeypatch.setenv("LOG_LEVEL", "chatty")
    with pytest.raises(ValidationError, match="LOG_LEVEL"):
        settings()


@pytest.mark.parametrize("settings", ALL)
def test_log_format_is_text_or_json(
    monkeypatch: pytest.MonkeyPatch, settings: type[GatewaySettings]
) -> None:
    assert settings().LOG_FORMAT == "text"
    monkeypatch.setenv("LOG_FORMAT", "json")
    assert settings().LOG_FORMAT == "json"
    monkeypatch.setenv("LOG_FORMAT", "xml")
    with pytest.raises(ValidationError, match="LOG_FORMAT"):
        settings()


def test_placeholders_are_told_apart_from_secrets() -> None:
    assert all(is_placeholder(value) for value in [*PLACEHOLDERS, "SECRET", "change-this"])
    for secret in ["", "x" * 32, "changeme2", "my-password-is-long", "postgres", "p@ss"]:
        assert not is_placeholder(secret), secret


@pytest.mark.parametrize("placeholder", PLACEHOLDERS)
def test_the_gateway_refuses_a_placeholder_token(placeholder: str) -> None:
    with pytest.raises(ValidationError, match="API_TOKEN is the placeholder"):
        GatewaySettings(API_TOKEN=placeholder)
    assert GatewaySettings(API_TOKEN="t" * 32).API_TOKEN == "t" * 32
    assert GatewaySettings(API_TOKEN="").API_TOKEN == ""


@pytest.mark.parametrize("placeholder", PLACEHOLDERS)
def test_the_scheduler_refuses_a_placeholder_database_password(
    monkeypatch: pytest.MonkeyPatch, placeholder: str
) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("DB_PASSWORD", placeholder)
    with pytest.raises(ValidationError, match="DB_PASSWORD is the placeholder"):
        SchedulerSettings()


def test_the_scheduler_refuses_a_placeholder_password_in_the_url() -> None:
    for url in [
        "postgresql://jobs:CHANGE-ME@db:5432/jobs",
        "postgresql://jobs:change%2Dme@db/jobs",  # as a client decodes it
        "host=db user=jobs password=changethis dbname=jobs",
    ]:
        with pytest.raises(ValidationError, match="password in DATABASE_URL"):
            SchedulerSettings(DATABASE_URL=url)
    for url in ["postgresql://jobs:s3cr3t-value@db/jobs", "postgresql://db/jobs", "nonsense"]:
        assert SchedulerSettings(DATABASE_URL=url).database_url == url


def test_the_k8s_placeholders_are_refused_where_the_manifests_send_them() -> None:
    """deploy/k8s/base/secrets.yaml ships placeholders: an unedited deployment must not
    start."""
    secrets = {
        doc["metadata"]["name"]: doc["stringData"]
        for doc in yaml.safe_load_all((ROOT / "deploy/k8s/base/secrets.yaml").read_text())
    }
    password = secrets["postgres-credentials"]["DB_PASSWORD"]
    with pytest.raises(ValidationError, match="DB_PASSWORD"):
        SchedulerSettings(DB_PASSWORD=password, DATABASE_URL=None)
    with pytest.raises(ValidationError, match="API_TOKEN"):
        GatewaySettings(API_TOKEN=secrets["gateway-api-token"]["API_TOKEN"])


def test_retention_is_kept_by_status_and_for_the_audit_log(monkeypatch: pytest.MonkeyPatch) -> None:
    assert SchedulerSettings().retention_days == {}
    monkeypatch.setenv("RETENTION_FAILED_DAYS", "30")
    monkeypatch.setenv("RETENTION_AUDIT_DAYS", "0.5")
    assert SchedulerSettings().retention_days == {"failed": 30, "audit": 0.5}
    monkeypatch.setenv("RETENTION_AUDIT_DAYS", "0")
    with pytest.raises(ValidationError, match="RETENTION_AUDIT_DAYS"):
        SchedulerSettings()
