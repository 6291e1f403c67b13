"""bench/schedules.py at a tiny size: it runs end to end, every schedule makes its job at
the common fire time, none twice, and every figure is a number."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]


def test_the_schedules_bench_runs_at_a_tiny_size(tmp_path: Path) -> None:
    out = tmp_path / "schedules.json"
    command = [sys.executable, str(ROOT / "bench" / "schedules.py")]
    command += ["--schedules", "200", "--every", "5", "--out", str(out)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=200)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    result = json.loads(out.read_text())
    fire = result["fire"]
    assert (fire["jobs"], fire["duplicates"], fire["schedules_without_this_fire"]) == (200, 0, 0)
    for key in ("p50_ms", "p99_ms", "max_ms", "all_committed_after_s"):
        assert isinstance(fire[key], float | int) and fire[key] >= 0, (key, fire)
    assert sum(result["made_by"].values()) >= 200
    assert result["meta"]["cpu"]
