"""The README's client examples run against the real system."""

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import LiveSystem

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(60)]

ROOT = Path(__file__).resolve().parents[2]


def test_the_python_grpc_client_example(live_system: LiveSystem) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "grpc_client.py"), live_system.scheduler_addr],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("created job ")
    assert lines[1:] == [
        f"job {lines[0].split()[-1]}: JOB_STATUS_QUEUED",
        f"job {lines[0].split()[-1]}: JOB_STATUS_RUNNING",
        f"job {lines[0].split()[-1]}: JOB_STATUS_COMPLETED",
        "output: hello over gRPC",
    ]
