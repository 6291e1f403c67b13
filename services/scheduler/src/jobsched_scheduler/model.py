"""Plain values that move between the API, the runner link, dispatch and the store."""

import random
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple


class JobRow(NamedTuple):
    """A job as the API shows it. Times are aware UTC datetimes, None when unset (or
    beyond what a datetime holds: PostgreSQL's ±infinity, years past 9999)."""

    id: int
    name: str
    command: str
    status: str
    last_run: datetime | None
    created_at: datetime | None
    updated_at: datetime | None
    attempt: int
    max_attempts: int
    timeout_seconds: int | None
    runner_id: str | None
    started_at: datetime | None
    finished_at: datetime | None
    exit_code: int | None
    reason: str | None
    priority: int
    run_at: datetime | None  # while waiting: not started before
    depends_on: list[int] | None
    concurrency_key: str | None


class NewJob(NamedTuple):
    name: str
    command: str
    max_attempts: int
    timeout_seconds: int | None
    priority: int = 0
    run_at: datetime | None = None
    delay_seconds: float | None = None
    depends_on: tuple[int, ...] = ()
    concurrency_key: str | None = None


@dataclass(frozen=True)
class JobFilter:
    """Which jobs a bulk action applies to, when not listed by id."""

    status: str | None  # None: any
    text: str | None  # None: any; else a piece of the name or command, any case


class KeyLimit(NamedTuple):
    """A concurrency key: its limit (None: only the global one), pause and counts."""

    key: str
    max_concurrent_jobs: int | None
    paused: bool
    running: int
    queued: int


@dataclass(frozen=True)
class AttemptKey:
    """One attempt of one job: the fencing token every runner report carries."""

    job_id: int
    attempt: int


@dataclass(frozen=True)
class Claimed:
    key: AttemptKey
    command: str
    timeout_seconds: int | None


@dataclass
class ClaimResult:
    limit: int
    running: int
    queued: int
    by_runner: dict[str, list[Claimed]] = field(default_factory=dict)
    # When the earliest `scheduled` job (a delay, a retry's backoff) falls due.
    next_due_at: datetime | None = None

    @property
    def available(self) -> int:
        return max(0, self.limit - self.running)

    @property
    def claimed(self) -> int:
        return sum(len(jobs) for jobs in self.by_runner.values())


@dataclass
class AttemptReport:
    """What a runner told us about one attempt since the last flush. The store applies
    it only if the attempt was given to `runner_id` (None: to any runner; tools and
    tests only, the runner link always names the runner)."""

    key: AttemptKey
    started_at: datetime | None = None
    output: list[str] = field(default_factory=list)
    truncated: bool = False
    finished: "Finish | None" = None
    runner_id: str | None = None


@dataclass(frozen=True)
class Ended:
    """An attempt whose finish was stored: what it did to its job."""

    key: AttemptKey
    status: str
    waited: float | None  # creation to start, for a first attempt
    ran: float | None


@dataclass(frozen=True)
class Refused:
    """A report about an attempt that was given to another runner: it changed nothing."""

    key: AttemptKey
    runner_id: str
    holder: str


@dataclass
class StoredReports:
    # Every finish in the batch, stored, found stale or refused: the runners may forget
    # them (a refused one would be refused again; an honest runner never sends one).
    acknowledged: list[AttemptKey]
    ended: list[Ended]
    refused: list[Refused] = field(default_factory=list)


@dataclass(frozen=True)
class Finish:
    exit_code: int
    reason: str
    started_at: datetime | None
    finished_at: datetime


def slot_order(free_by_runner: dict[str, int], most: int) -> list[str]:
    """The runner of each free slot, in the order to fill them: always one of the
    runners with the most free slots left, so that load stays even. Ties go to a random
    runner, so that a trickle of jobs does not all land on one. At most `most` slots."""
    tiebreak = {runner: random.random() for runner in free_by_runner}
    slots = [
        (free - taken, tiebreak[runner], runner)
        for runner, free in free_by_runner.items()
        for taken in range(min(free, most))
    ]
    slots.sort(key=lambda slot: (-slot[0], slot[1]))
    return [runner for _, _, runner in slots[:most]]
