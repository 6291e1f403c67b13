"""The fire loop, run by every scheduler: makes the jobs of due schedules, batch by batch,
each batch in one short transaction whose row locks keep other schedulers off it."""

import asyncio
import contextlib
import functools
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from .errors import DomainError
from .fire_times import FireRule, RuleError
from .schedule_model import DueSchedule
from .schedule_store import PgSchedules

log = logging.getLogger(__name__)

BATCH = 500
# However small its catch-up window, a fire time reached this late is on time: the
# loop's own latency must not turn a fire into a miss.
ON_TIME_SECONDS = 5.0
# How long to look away when due schedules are all locked by another scheduler firing.
LOCKED_PAUSE_SECONDS = 0.1
RETRY_PAUSE_SECONDS = 1.0
# Waking a hair late costs nothing; waking early costs a pick that finds nothing.
WAKE_MARGIN_SECONDS = 0.002


def job_name(schedule: str, fire_at: datetime) -> str:
    """The job of a fire time: `backup@2026-11-29T03:00:00Z`."""
    return f"{schedule}@{fire_at.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}"


def trigger_job_name(schedule: str, now: datetime) -> str:
    """The job of a trigger: `backup@2026-11-29T03:00:00.123456Z`."""
    return f"{schedule}@{now.astimezone(UTC):%Y-%m-%dT%H:%M:%S.%fZ}"


@dataclass(frozen=True)
class Fire:
    """What one pick does to one schedule."""

    schedule: DueSchedule
    fire_at: datetime | None  # the fire time handled; None: it only gets a next run
    make_job: bool
    skipped: int  # 1 when the previous job has not finished and overlap is skip
    next_run_at: datetime | None
    missed: tuple[datetime, datetime] | None = None  # the first and last fire times missed
    unreadable: bool = False  # its cron or time zone (set by hand) cannot be read

    @property
    def paused(self) -> bool:
        """A schedule with no fire time left is paused, rather than picked forever."""
        return self.next_run_at is None

    @property
    def job_name(self) -> str | None:
        """The name of the job to make; None: none."""
        if not self.make_job or self.fire_at is None:
            return None
        return job_name(self.schedule.name, self.fire_at)

    def row(self) -> dict[str, Any]:
        """This fire as an element of `fire_schedules`' batch."""
        s = self.schedule
        return {
            "schedule": s.name,
            "job_name": self.job_name,
            "command": s.command,
            "priority": s.priority,
            "concurrency_key": s.concurrency_key,
            "max_attempts": s.max_attempts,
            "timeout_seconds": s.timeout_seconds,
            "fire_at": self.fire_at.isoformat() if self.fire_at else None,
            "next_run_at": self.next_run_at.isoformat() if self.next_run_at else None,
            "skipped": self.skipped,
            "paused": self.paused,
        }


def plan(schedule: DueSchedule, now: datetime) -> Fire:
    """What to do with a due schedule at `now`: fire its latest fire time if it is young
    enough (every older one missed while no scheduler ran is skipped), unless overlap
    says to skip it; then move on to the first fire time after now."""
    following = _next_after(schedule.rule, now)
    due = schedule.next_run_at
    if due is None:
        return Fire(schedule, None, False, 0, following)
    latest = _latest_at_or_before(schedule.rule, now) or due
    latest = max(latest, due)
    missed_before = (due, _before(schedule.rule, latest, due)) if latest > due else None
    age = (now - latest).total_seconds()
    if age >= max(schedule.catchup_window_seconds, ON_TIME_SECONDS):
        return Fire(schedule, latest, False, 0, following, (due, latest))
    if schedule.overlap == "skip" and not schedule.previous_finished:
        return Fire(schedule, latest, False, 1, following, missed_before)
    return Fire(schedule, latest, True, 0, following, missed_before)


def _before(rule: FireRule, fire_at: datetime, earliest: datetime) -> datetime:
    """The fire time before `fire_at`, and not before `earliest`."""
    previous = rule.latest_at_or_before(fire_at - timedelta(microseconds=1))
    return max(previous or earliest, earliest)


# A batch shares one `now`, and schedules of one rule share their fire times: thousands
# of interval schedules cost one evaluation.
@functools.lru_cache(maxsize=1024)
def _next_after(rule: FireRule, now: datetime) -> datetime | None:
    return rule.next_after(now)


@functools.lru_cache(maxsize=1024)
def _latest_at_or_before(rule: FireRule, now: datetime) -> datetime | None:
    return rule.latest_at_or_before(now)


def _planned(schedule: DueSchedule, now: datetime) -> Fire:
    """`plan`, or a pause for a schedule whose rule cannot be read (set by hand)."""
    try:
        return plan(schedule, now)
    except RuleError as exc:
        log.error("Schedule %s cannot be evaluated (%s); pausing it", schedule.name, exc)
        return Fire(schedule, None, False, 0, None, unreadable=True)


def _report(fire: Fire, job_id: int | None) -> None:
    name = fire.schedule.name
    if fire.missed:
        first, last = fire.missed
        log.warning(
            "Schedule %s missed its fire times from %s to %s (older than its catch-up "
            "window of %d s): skipped",
            name,
            first.isoformat(),
            last.isoformat(),
            fire.schedule.catchup_window_seconds,
        )
    if fire.skipped:
        log.info("Schedule %s skipped %s: its previous job has not finished", name, fire.fire_at)
    if fire.paused and not fire.unreadable:
        log.warning("Schedule %s has no fire time left; paused", name)
    if job_id is not None:
        log.debug("Schedule %s made job %d", name, job_id, extra={"job_id": job_id})


class FireLoop:
    def __init__(self, schedules: PgSchedules, safety_net: float, batch: int = BATCH):
        self.schedules = schedules
        self.safety_net = safety_net
        self.batch = batch
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """A schedule changed somewhere: the earliest next run may have moved."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self._wake.clear()
            try:
                delay = await self.fire_due()
            except DomainError as exc:
                log.warning("Fire loop failed (%s: %s); retrying", exc, exc.__cause__)
                delay = RETRY_PAUSE_SECONDS
            except Exception:
                # Whatever one batch ran into, the schedules must go on firing.
                log.exception("Fire loop failed; retrying")
                delay = RETRY_PAUSE_SECONDS
            await self._sleep(stop, delay)

    async def fire_due(self) -> float:
        """Fires every due schedule this scheduler can lock; returns how long to wait
        before the next one is due (at most the safety net)."""
        while await self.fire_batch() == self.batch:
            pass
        seconds = await self.schedules.next_due()
        if seconds is None:
            return self.safety_net
        if seconds == 0:  # due, but another scheduler holds it now
            return LOCKED_PAUSE_SECONDS
        return min(seconds + WAKE_MARGIN_SECONDS, self.safety_net)

    async def fire_batch(self) -> int:
        """Fires one batch of due schedules in one transaction; returns how many it
        picked."""
        async with self.schedules.due(self.batch) as due:
            if due.now is None:
                return 0
            now = due.now
            fires = [_planned(schedule, now) for schedule in due.schedules]
            made = await due.fire([fire.row() for fire in fires])
        for fire in fires:
            _report(fire, made.get(fire.schedule.name))
        jobs = sum(1 for job_id in made.values() if job_id is not None)
        if jobs:
            log.info("Schedules made %d job(s)", jobs)
        return len(fires)

    async def _sleep(self, stop: asyncio.Event, seconds: float) -> None:
        waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._wake.wait())]
        try:
            await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await waiter
