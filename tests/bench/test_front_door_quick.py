"""The front-door and search benchmarks at a tiny size: each runs end to end, every
figure is a positive number, and nothing failed."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _bench(script: str, *args: str, out: Path, timeout: float) -> dict[str, object]:
    command = [sys.executable, str(ROOT / "bench" / script), *args, "--out", str(out)]
    done = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    results: dict[str, object] = json.loads(out.read_text())
    return results


def _positive(value: object) -> bool:
    return isinstance(value, int | float) and math.isfinite(value) and value > 0


@pytest.mark.e2e
def test_front_door_bench_measures_creates_latency_and_the_drain(tmp_path: Path) -> None:
    args = ["--seconds", "1", "--rate", "50", "--drain-jobs", "100", "--ceiling-seconds", "1"]
    args += ["--drain-rounds", "2", "--warmup-jobs", "30"]
    results = _bench("front_door.py", *args, out=tmp_path / "fd.json", timeout=240)
    healthz, creates = results["wrk_healthz"], results["wrk_create"]
    assert isinstance(healthz, dict) and isinstance(creates, dict)
    for figures in (healthz, creates):
        assert _positive(figures["per_s"]) and _positive(figures["p99_ms"]), figures
        assert figures["status_errors"] == 0 and figures["socket_errors"] == 0, figures
    assert creates["jobs_in_table"] >= creates["requests"] > 0, creates
    cpu = creates["cpu_ms_per_create"]
    assert set(cpu) == {"gateway", "scheduler", "postgres"}
    assert all(_positive(ms) for ms in cpu.values()), cpu
    for key in ("open_loop_healthz", "open_loop_create"):
        loop = results[key]
        assert isinstance(loop, dict) and loop["failures"] == 0, loop
        assert _positive(loop["p99_ms"]) and loop["requests"] == 50, loop
    drain = results["drain"]
    assert isinstance(drain, dict)
    assert len(drain["rounds"]) == 2
    assert drain["warmup"]["completed"] == drain["warmup"]["created"] == 30, drain["warmup"]
    for round_ in drain["rounds"]:
        assert round_["completed"] == round_["created"] == 100, round_
        assert not round_["timed_out"] and _positive(round_["ratio_to_single_process_ceiling"])
    assert drain["ratio_to_single_process_ceiling"] in {
        r["ratio_to_single_process_ceiling"] for r in drain["rounds"]
    }
    split = drain["cpu_ms_per_job"]
    expected = {"gateway", "scheduler", "postgres", "runner-1", "runner-2", "job shells"}
    assert expected <= set(split), split
    assert all(_positive(split[name]) for name in expected), split


@pytest.mark.e2e
def test_the_drain_alone_runs_on_a_fresh_system(tmp_path: Path) -> None:
    args = ["--drain-only", "--drain-jobs", "50", "--ceiling-seconds", "1", "--drain-rounds", "1"]
    args += ["--warmup-jobs", "0"]
    results = _bench("front_door.py", *args, out=tmp_path / "fd.json", timeout=240)
    assert not {"wrk_healthz", "wrk_create", "open_loop_create"} & set(results), results
    drain = results["drain"]
    assert isinstance(drain, dict) and len(drain["rounds"]) == 1
    assert drain["completed"] == drain["created"] == 50 and not drain["timed_out"], drain
    assert drain["warmup"] is None
    assert _positive(drain["ratio_to_single_process_ceiling"]), drain


@pytest.mark.e2e
def test_search_bench_times_every_search_with_its_plan(tmp_path: Path) -> None:
    args = ["--rows", "20000", "--requests", "5"]
    results = _bench("search.py", *args, out=tmp_path / "search.json", timeout=240)
    searches = results["searches"]
    assert isinstance(searches, dict) and len(searches) == 8
    for name, figures in searches.items():
        assert figures["n"] == 5 and _positive(figures["p99_ms"]), (name, figures)
        assert figures["codes"] == {"200": 5}, (name, figures)
        assert figures["explain"]["plan"], name
    assert searches["one job (its name)"]["rows_first_page"] == 1
    assert searches["none (no-such-text)"]["rows_first_page"] == 0
    assert searches["every job (local/bin)"]["rows_first_page"] == 100
