"""The processes of a system under test, from /proc: which are the services', and what
CPU time and memory each used."""

from __future__ import annotations

import contextlib
import os
import resource
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def cpu_seconds(pid: int) -> tuple[float, float]:
    """(own user+system, reaped children's user+system) CPU seconds of a process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
    except OSError:
        return 0.0, 0.0
    tick = os.sysconf("SC_CLK_TCK")
    # After the ")": state is field 0, so utime, stime, cutime, cstime are 11 to 14.
    own = (int(fields[11]) + int(fields[12])) / tick
    children = (int(fields[13]) + int(fields[14])) / tick
    return own, children


def children_of(pid: int) -> list[int]:
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError), open(f"/proc/{pid}/task/{task}/children") as f:
                found.extend(int(p) for p in f.read().split())
    return found


def postgres_cpu(postmaster: int) -> float:
    """CPU seconds of the postmaster, its live backends and its reaped ones."""
    own, reaped = cpu_seconds(postmaster)
    total = own + reaped
    for child in children_of(postmaster):
        total += cpu_seconds(child)[0]
    return total


def read_rss_kb(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def exe_of(pid: int) -> str:
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return "?"


def is_python(pid: int) -> bool:
    return "python" in Path(exe_of(pid)).name


def cmdline_of(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []


def service_processes(procs: dict[str, int]) -> dict[str, int]:
    """Each service's Python process, and the Python helpers it started (a runner's
    reaper, say), by name. The console scripts are Python themselves; were one a
    wrapper, its Python child is taken. Job shells under a runner are left out."""
    found: dict[str, int] = {}
    for name, pid in procs.items():
        main_pid = pid
        if not is_python(pid):
            main_pid = next((c for c in children_of(pid) if is_python(c)), pid)
        found[name] = main_pid
        for child in children_of(main_pid):
            if is_python(child):
                args = cmdline_of(child)
                module = args[args.index("-m") + 1] if "-m" in args[:-1] else f"pid {child}"
                found[f"{name} {module.rsplit('.', 1)[-1]}"] = child
    return found


@dataclass
class Watcher:
    """Samples each service's VmRSS every 100 ms into per-phase peaks, and takes CPU
    snapshots at phase boundaries."""

    pids: dict[str, int]
    postmaster: int | None
    interval: float = 0.1
    phase: str = "startup"
    peaks: dict[str, dict[str, int]] = field(default_factory=dict)
    samples: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            peaks = self.peaks.setdefault(self.phase, {})
            for name, pid in self.pids.items():
                rss = read_rss_kb(pid)
                if rss is not None and rss > peaks.get(name, 0):
                    peaks[name] = rss
            self.samples += 1

    def cpu(self) -> dict[str, float]:
        snap: dict[str, float] = {"job shells": 0.0}
        for name, pid in self.pids.items():
            own, reaped = cpu_seconds(pid)
            snap[name] = own
            snap["job shells"] += reaped  # a runner's reaped children are its jobs
        if self.postmaster is not None:
            snap["postgres"] = postgres_cpu(self.postmaster)
        usage = resource.getrusage(resource.RUSAGE_SELF)
        snap["bench client"] = usage.ru_utime + usage.ru_stime
        return snap

    @contextlib.contextmanager
    def measuring(self, phase: str, into: dict[str, Any]) -> Iterator[None]:
        """Peaks of RSS under `phase`, and CPU use (CPU-seconds per second) into `into`."""
        self.phase = phase
        before, started = self.cpu(), time.monotonic()
        try:
            yield
        finally:
            after, elapsed = self.cpu(), max(time.monotonic() - started, 1e-9)
            into["cpu_cores_used"] = {
                name: round((after[name] - before[name]) / elapsed, 3) for name in after
            }
            self.phase = f"after {phase}"
