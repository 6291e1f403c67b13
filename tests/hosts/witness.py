"""A command that witnesses its own life where a kill cannot silence the record: it logs
its start, then that it is alive every tenth of a second, then its end. A command killed
with SIGKILL logs no end, but its last `alive` line says when it was last running."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

TICK_SECONDS = 0.1


def witnessed(log: Path, tag: str, seconds: float) -> str:
    """Runs for about `seconds`, each line `kind tag pid time`, $$ telling attempts apart."""
    ticks = max(1, round(seconds / TICK_SECONDS))
    line = f'"$1 {tag} $$ $(date +%s.%N)" >> {log}'
    return (
        f"note() {{ echo {line}; }}; note start; "
        f"i=0; while [ $i -lt {ticks} ]; do note alive; sleep {TICK_SECONDS}; i=$((i+1)); done; "
        "note end"
    )


@dataclass
class Life:
    """One run of a command: when it started, was last seen, and whether it ended."""

    pid: str
    started: float
    last_seen: float
    ended: bool = False


def lives(log: Path, tag: str) -> list[Life]:
    """The runs of `tag`, in the order they started."""
    found: dict[str, Life] = {}
    for line in log.read_text().splitlines() if log.exists() else []:
        kind, who, pid, at_text = line.split()
        if who != tag:
            continue
        at = float(at_text)
        life = found.setdefault(pid, Life(pid, at, at))
        life.last_seen = max(life.last_seen, at)
        life.ended = life.ended or kind == "end"
    return sorted(found.values(), key=lambda life: life.started)


def overlaps(runs: list[Life]) -> list[tuple[str, str]]:
    """Pairs of runs of one command that were alive at the same time."""
    return [
        (one.pid, other.pid)
        for index, one in enumerate(runs)
        for other in runs[index + 1 :]
        if other.started <= one.last_seen
    ]
