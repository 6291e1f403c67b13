"""The benchmarks at a tiny size: each runs end to end, every figure is a positive
number, and every job created ran to completion."""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
JOBS = 300
RATES = ("10", "100")
SUSTAINED = ("created_per_s", "completed_per_s")

# Every figure the bench must produce, as paths into its JSON.
FIGURES = [
    ("ceiling", "single_process_spawns_per_s"),
    ("ceiling", "per_core_spawns_per_s"),
    ("drain", "jobs_per_s"),
    ("drain", "wall_seconds"),
    ("drain", "ratio_to_per_core_ceiling"),
    ("drain_tls", "jobs_per_s"),
    ("drain_tls", "ratio_to_plaintext_drain"),
    *[(phase, key) for phase in ("sustained", "sustained_bulk") for key in SUSTAINED],
    *[("latency", rate, key) for rate in RATES for key in ("p50_ms", "p99_ms", "max_ms")],
    *[("memory", "drain_peak_rss_mb", name) for name in ("scheduler", "gateway")],
    *[("memory", "drain_peak_rss_mb", f"runner-{i}") for i in (1, 2)],
]


def _get(data: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        data = data[key]
    return data


def _run_bench(out: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, str(ROOT / "bench" / "run.py"), "--quick"]
    command += ["--jobs", str(JOBS), "--seconds", "2", "--out", str(out)]
    proc = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        stdout, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        # SIGTERM lets the bench stop its PostgreSQL and services before it exits.
        proc.send_signal(signal.SIGTERM)
        try:
            stdout, _ = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            stdout, _ = proc.communicate()
        pytest.fail(f"bench did not finish in {timeout:.0f}s:\n{stdout[-4000:]}")
    return subprocess.CompletedProcess(command, proc.returncode, stdout, "")


@pytest.mark.e2e
def test_quick_bench_measures_everything_and_loses_nothing(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    done = _run_bench(out, timeout=150)
    assert done.returncode == 0, done.stdout[-4000:]
    results = json.loads(out.read_text())
    assert "error" not in results

    for path in FIGURES:
        value = _get(results, path)
        assert isinstance(value, int | float), (path, value)
        assert math.isfinite(value) and value > 0, (path, value)

    drain = results["drain"]
    assert drain["jobs"] == JOBS
    assert drain["completed"] == JOBS, drain
    assert drain["lost"] == 0 and not drain["timed_out"], drain

    for phase in ("sustained", "sustained_bulk"):
        sustained = results[phase]
        assert sustained["created"] > 0 and sustained["errors"] == 0, sustained
        assert sustained["completed"] == sustained["created"], sustained

    assert set(results["latency"]) == set(RATES)
    for rate, latency in results["latency"].items():
        assert latency["failures"] == 0 and latency["lost"] == 0, (rate, latency)
        assert latency["started"] == latency["requests"], (rate, latency)

    table = done.stdout
    assert "cores" in table and "jobs/s" in table and "spawns/s" in table
    assert "bench/peer.py" in table and "bench/scale.py" in table


@pytest.mark.e2e
def test_scale_bench_measures_every_read_against_the_goal(tmp_path: Path) -> None:
    out = tmp_path / "scale.json"
    command = [sys.executable, str(ROOT / "bench" / "scale.py"), "--rows", "20000"]
    command += ["--requests", "20", "--out", str(out)]
    done = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=180, check=False
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    results = json.loads(out.read_text())
    assert set(results["tables"]) == {"10k", "N"}
    for name, table in results["tables"].items():
        for kind, figure in {**table["reads"], **table["claim_sql"]}.items():
            assert figure["n"] == 20 and figure["p50_ms"] > 0, (name, kind, figure)
            assert set(figure.get("codes", {"200"})) == {"200"}, (name, kind, figure)
        assert table["dispatch"]["claim seen (2xx to leaves queued)"]["stuck"] == 0, name
    # Every read has a verdict against the goal, and the table prints it.
    assert set(results["goal"]) == set(results["tables"]["N"]["reads"])
    for kind, verdict in results["goal"].items():
        assert verdict["ratio_p50"] > 0 and isinstance(verdict["pass"], bool), (kind, verdict)
        assert ("PASS" if verdict["pass"] else "FAIL") in done.stdout
    plans = results["explain_at_N"]
    assert all(plan["execution_ms"] and plan["plan"] for plan in plans.values()), plans
    # The claim function's query, as the database holds it, is planned on the queue's index.
    assert any("jobs_ready_idx" in line for line in plans["claim"]["plan"]), plans["claim"]


@pytest.mark.e2e
def test_peer_bench_drains_every_job_through_pgqueuer(tmp_path: Path) -> None:
    out = tmp_path / "peer.json"
    command = [sys.executable, str(ROOT / "bench" / "peer.py"), "--jobs", "200"]
    command += ["--out", str(out)]
    done = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    results = json.loads(out.read_text())
    assert results["completed"] == 200 and results["failed"] == 0, results
    assert results["jobs_per_s"] > 0 and not results["timed_out"], results
