"""Static checks of the Dockerfiles, docker-compose.yml and deploy/k8s.

Nothing here needs a Docker engine or a cluster: the files are built, linted and
validated offline with kubectl, kubernetes-validate, check-jsonschema and hadolint.
"""

import json
import re
import shlex
import tomllib
from pathlib import Path
from typing import cast

import pytest
import yaml

from tests.static.manifests import (
    BASE,
    NAMESPACE,
    REPO,
    Doc,
    built_docs,
    containers_of,
    env_value,
    kustomize,
    pod_specs_of,
    run,
    venv_tool,
)

COMPOSE_FILE = REPO / "docker-compose.yml"
APP_UID = 10001

# Our images, by the last part of their name (`jobsched/<name>`), and the folder under
# services/ that each is built from.
SERVICE_DIRS = {"scheduler": "scheduler", "runner": "runner", "gateway": "api-gateway"}

# The volume types the restricted Pod Security Standard allows.
RESTRICTED_VOLUME_TYPES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}


# ---------------------------------------------------------------- helpers


def load_compose() -> Doc:
    return cast(Doc, yaml.safe_load(COMPOSE_FILE.read_text()))


def console_scripts(project_dir: Path) -> set[str]:
    """The `[project.scripts]` names that a project's pyproject.toml declares."""
    pyproject = project_dir / "pyproject.toml"
    if not pyproject.is_file():
        pytest.fail(f"{pyproject.relative_to(REPO)} is missing: its image cannot be built")
    project = tomllib.loads(pyproject.read_text()).get("project", {})
    scripts = set(project.get("scripts", {}))
    if not scripts:
        pytest.fail(f"{pyproject.relative_to(REPO)} declares no [project.scripts]")
    return scripts


def service_scripts(service: str) -> set[str]:
    return console_scripts(REPO / "services" / SERVICE_DIRS[service])


def dockerfile_path(service: str) -> Path:
    return REPO / "services" / SERVICE_DIRS[service] / "Dockerfile"


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    if not path.is_file():
        pytest.fail(f"{path.relative_to(REPO)} is missing")
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, arguments = (pending + line).partition(" ")
        pending = ""
        instructions.append((keyword.upper(), arguments.strip()))
    return instructions


def final_stage(path: Path) -> list[tuple[str, str]]:
    instructions = dockerfile_instructions(path)
    starts = [i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM"]
    assert starts, f"{path.relative_to(REPO)} has no FROM"
    return instructions[starts[-1] :]


def exec_form(path: Path, keyword: str) -> list[str] | None:
    """The final stage's last ENTRYPOINT or CMD, which must be in exec (JSON) form."""
    values = [arguments for key, arguments in final_stage(path) if key == keyword]
    if not values:
        return None
    try:
        argv = json.loads(values[-1])
    except json.JSONDecodeError:
        argv = None
    if not isinstance(argv, list) or not all(isinstance(arg, str) for arg in argv):
        pytest.fail(f"{path.relative_to(REPO)}: {keyword} must be in exec form, a JSON list")
    return cast(list[str], argv)


def effective_argv(
    service: str, entrypoint: list[str] | None, command: list[str] | None
) -> list[str]:
    """What a container runs: overrides replace the image's ENTRYPOINT and CMD the way
    Docker, compose and Kubernetes (`command`=entrypoint, `args`=cmd) all do."""
    path = dockerfile_path(service)
    image_entrypoint = exec_form(path, "ENTRYPOINT") or []
    image_cmd = exec_form(path, "CMD") or []
    if entrypoint is not None:
        return entrypoint + (command or [])
    return image_entrypoint + (command if command is not None else image_cmd)


def as_argv(value: object) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return shlex.split(value)
    assert isinstance(value, list), f"expected a command list, got {value!r}"
    return [str(arg) for arg in value]


def image_service(image: str) -> str | None:
    """`jobsched/runner:1.2` -> `runner`; None for images that are not ours."""
    match = re.fullmatch(r"(?:[^@]*/)?jobsched/([a-z0-9-]+)(?::[\w.-]+)?(?:@\S+)?", image)
    if match is None:
        return None
    assert match.group(1) in SERVICE_DIRS, f"unknown jobsched image {image}"
    return match.group(1)


def compose_service_of(definition: Doc) -> str | None:
    """The service folder a compose service's image is built from, or None for others."""
    build = definition.get("build")
    if isinstance(build, dict):
        dockerfile = str(build.get("dockerfile", ""))
        for service, folder in SERVICE_DIRS.items():
            if dockerfile == f"services/{folder}/Dockerfile":
                return service
        pytest.fail(f"compose builds an unknown Dockerfile {dockerfile!r}")
    return image_service(str(definition.get("image", "")))


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def k8s_docs() -> list[Doc]:
    return built_docs(BASE)


@pytest.fixture(scope="module")
def pod_specs(k8s_docs: list[Doc]) -> dict[str, Doc]:
    """`Kind/name` -> pod spec, for every workload in the built manifests."""
    return pod_specs_of(k8s_docs)


# ---------------------------------------------------------------- Kubernetes


def test_kustomize_output_validates_strictly(build: str, tmp_path: Path) -> None:
    built = tmp_path / "jobsched.yaml"
    built.write_text(kustomize(build))
    run(venv_tool("kubernetes-validate"), "--strict", "--quiet", built)


def test_every_workload_is_deployed(pod_specs: dict[str, Doc]) -> None:
    expected = {
        "StatefulSet/postgres",
        "Job/migrate",
        "Deployment/scheduler",
        "Deployment/runner",
        "Deployment/gateway",
    }
    assert expected <= set(pod_specs), f"missing: {sorted(expected - set(pod_specs))}"


def test_everything_lives_in_a_restricted_namespace(build: str) -> None:
    k8s_docs = built_docs(build)
    namespaces = [doc for doc in k8s_docs if doc["kind"] == "Namespace"]
    assert [ns["metadata"]["name"] for ns in namespaces] == [NAMESPACE]
    labels = namespaces[0]["metadata"].get("labels", {})
    assert labels.get("pod-security.kubernetes.io/enforce") == "restricted"
    elsewhere = [
        f"{doc['kind']}/{doc['metadata']['name']}"
        for doc in k8s_docs
        if doc["kind"] != "Namespace" and doc["metadata"].get("namespace") != NAMESPACE
    ]
    assert not elsewhere, f"not in namespace {NAMESPACE}: {elsewhere}"


def restricted_profile_problems(name: str, spec: Doc) -> list[str]:
    """What in one pod spec breaks the restricted profile or our own hardening rules."""
    problems: list[str] = []

    def check(ok: bool, what: str) -> None:
        if not ok:
            problems.append(f"{name}: {what}")

    check(spec.get("automountServiceAccountToken") is False, "automountServiceAccountToken")
    for host_namespace in ("hostNetwork", "hostPID", "hostIPC"):
        check(not spec.get(host_namespace), host_namespace)
    pod_context = spec.get("securityContext", {})
    check(pod_context.get("runAsNonRoot") is True, "pod runAsNonRoot")
    check(pod_context.get("runAsUser") == APP_UID, f"pod runAsUser {APP_UID}")
    check(
        pod_context.get("seccompProfile", {}).get("type") == "RuntimeDefault",
        "pod seccompProfile RuntimeDefault",
    )
    volumes = {volume["name"]: volume for volume in spec.get("volumes", [])}
    for volume_name, volume in volumes.items():
        kinds = set(volume) - {"name"}
        check(kinds <= RESTRICTED_VOLUME_TYPES, f"volume {volume_name} of type {kinds}")

    for container in containers_of(spec):
        where = f"container {container['name']}"
        context = container.get("securityContext", {})
        capabilities = context.get("capabilities", {})
        check(context.get("allowPrivilegeEscalation") is False, f"{where} allowPrivilegeEscalation")
        check(context.get("readOnlyRootFilesystem") is True, f"{where} readOnlyRootFilesystem")
        check(capabilities.get("drop") == ["ALL"], f"{where} capabilities drop ALL")
        check(not capabilities.get("add"), f"{where} adds capabilities")
        check(not context.get("privileged"), f"{where} privileged")
        check(context.get("runAsNonRoot") is not False, f"{where} runAsNonRoot false")
        check(context.get("runAsUser", APP_UID) == APP_UID, f"{where} runAsUser")
        seccomp = context.get("seccompProfile", {}).get("type", "RuntimeDefault")
        check(seccomp in {"RuntimeDefault", "Localhost"}, f"{where} seccompProfile {seccomp}")
        resources = container.get("resources", {})
        for bound in ("requests", "limits"):
            for resource in ("cpu", "memory"):
                check(resource in resources.get(bound, {}), f"{where} {bound}.{resource}")
        # Python, its tempfile module and shell jobs need a writable /tmp.
        tmp_mounts = [m for m in container.get("volumeMounts", []) if m["mountPath"] == "/tmp"]
        check(
            len(tmp_mounts) == 1 and "emptyDir" in volumes.get(tmp_mounts[0]["name"], {}),
            f"{where} emptyDir at /tmp",
        )
    return problems


def test_every_pod_meets_the_restricted_profile(build: str) -> None:
    pod_specs = pod_specs_of(built_docs(build))
    assert pod_specs, "no workloads in the built manifests"
    problems = [
        problem
        for name, spec in pod_specs.items()
        for problem in restricted_profile_problems(name, spec)
    ]
    assert not problems, "\n".join(problems)


def only_container(pod_specs: dict[str, Doc], name: str) -> Doc:
    containers = pod_specs[name]["containers"]
    assert len(containers) == 1, f"{name} has {len(containers)} containers"
    return cast(Doc, containers[0])


# The scheduler's probes go to its plaintext health-only port: the kubelet's gRPC probe
# speaks no TLS, and the API's port speaks nothing else.
@pytest.mark.parametrize(
    ("workload", "port"), [("Deployment/scheduler", 50052), ("Deployment/runner", 50061)]
)
def test_grpc_services_have_native_grpc_probes(
    pod_specs: dict[str, Doc], workload: str, port: int
) -> None:
    container = only_container(pod_specs, workload)
    for probe in ("livenessProbe", "readinessProbe"):
        assert container.get(probe, {}).get("grpc", {}).get("port") == port, (workload, probe)


def test_gateway_probes_healthz(pod_specs: dict[str, Doc]) -> None:
    container = only_container(pod_specs, "Deployment/gateway")
    for probe in ("livenessProbe", "readinessProbe"):
        assert container.get(probe, {}).get("httpGet", {}).get("path") == "/healthz", probe


def test_scheduler_service_names_its_grpc_port(k8s_docs: list[Doc]) -> None:
    services = {doc["metadata"]["name"]: doc for doc in k8s_docs if doc["kind"] == "Service"}
    ports = services["scheduler"]["spec"]["ports"]
    assert {"name": "grpc", "port": 50051} in [
        {"name": port.get("name"), "port": port["port"]} for port in ports
    ]


def test_clients_find_the_scheduler_by_service_name(pod_specs: dict[str, Doc]) -> None:
    for workload in ("Deployment/runner", "Deployment/gateway"):
        container = only_container(pod_specs, workload)
        assert env_value(container, "SCHEDULER_ADDR") == "scheduler:50051", workload


def test_runners_get_to_drain_before_they_are_killed(pod_specs: dict[str, Doc]) -> None:
    spec = pod_specs["Deployment/runner"]
    container = only_container(pod_specs, "Deployment/runner")
    drain = float(env_value(container, "RUNNER_DRAIN_SECONDS") or 30)
    assert spec.get("terminationGracePeriodSeconds", 30) > drain


# ---------------------------------------------------------------- compose


def test_compose_file_matches_the_compose_spec() -> None:
    run(venv_tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", COMPOSE_FILE)


def compose_services() -> dict[str, Doc]:
    return cast(dict[str, Doc], load_compose()["services"])


def as_list(value: object) -> list[str]:
    """A compose field that may be a string or a list of strings."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    assert isinstance(value, list), f"expected a list, got {value!r}"
    return [str(item) for item in value]


# What the official postgres image's entrypoint needs, as root, before it drops to the
# postgres user with gosu: chown and chmod of the data and socket directories, reading the
# 0700 data directory, and the switch of user and group.
POSTGRES_ENTRYPOINT_CAPABILITIES = {"CHOWN", "DAC_OVERRIDE", "FOWNER", "SETGID", "SETUID"}


def compose_hardening_problems(name: str, svc: Doc) -> list[str]:
    problems: list[str] = []

    def check(ok: bool, what: str) -> None:
        if not ok:
            problems.append(f"{name}: {what}")

    check(svc.get("read_only") is True, "read_only")
    check(as_list(svc.get("cap_drop")) == ["ALL"], "cap_drop [ALL]")
    no_new_privileges = {"no-new-privileges:true", "no-new-privileges=true", "no-new-privileges"}
    check(
        bool(no_new_privileges & set(as_list(svc.get("security_opt")))),
        "security_opt no-new-privileges",
    )
    check("/tmp" in as_list(svc.get("tmpfs")), "tmpfs /tmp")
    check(not svc.get("privileged"), "privileged")
    for mode in ("network_mode", "pid", "ipc"):
        check(svc.get(mode) != "host", f"{mode}: host")
    user = str(svc.get("user", "")).split(":")[0]
    added = set(as_list(svc.get("cap_add")))
    if compose_service_of(svc) is not None:
        check(user == str(APP_UID), f"user {APP_UID}")
        check(not added, f"cap_add {sorted(added)}")
    elif user in {"", "0", "root"}:
        # Only the postgres image may start as root, to hand its directories to its own
        # user and drop to it; and then with no more than it needs for that.
        check(name == "postgres", "runs as root")
        check(
            added <= POSTGRES_ENTRYPOINT_CAPABILITIES,
            f"cap_add {sorted(added - POSTGRES_ENTRYPOINT_CAPABILITIES)} beyond the entrypoint's",
        )
    else:
        check(not added, f"cap_add {sorted(added)} for non-root user {user}")
    return problems


def test_compose_services_are_hardened() -> None:
    services = compose_services()
    assert set(services) == {"postgres", "certs", "migrate", "scheduler", "runner", "gateway"}
    ours = {name for name, svc in services.items() if compose_service_of(svc)}
    assert ours == {"certs", "migrate", "scheduler", "runner", "gateway"}
    problems = [
        problem
        for name, svc in services.items()
        for problem in compose_hardening_problems(name, svc)
    ]
    assert not problems, "\n".join(problems)


def test_compose_postgres_writes_only_to_its_volume_and_tmpfs() -> None:
    postgres = compose_services()["postgres"]
    assert postgres["image"].startswith("postgres:"), postgres["image"]
    # The image's PGDATA; the socket directory is where the server writes its lock file.
    assert "pgdata:/var/lib/postgresql/data" in as_list(postgres.get("volumes"))
    assert "PGDATA" not in postgres.get("environment", {})
    assert "pgdata" in (load_compose().get("volumes") or {}), "pgdata is not a named volume"
    assert "/var/run/postgresql" in as_list(postgres.get("tmpfs"))


def test_compose_long_running_services_have_healthchecks() -> None:
    services = compose_services()
    one_shots = {name for name, svc in services.items() if svc.get("restart") == "no"}
    assert one_shots == {"certs", "migrate"}
    for name, svc in services.items():
        if name in one_shots:
            continue
        healthcheck = svc.get("healthcheck") or {}
        test = as_list(healthcheck.get("test"))
        assert not healthcheck.get("disable") and test and test[0] != "NONE", name
    # Whatever waits for a service waits for what that service can report.
    for name, svc in services.items():
        for dependency, condition in (svc.get("depends_on") or {}).items():
            expected = (
                "service_completed_successfully" if dependency in one_shots else "service_healthy"
            )
            assert condition["condition"] == expected, f"{name} -> {dependency}"


def test_postgres_counts_as_ready_only_over_tcp(pod_specs: dict[str, Doc]) -> None:
    """While the entrypoint initialises a database, a temporary server listens on the
    socket only; readiness must wait for the real one."""
    compose_test = " ".join(as_list(compose_services()["postgres"]["healthcheck"]["test"]))
    k8s_probe = pod_specs["StatefulSet/postgres"]["containers"][0]["readinessProbe"]
    k8s_test = " ".join(k8s_probe["exec"]["command"])
    for test in (compose_test, k8s_test):
        assert "pg_isready -h 127.0.0.1 " in test, test


def test_compose_start_order_and_exposure() -> None:
    services = compose_services()
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert (
        services["scheduler"]["depends_on"]["migrate"]["condition"]
        == "service_completed_successfully"
    )
    for name in ("runner", "gateway"):
        assert services[name]["depends_on"]["scheduler"]["condition"] == "service_healthy"
    published = [str(port) for port in services["gateway"].get("ports", [])]
    assert published and all(port.startswith("127.0.0.1:") for port in published), published
    unpublished = {name for name in services if name != "gateway"}
    assert not [name for name in unpublished if services[name].get("ports")]


def test_compose_runners_scale() -> None:
    """`docker compose up --scale runner=N` needs nothing that two containers can't share."""
    runner = compose_services()["runner"]
    for key in ("container_name", "hostname", "ports"):
        assert key not in runner, f"runner sets {key}: it would not scale"
    assert "RUNNER_ID" not in runner.get("environment", {}), "every runner needs its own id"


def test_compose_secrets_must_be_supplied() -> None:
    services = compose_services()
    secrets = {
        ("postgres", "POSTGRES_PASSWORD"): "DB_PASSWORD",
        ("migrate", "DB_PASSWORD"): "DB_PASSWORD",
        ("scheduler", "DB_PASSWORD"): "DB_PASSWORD",
        ("gateway", "API_TOKEN"): "API_TOKEN",
        ("runner", "RUNNER_TOKEN"): "RUNNER_TOKEN",
    }
    for (service, key), variable in secrets.items():
        value = str(services[service]["environment"][key])
        assert value.startswith(f"${{{variable}:?"), f"{service} {key} = {value!r}"


# ---------------------------------------------------------------- Dockerfiles


@pytest.mark.parametrize("service", sorted(SERVICE_DIRS))
def test_dockerfile_passes_hadolint(service: str) -> None:
    run(venv_tool("hadolint"), "--no-color", dockerfile_path(service))


@pytest.mark.parametrize("service", sorted(SERVICE_DIRS))
def test_dockerfile_runs_unprivileged_from_python_slim(service: str) -> None:
    path = dockerfile_path(service)
    stage = final_stage(path)
    assert stage[0] == ("FROM", "python:3.11-slim"), stage[0]
    users = [arguments for keyword, arguments in stage if keyword == "USER"]
    assert users and users[-1] == str(APP_UID), f"{path.relative_to(REPO)}: USER {users}"
    environment = " ".join(arguments for keyword, arguments in stage if keyword == "ENV")
    assert "PYTHONUNBUFFERED=1" in environment


def dockerignore_patterns() -> set[str]:
    path = REPO / ".dockerignore"
    assert path.is_file(), ".dockerignore is missing: the build context is the repository root"
    lines = (line.strip() for line in path.read_text().splitlines())
    return {line.rstrip("/") for line in lines if line and not line.startswith("#")}


@pytest.mark.parametrize("service", sorted(SERVICE_DIRS))
def test_dockerfile_copies_what_the_build_context_holds(service: str) -> None:
    """The build context is the repository root minus .dockerignore; every COPY source
    must be in it (a plain-name check: .dockerignore patterns are kept simple)."""
    ignored = dockerignore_patterns()
    for keyword, arguments in dockerfile_instructions(dockerfile_path(service)):
        words = arguments.split()
        if keyword != "COPY" or any(word.startswith("--from") for word in words):
            continue
        for source in [word for word in words if not word.startswith("--")][:-1]:
            relative = source.rstrip("/")
            assert (REPO / relative).exists(), f"COPY {source}: not in the repository"
            assert relative.split("/")[0] not in ignored, f"COPY {source}: in .dockerignore"
            assert relative not in ignored, f"COPY {source}: in .dockerignore"


# ---------------------------------------------------------------- entry points


@pytest.mark.parametrize("service", sorted(SERVICE_DIRS))
def test_dockerfile_runs_a_console_script(service: str) -> None:
    argv = effective_argv(service, None, None)
    assert argv, f"{dockerfile_path(service).relative_to(REPO)} has no ENTRYPOINT or CMD"
    assert argv[0] in service_scripts(service), argv


def test_compose_commands_are_console_scripts() -> None:
    services = cast(dict[str, Doc], load_compose()["services"])
    common_scripts = console_scripts(REPO / "libs" / "common")
    checked = set()
    for name, svc in services.items():
        service = compose_service_of(svc)
        if service is None:
            continue
        argv = effective_argv(service, as_argv(svc.get("entrypoint")), as_argv(svc.get("command")))
        assert argv and argv[0] in service_scripts(service), f"{name}: {argv}"
        health = as_argv(svc.get("healthcheck", {}).get("test"))
        if health is not None:
            assert health[0] == "CMD", f"{name}: healthcheck needs exec form, got {health}"
            assert health[1] in common_scripts | {"python"}, f"{name}: {health}"
        checked.add(name)
    assert checked == {"certs", "migrate", "scheduler", "runner", "gateway"}


def test_k8s_commands_are_console_scripts(build: str) -> None:
    pod_specs = pod_specs_of(built_docs(build))
    checked = set()
    for workload, spec in pod_specs.items():
        for container in containers_of(spec):
            service = image_service(container["image"])
            if service is None:
                continue
            argv = effective_argv(
                service, as_argv(container.get("command")), as_argv(container.get("args"))
            )
            assert argv and argv[0] in service_scripts(service), f"{workload}: {argv}"
            checked.add(workload)
    assert checked >= {
        "Job/migrate",
        "Deployment/scheduler",
        "Deployment/runner",
        "Deployment/gateway",
    }
