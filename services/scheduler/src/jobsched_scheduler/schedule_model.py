"""A recurring schedule as the API and the store see it: what a client sets, and the row
with what the fire loop keeps."""

from datetime import datetime
from typing import NamedTuple

from .fire_times import FireRule


class ScheduleSpec(NamedTuple):
    """What a client sets; exactly one of cron and every_seconds."""

    name: str
    command: str
    cron: str | None
    every_seconds: int | None
    timezone: str
    overlap: str  # "skip" or "allow"
    catchup_window_seconds: int
    paused: bool
    priority: int
    max_attempts: int
    timeout_seconds: int | None
    concurrency_key: str | None = None

    @property
    def rule(self) -> FireRule:
        return FireRule(self.cron, self.every_seconds, self.timezone)


class ScheduleRow(NamedTuple):
    """A schedule as stored: the columns of `schedules` in this order. Times are aware
    UTC datetimes."""

    name: str
    command: str
    cron: str | None
    every_seconds: int | None
    timezone: str
    overlap: str
    catchup_window_seconds: int
    paused: bool
    priority: int
    max_attempts: int
    timeout_seconds: int | None
    next_run_at: datetime | None  # None while paused
    last_run_at: datetime | None
    last_job_id: int | None
    skipped_count: int
    created_at: datetime
    updated_at: datetime
    concurrency_key: str | None

    @property
    def rule(self) -> FireRule:
        return FireRule(self.cron, self.every_seconds, self.timezone)


class DueSchedule(NamedTuple):
    """A schedule the fire loop picked, locked until its transaction ends."""

    name: str
    command: str
    rule: FireRule
    overlap: str
    catchup_window_seconds: int
    priority: int
    max_attempts: int
    timeout_seconds: int | None
    next_run_at: datetime | None  # None: set by hand without one; gets one, fires nothing
    previous_finished: bool  # its last job is in a terminal status, or there is none
    concurrency_key: str | None = None
