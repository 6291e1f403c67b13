"""When to restart a service that exited: a delay that doubles with each crash in a row,
up to a ceiling, and is forgiven once the service has stayed up a while."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Backoff:
    first: float = 0.5
    longest: float = 10.0
    # A service that ran this long before exiting is not crashing in a loop.
    stable_after: float = 30.0
    crashes: int = 0

    def next_delay(self, uptime: float) -> float:
        """The wait before restarting a service that exited after `uptime` seconds."""
        if uptime >= self.stable_after:
            self.crashes = 0
        doublings = min(self.crashes, 32)  # past the ceiling long before; keeps it a float
        self.crashes += 1
        return min(self.first * 2.0**doublings, self.longest)
