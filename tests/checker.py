"""A history checker in the style of Jepsen's Chronos analysis: each command appends
its own start and end to a log outside the system, and the checker derives peak
concurrency, lost jobs and duplicate starts from that log alone."""

from dataclasses import dataclass
from pathlib import Path


def logged_command(log: Path, tag: str, body: str) -> str:
    """A shell command that records when it really starts and ends."""
    return (
        f'echo "start {tag} $(date +%s.%N)" >> {log}; {body}; '
        f'rc=$?; echo "end {tag} $(date +%s.%N)" >> {log}; exit $rc'
    )


@dataclass
class History:
    starts: dict[str, list[float]]
    ends: dict[str, list[float]]

    @classmethod
    def read(cls, log: Path) -> "History":
        starts: dict[str, list[float]] = {}
        ends: dict[str, list[float]] = {}
        for line in log.read_text().splitlines() if log.exists() else []:
            kind, tag, at = line.split()
            (starts if kind == "start" else ends).setdefault(tag, []).append(float(at))
        return cls(starts, ends)

    def peak_concurrency(self) -> int:
        events = [(t, 1) for ts in self.starts.values() for t in ts]
        events += [(t, -1) for ts in self.ends.values() for t in ts]
        peak = current = 0
        # At equal times an end comes first: it freed the slot the start took.
        for _, delta in sorted(events):
            current += delta
            peak = max(peak, current)
        return peak

    def duplicate_starts(self) -> list[str]:
        return [tag for tag, ts in self.starts.items() if len(ts) > 1]

    def never_started(self, tags: list[str]) -> list[str]:
        return [tag for tag in tags if tag not in self.starts]
