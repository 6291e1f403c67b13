"""The REST shapes of recurring schedules (`/api/schedules`), to and from ScheduleService."""

from datetime import datetime
from typing import Annotated, Any, Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from jobsched.v1 import jobs_pb2 as pb
from jobsched_common.limits import (
    DEFAULT_CATCHUP_WINDOW_SECONDS,
    MAX_ATTEMPTS,
    MAX_CATCHUP_WINDOW_SECONDS,
    MAX_CRON_CHARS,
    MAX_EVERY_SECONDS,
    MAX_SCHEDULE_NAME_CHARS,
    MAX_TIMEOUT_SECONDS,
)
from pydantic import BaseModel, Field, model_validator

from .schemas import ConcurrencyKey, Int32, Priority, Text, schema_only, time_of

Overlap = Literal["skip", "allow"]
OVERLAP_TO_PB: dict[Overlap, pb.Overlap.ValueType] = {
    "skip": pb.OVERLAP_SKIP,
    "allow": pb.OVERLAP_ALLOW,
}
DEFAULT_MAX_ATTEMPTS = 1

ScheduleName = Annotated[
    Text,
    schema_only(minLength=1, maxLength=MAX_SCHEDULE_NAME_CHARS, pattern=r"^[^@]*[^@\s][^@]*$"),
    Field(
        description="Unique, without `@`: its jobs are named `{name}@{fire time in UTC}`, "
        "e.g. `backup@2026-11-29T03:00:00Z`.",
        examples=["backup"],
    ),
]


class ScheduleBody(BaseModel):
    """What a client sets on a schedule; `PUT` replaces all of it (omitted fields take
    their defaults). Its name, if given, must be the path's."""

    name: ScheduleName | None = None
    command: Annotated[Text, schema_only(minLength=1, pattern=r"\S")] = Field(
        description="Run with `/bin/sh -c` by each job the schedule makes.",
        examples=["pg_dump app > /backups/app.sql"],
    )
    cron: Annotated[Text, schema_only(minLength=1, maxLength=MAX_CRON_CHARS)] | None = Field(
        None,
        description="5 fields (minute hour day-of-month month day-of-week), or `@hourly`, "
        "`@daily`, `@weekly`, `@monthly`, `@yearly`, `@midnight`, read in `timezone` "
        "(daylight saving as docs/operations.md says). Exactly one of `cron` and "
        "`every_seconds`.",
        examples=["0 3 * * *"],
    )
    every_seconds: Annotated[Int32, schema_only(minimum=1, maximum=MAX_EVERY_SECONDS)] | None = (
        Field(
            None,
            description="Fire at the multiples of this interval since the Unix epoch, "
            "instead of a cron.",
            examples=[60],
        )
    )
    timezone: Annotated[Text, schema_only(minLength=1)] = Field(
        "UTC",
        description="An IANA time zone name: the cron is read in it, and `next_run_at` "
        "is written with its offset.",
        examples=["Europe/Berlin"],
    )
    overlap: Overlap = Field(
        "skip",
        description="`skip`: a fire time is skipped (and counted in `skipped_count`) while "
        "the schedule's previous job has not finished; `allow`: fire anyway.",
    )
    catchup_window_seconds: Annotated[
        Int32, schema_only(minimum=0, maximum=MAX_CATCHUP_WINDOW_SECONDS)
    ] = Field(
        DEFAULT_CATCHUP_WINDOW_SECONDS,
        description="A fire time missed while no scheduler ran is made up once if it is "
        "younger than this; older ones are skipped.",
    )
    paused: bool = Field(
        False, description="A paused schedule makes no jobs; `trigger` still makes one."
    )
    priority: Priority = 0
    max_attempts: Annotated[Int32, schema_only(minimum=1, maximum=MAX_ATTEMPTS)] = Field(
        DEFAULT_MAX_ATTEMPTS, description="Of each job it makes."
    )
    timeout_seconds: (
        Annotated[Int32, schema_only(minimum=1, maximum=MAX_TIMEOUT_SECONDS)] | None
    ) = Field(None, description="Of each job it makes.")
    concurrency_key: ConcurrencyKey | None = Field(None, description="Of each job it makes.")

    @model_validator(mode="after")
    def _one_kind_of_time(self) -> Self:
        """Checked here as well as by the scheduler: in the message an `every_seconds` of
        0, or an empty `cron`, is not told from none."""
        if (self.cron is None) == (self.every_seconds is None):
            raise ValueError("give exactly one of cron and every_seconds")
        return self

    def to_pb(self, name: str) -> pb.Schedule:
        """Sends only the optional fields the client gave, so that the scheduler tells an
        explicit value from its default."""
        given = {
            field: getattr(self, field)
            for field in ("catchup_window_seconds", "max_attempts", "timeout_seconds")
            if field in self.model_fields_set and getattr(self, field) is not None
        }
        return pb.Schedule(
            name=name,
            command=self.command,
            cron=self.cron or "",
            every_seconds=self.every_seconds or 0,
            timezone=self.timezone,
            overlap=OVERLAP_TO_PB[self.overlap],
            paused=self.paused,
            priority=self.priority,
            concurrency_key=self.concurrency_key or "",
            **given,
        )


class ScheduleCreate(ScheduleBody):
    name: ScheduleName


class Schedule(BaseModel):
    name: str
    command: str
    cron: str | None
    every_seconds: int | None
    timezone: str
    overlap: Overlap
    catchup_window_seconds: int
    paused: bool
    priority: int
    max_attempts: int
    timeout_seconds: int | None
    concurrency_key: str | None = Field(description="Of each job it makes; null: none.")
    next_run_at: datetime | None = Field(
        description="The next fire time, with the offset of the schedule's time zone "
        "(e.g. `2026-11-29T04:00:00+01:00`); null while paused.",
    )
    last_run_at: datetime | None = Field(
        description="When it last made a job: that job's fire time, or when it was triggered."
    )
    last_job_id: int | None = Field(description="The job it made last.")
    skipped_count: int = Field(description="Fire times skipped by `overlap: skip`.")
    created_at: datetime | None
    updated_at: datetime | None


class Schedules(BaseModel):
    schedules: list[Schedule] = Field(description="By name.")


def zone_of(name: str) -> ZoneInfo | None:
    """The schedule's time zone; None if this machine does not know it (a row set by
    hand may hold anything, even a folder of the zone database)."""
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None


def in_zone(instant: datetime | None, zone: ZoneInfo | None) -> datetime | None:
    """The instant with the zone's offset there, or in UTC when the offset is not in
    whole minutes (local mean times before 1900): RFC 3339 offsets have no seconds."""
    if instant is None or zone is None:
        return instant
    try:
        local = instant.astimezone(zone)
    except OverflowError:  # near the years 1 and 9999
        return instant
    offset = local.utcoffset()
    return local if offset is not None and offset.seconds % 60 == 0 else instant


def schedule_json(schedule: pb.Schedule) -> dict[str, Any]:
    """A schedule in the shape of `Schedule`, ready for `json_bytes`."""
    return {
        "name": schedule.name,
        "command": schedule.command,
        "cron": schedule.cron or None,
        "every_seconds": schedule.every_seconds or None,
        "timezone": schedule.timezone or "UTC",
        "overlap": "allow" if schedule.overlap == pb.OVERLAP_ALLOW else "skip",
        "catchup_window_seconds": (
            schedule.catchup_window_seconds
            if schedule.HasField("catchup_window_seconds")
            else DEFAULT_CATCHUP_WINDOW_SECONDS
        ),
        "paused": schedule.paused,
        "priority": schedule.priority,
        "max_attempts": (
            schedule.max_attempts if schedule.HasField("max_attempts") else DEFAULT_MAX_ATTEMPTS
        ),
        "timeout_seconds": schedule.timeout_seconds or None,
        "concurrency_key": schedule.concurrency_key or None,
        "next_run_at": in_zone(time_of(schedule, "next_run_at"), zone_of(schedule.timezone)),
        "last_run_at": time_of(schedule, "last_run_at"),
        "last_job_id": schedule.last_job_id or None,
        "skipped_count": schedule.skipped_count,
        "created_at": time_of(schedule, "created_at"),
        "updated_at": time_of(schedule, "updated_at"),
    }
