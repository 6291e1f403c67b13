"""Builds the three images from their Dockerfiles with podman and measures them: size,
what each adds on top of its base, build time, and the layers a one-service change rebuilds."""

from __future__ import annotations

import json
import re
import secrets
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from tests.compose.podman import ROOT, run

BASE = "docker.io/library/python:3.11-slim"
IMAGES = {
    "scheduler": "services/scheduler/Dockerfile",
    "runner": "services/runner/Dockerfile",
    "gateway": "services/api-gateway/Dockerfile",
}
# What the Dockerfiles copy from the build context.
CONTEXT = ["protos", "libs", "services", "web", ".dockerignore"]


@dataclass
class Build:
    image: str
    seconds: float
    rebuilt: list[str]


def build(name: str, dockerfile: str, context: Path = ROOT, tag: str = "latest") -> Build:
    """`--network host`: on this machine only the host's network reaches PyPI."""
    started = time.monotonic()
    out = run(
        "podman", "build", "--network", "host", "--pull=never",
        "-t", f"jobsched/{name}:{tag}", "-f", str(context / dockerfile), str(context),
    )  # fmt: skip
    return Build(name, time.monotonic() - started, rebuilt_steps(out))


def rebuilt_steps(output: str) -> list[str]:
    """The steps of a build's output not taken from the cache (FROM is no layer of its own)."""
    steps = re.split(r"^\[?\d*/?\d*\]? ?STEP \d+/\d+: ", output, flags=re.M)[1:]
    return [
        step.splitlines()[0]
        for step in steps
        if not step.startswith("FROM ") and "--> Using cache" not in step
    ]


def build_all() -> list[Build]:
    return [build(name, dockerfile) for name, dockerfile in IMAGES.items()]


def size(image: str) -> int:
    info = json.loads(run("podman", "image", "inspect", image))
    return int(info[0]["Size"])


def rebuild_after_change(service: str, workdir: Path) -> Build:
    """Rebuilds one image from a copy of the context with one of its service's files
    changed: the base and shared-package layers must come from the cache."""
    for part in CONTEXT:
        source = ROOT / part
        if source.is_dir():
            shutil.copytree(source, workdir / part, symlinks=True)
        else:
            shutil.copy2(source, workdir / part)
    changed = next((workdir / Path(IMAGES[service]).parent / "src").rglob("__init__.py"))
    # New each time, so that no earlier measurement's layers are in the cache.
    changed.write_text(changed.read_text() + f"\n# a change: {secrets.token_hex(8)}\n")
    rebuilt = build(service, IMAGES[service], workdir, tag="rebuild-check")
    run("podman", "rmi", f"jobsched/{service}:rebuild-check")
    return rebuilt


def report(builds: list[Build], rebuild: Build) -> str:
    base = size(BASE)
    mb = 1_000_000
    lines = [f"base {BASE}: {base / mb:.0f} MB"]
    for b in builds:
        total = size(f"jobsched/{b.image}:latest")
        lines.append(
            f"{b.image}: {total / mb:.0f} MB, {(total - base) / mb:.0f} MB on top of the base, "
            f"built in {b.seconds:.0f} s ({len(b.rebuilt)} steps not from the cache)"
        )
    lines.append(
        f"{rebuild.image} after a change to its own source, {rebuild.seconds:.0f} s, "
        f"rebuilt only: " + "; ".join(step[:40] for step in rebuild.rebuilt)
    )
    return "\n".join(lines)
