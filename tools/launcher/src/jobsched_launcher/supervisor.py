"""Keeps a local system's services running: one that exits is started again after a
backoff, the others go on; as compose's `restart:` and Kubernetes do."""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from .backoff import Backoff

log = logging.getLogger("jobsched.launcher")

POLL_SECONDS = 0.1


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"code {code}"


class Process(Protocol):
    @property
    def pid(self) -> int: ...

    def poll(self) -> int | None: ...


class Services(Protocol):
    """What is supervised: a `LocalSystem`, or a fake in unit tests."""

    @property
    def procs(self) -> Mapping[str, Process]: ...

    def restart(self, name: str) -> None: ...


@dataclass
class Supervisor:
    system: Services
    clock: Callable[[], float] = time.monotonic
    backoff: Callable[[], Backoff] = Backoff
    # When each service was last seen starting, and when each exited one is due again.
    started_at: dict[str, float] = field(default_factory=dict)
    due: dict[str, float] = field(default_factory=dict)
    backoffs: dict[str, Backoff] = field(default_factory=dict)

    def check(self) -> None:
        """Notices services that exited, and restarts those whose backoff is over."""
        now = self.clock()
        for name, proc in list(self.system.procs.items()):
            self.started_at.setdefault(name, now)
            code = proc.poll()
            if code is not None and name not in self.due:
                self._schedule_restart(name, proc.pid, code, now)
        for name, when in list(self.due.items()):
            if when <= now:
                del self.due[name]
                self.system.restart(name)
                self.started_at[name] = self.clock()

    def _schedule_restart(self, name: str, pid: int, code: int, now: float) -> None:
        uptime = now - self.started_at[name]
        delay = self.backoffs.setdefault(name, self.backoff()).next_delay(uptime)
        self.due[name] = now + delay
        log.warning(
            "%s (pid %d) exited with %s after %.1f s; restarting in %.1f s",
            name,
            pid,
            describe_exit(code),
            uptime,
            delay,
        )

    def run_until(self, condition: Callable[[], bool], stop: threading.Event) -> bool:
        """Supervises until `condition` holds (True) or `stop` is set (False)."""
        while not stop.is_set():
            self.check()
            if condition():
                return True
            stop.wait(POLL_SECONDS)
        return False
