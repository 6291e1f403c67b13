"""What the benchmarks share: the machine they ran on, a scratch directory, the database
and REST API of a system under test, percentiles, and writing results."""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, LiteralString

import httpx
import psycopg
from jobsched_launcher import LocalSystem, wait_for

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
Json = dict[str, Any]


# --- figures ----------------------------------------------------------------------------


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(p / 100 * len(ordered))))
    return ordered[rank - 1]


def summary(samples_ms: list[float], **extra: Any) -> Json:
    """p50, p99, mean and max of latencies in ms, and the samples themselves."""
    if not samples_ms:
        return {"n": 0, **extra}
    return {
        "n": len(samples_ms),
        "p50_ms": round(percentile(samples_ms, 50), 3),
        "p99_ms": round(percentile(samples_ms, 99), 3),
        "mean_ms": round(sum(samples_ms) / len(samples_ms), 3),
        "max_ms": round(max(samples_ms), 3),
        **extra,
        "samples_ms": [round(v, 2) for v in samples_ms],
    }


def columns(rows: Sequence[Sequence[str]]) -> list[str]:
    """Rows as lines, every column but the last padded to its widest cell."""
    width = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return [
        "  ".join([*(c.ljust(w) for c, w in zip(row, width, strict=False)), row[-1]])
        for row in rows
    ]


# --- the run ----------------------------------------------------------------------------


def machine() -> Json:
    """Where and when a benchmark ran. Other work on the machine skews every figure:
    the load average is recorded first."""
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cores": os.cpu_count(),
        "cpu": cpu_model(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_average_at_start": list(os.getloadavg()),
    }


def cpu_model() -> str:
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "?"


@contextlib.contextmanager
def scratch(prefix: str, keep: bool = False) -> Iterator[Path]:
    """A temporary directory, also the working directory meanwhile (so that no `.env`
    of the caller's reaches the services); removed afterwards unless `keep` or failed.
    SIGTERM unwinds like Ctrl+C, so that every process started in it is stopped."""
    signal.signal(signal.SIGTERM, _interrupt)
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    os.chmod(tmp, 0o755)  # the embedded PostgreSQL may run as its own user
    home = Path.cwd()
    os.chdir(tmp)
    try:
        yield tmp
    except BaseException:
        keep = True
        raise
    finally:
        os.chdir(home)
        if keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def write_results(out: Path, result: Json) -> None:
    """The figures as JSON; NaN (a figure that could not be computed) becomes null."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(_finite(result), indent=1, default=str) + "\n")
    print(f"\nwritten to {out}")


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


# --- a system under test, through its interfaces ----------------------------------------


class Db:
    """The system's database, through its SQL schema (the jobs tables and counters)."""

    def __init__(self, url: str):
        self.url = url
        self.conn = psycopg.connect(url, autocommit=True)

    def one(self, query: LiteralString, params: Any = None) -> Any:
        """The first column of the first row."""
        return self.row(query, params)[0]

    def row(self, query: LiteralString, params: Any = None) -> tuple[Any, ...]:
        found = self.conn.execute(query, params).fetchone()
        assert found is not None
        return found

    def max_id(self) -> int:
        return int(self.one("SELECT coalesce(max(id), 0) FROM jobs"))

    def unfinished(self, after_id: int = 0) -> int:
        """Queued or running jobs above an id (the (status, id) index answers it)."""
        return int(
            self.one(
                "SELECT count(*) FROM jobs WHERE status IN ('queued', 'running') AND id > %s",
                (after_id,),
            )
        )

    def wait_finished(self, after_id: int, timeout: float) -> bool:
        """Polls until no job above `after_id` is queued or running; False on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.unfinished(after_id) == 0:
                return True
            time.sleep(0.1)
        return False

    def outcomes(self, after_id: int) -> dict[str, int]:
        rows = self.conn.execute(
            "SELECT status, count(*) FROM jobs WHERE id > %s GROUP BY 1", (after_id,)
        )
        return {str(status): int(count) for status, count in rows}

    def wait_notifications_read(self, timeout: float) -> float:
        """Seconds until every listener (the scheduler) has read the notification queue."""
        started = time.monotonic()
        wait_for(
            lambda: float(self.one("SELECT pg_notification_queue_usage()")) == 0.0,
            timeout,
            "scheduler reading the notifications",
        )
        return time.monotonic() - started

    def close(self) -> None:
        self.conn.close()


def rest(system: LocalSystem, timeout: float = 10) -> httpx.Client:
    return httpx.Client(base_url=system.gateway_url, timeout=timeout)


def wait_runners(client: httpx.Client, count: int, timeout: float = 30) -> None:
    def connected() -> bool:
        reply = client.get("/api/stats")
        return reply.status_code == 200 and reply.json()["runners_connected"] >= count

    wait_for(connected, timeout, f"{count} runners")
