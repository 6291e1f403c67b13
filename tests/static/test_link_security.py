"""Compose and Kubernetes run the runner link over TLS with runner tokens by default:
the scheduler has its certificate and the runner tokens, runners and the gateway the CA
(and runners their token), nothing listens in plaintext off loopback but health, and
only the scheduler can read its key."""

from pathlib import Path
from typing import Any

import pytest
from jobsched_common.tls import TlsFiles, is_loopback_bind, server_credentials
from jobsched_runner.settings import Settings as RunnerSettings
from jobsched_scheduler.runner_auth import parse_tokens

from tests.static.manifests import Doc, built_docs, env_value, pod_specs_of
from tests.static.test_deploy import as_list, compose_services

SCHEDULER = "Deployment/scheduler"
RUNNER = "Deployment/runner"
GATEWAY = "Deployment/gateway"


def _mounted_dir(mounts: list[str], path: str) -> str | None:
    """The volume (compose `name:/dir[:ro]`) whose directory holds `path`."""
    for mount in mounts:
        volume, target = mount.split(":")[:2]
        if path.startswith(target.rstrip("/") + "/"):
            return volume
    return None


def test_compose_scheduler_serves_tls_and_knows_the_runner_token() -> None:
    scheduler = compose_services()["scheduler"]
    env = scheduler["environment"]
    assert not is_loopback_bind(env["SCHEDULER_BIND"])
    mounts = as_list(scheduler.get("volumes"))
    for name in ("TLS_CERT_FILE", "TLS_KEY_FILE"):
        assert _mounted_dir(mounts, env[name]) == "tls-private", (name, env[name])
    assert str(env["RUNNER_TOKENS"]) == "runner:${RUNNER_TOKEN:?RUNNER_TOKEN not set}"
    # Its health-only plaintext port stays on loopback, where its healthcheck is.
    assert is_loopback_bind(env["SCHEDULER_HEALTH_BIND"])
    port = env["SCHEDULER_HEALTH_BIND"].rsplit(":", 1)[1]
    assert as_list(scheduler["healthcheck"]["test"])[-1] == f"127.0.0.1:{port}"
    assert scheduler["depends_on"]["certs"]["condition"] == "service_completed_successfully"


@pytest.mark.parametrize("name", ["runner", "gateway"])
def test_compose_clients_check_the_scheduler_against_the_ca(name: str) -> None:
    service = compose_services()[name]
    env = service["environment"]
    mounts = as_list(service.get("volumes"))
    assert _mounted_dir(mounts, env["TLS_CA_FILE"]) == "tls-public"
    assert all(mount.endswith(":ro") for mount in mounts), mounts
    assert "tls-private" not in {mount.split(":")[0] for mount in mounts}
    assert "TLS_KEY_FILE" not in env and "RUNNER_TOKENS" not in env
    if name == "runner":
        assert str(env["RUNNER_TOKEN"]).startswith("${RUNNER_TOKEN:?")
        # The token's name in the scheduler's list is the runner's name.
        assert env["RUNNER_NAME"] == "runner"


def test_compose_certs_step_names_the_host_the_clients_dial() -> None:
    services = compose_services()
    command = as_list(services["certs"]["command"])
    assert command[:3] == ["jobsched-scheduler", "certs", "/tls"]
    hosts = command[command.index("--hosts") + 1].split(",")
    assert command[command.index("--public") + 1] == "/tls-public"
    for name in ("runner", "gateway"):
        host = services[name]["environment"]["SCHEDULER_ADDR"].rsplit(":", 1)[0]
        assert host in hosts, (name, host, hosts)
    volumes = {mount.split(":")[0] for mount in as_list(services["certs"]["volumes"])}
    assert volumes == {"tls-private", "tls-public"}


def _pod(docs: list[Doc], workload: str) -> tuple[Doc, Doc]:
    spec = pod_specs_of(docs)[workload]
    return spec, spec["containers"][0]


def _secret_of(spec: Doc, container: Doc, path: str) -> str | None:
    """The Secret whose volume the container mounts over `path`."""
    for mount in container.get("volumeMounts", []):
        if path.startswith(mount["mountPath"].rstrip("/") + "/"):
            volume = next(v for v in spec["volumes"] if v["name"] == mount["name"])
            secret: str | None = volume.get("secret", {}).get("secretName")
            return secret
    return None


def _secret_ref(container: Doc, name: str) -> Any:
    entry = next(e for e in container["env"] if e["name"] == name)
    return entry.get("valueFrom", {}).get("secretKeyRef", {}).get("name")


@pytest.mark.parametrize("build", ["base", "external-postgres"])
def test_k8s_runs_the_runner_link_over_tls_with_tokens(build: str) -> None:
    docs = built_docs(build)
    spec, scheduler = _pod(docs, SCHEDULER)
    assert not is_loopback_bind(env_value(scheduler, "SCHEDULER_BIND") or "")
    for name in ("TLS_CERT_FILE", "TLS_KEY_FILE"):
        assert _secret_of(spec, scheduler, env_value(scheduler, name) or "") == "scheduler-tls"
    assert _secret_ref(scheduler, "RUNNER_TOKENS") == "runner-tokens"
    for workload in (RUNNER, GATEWAY):
        client_spec, client = _pod(docs, workload)
        ca = env_value(client, "TLS_CA_FILE") or ""
        assert _secret_of(client_spec, client, ca) == "scheduler-ca", workload
        secrets = {v.get("secret", {}).get("secretName") for v in client_spec["volumes"]}
        assert "scheduler-tls" not in secrets, workload
    _, runner = _pod(docs, RUNNER)
    assert _secret_ref(runner, "RUNNER_TOKEN") == "runner-token"
    assert env_value(runner, "RUNNER_NAME") == "runner"
    assert env_value(runner, "RUNNER_ID") is None  # runner/<pod name>, from RUNNER_NAME


def test_k8s_secrets_ship_placeholders_that_the_services_refuse(tmp_path: Path) -> None:
    secrets = {
        doc["metadata"]["name"]: doc for doc in built_docs("base") if doc["kind"] == "Secret"
    }
    assert secrets["runner-tokens"]["stringData"] == {"RUNNER_TOKENS": "runner:CHANGE-ME"}
    assert secrets["runner-token"]["stringData"] == {"RUNNER_TOKEN": "CHANGE-ME"}
    assert set(secrets["scheduler-tls"]["stringData"]) == {"scheduler.pem", "scheduler-key.pem"}
    assert set(secrets["scheduler-ca"]["stringData"]) == {"ca.pem"}
    with pytest.raises(ValueError, match="placeholder"):
        parse_tokens(secrets["runner-tokens"]["stringData"]["RUNNER_TOKENS"], "RUNNER_TOKENS")
    with pytest.raises(ValueError, match="placeholder"):
        RunnerSettings(RUNNER_TOKEN=secrets["runner-token"]["stringData"]["RUNNER_TOKEN"])
    for name, text in secrets["scheduler-tls"]["stringData"].items():
        (tmp_path / name).write_text(text)
    files = TlsFiles(str(tmp_path / "scheduler.pem"), str(tmp_path / "scheduler-key.pem"))
    with pytest.raises(ValueError, match="no PEM"):
        server_credentials(files)
