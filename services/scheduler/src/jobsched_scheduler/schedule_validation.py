"""A schedule a client sends, checked against `jobsched_common.limits` as validation.py
checks jobs; what breaks a rule is refused as `InvalidValue("field: problem")`."""

from datetime import UTC, datetime

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

from .errors import InvalidValue
from .fire_times import MAX_ZONE_CHARS, RuleError, check_cron, zone
from .schedule_model import ScheduleSpec
from .validation import _command, _in_range, concurrency_key, priority, shown_as_is

OVERLAP_FROM_PB: dict[int, str] = {
    pb.OVERLAP_UNSPECIFIED: "skip",
    pb.OVERLAP_SKIP: "skip",
    pb.OVERLAP_ALLOW: "allow",
}


def new_schedule(schedule: pb.Schedule) -> ScheduleSpec:
    """The schedule a Create or Update asks for, with the defaults for what it leaves
    unset. Output-only fields are ignored."""
    name(schedule.name)
    _command(schedule.command)
    cron, every_seconds = _rule(schedule.cron, schedule.every_seconds)
    timezone = _timezone(schedule.timezone or "UTC")
    catchup = _given(schedule, "catchup_window_seconds", 0, MAX_CATCHUP_WINDOW_SECONDS)
    max_attempts = _given(schedule, "max_attempts", 1, MAX_ATTEMPTS)
    spec = ScheduleSpec(
        name=schedule.name,
        command=schedule.command,
        cron=cron,
        every_seconds=every_seconds,
        timezone=timezone,
        overlap=_overlap(schedule.overlap),
        catchup_window_seconds=DEFAULT_CATCHUP_WINDOW_SECONDS if catchup is None else catchup,
        paused=schedule.paused,
        priority=priority(schedule.priority),
        max_attempts=1 if max_attempts is None else max_attempts,
        timeout_seconds=_given(schedule, "timeout_seconds", 1, MAX_TIMEOUT_SECONDS),
        concurrency_key=concurrency_key(schedule.concurrency_key)
        if schedule.concurrency_key
        else None,
    )
    if cron is not None and spec.rule.next_after(datetime.now(UTC)) is None:
        raise InvalidValue("cron: Input never fires")
    return spec


def name(value: str) -> str:
    """A schedule's name; its jobs are named "{name}@{time}"."""
    ref(value)
    if "@" in value:
        raise InvalidValue("name: Input should not contain '@' (it separates the job names)")
    return value


def ref(value: str) -> str:
    """The name a request refers to a schedule by (it is echoed in a not-found error)."""
    if not value.strip():
        raise InvalidValue("name: Input should not be blank")
    if len(value) > MAX_SCHEDULE_NAME_CHARS:
        raise InvalidValue(f"name: Input should have at most {MAX_SCHEDULE_NAME_CHARS} characters")
    shown_as_is("name", value)
    return value


def _rule(cron: str, every_seconds: int) -> tuple[str | None, int | None]:
    """(cron, None) or (None, every_seconds): exactly one is set."""
    if bool(cron) == bool(every_seconds):
        raise InvalidValue("cron: Input should be given, or every_seconds, but not both")
    if every_seconds:
        return None, _in_range("every_seconds", every_seconds, 1, MAX_EVERY_SECONDS)
    if len(cron) > MAX_CRON_CHARS:
        raise InvalidValue(f"cron: Input should have at most {MAX_CRON_CHARS} characters")
    try:
        check_cron(cron)
    except RuleError as exc:
        raise InvalidValue(f"cron: {exc}") from None
    return cron.strip(), None


def _timezone(value: str) -> str:
    if len(value) > MAX_ZONE_CHARS:
        raise InvalidValue(f"timezone: Input should have at most {MAX_ZONE_CHARS} characters")
    try:
        zone(value)
    except RuleError as exc:
        raise InvalidValue(f"timezone: {exc}") from None
    return value


def _overlap(value: int) -> str:
    overlap = OVERLAP_FROM_PB.get(value)
    if overlap is None:
        raise InvalidValue(f"overlap: Input should be skip or allow, not {value}")
    return overlap


def _given(schedule: pb.Schedule, field: str, low: int, high: int) -> int | None:
    """An optional field's value, in range; None when unset."""
    if not schedule.HasField(field):  # type: ignore[arg-type]
        return None
    return _in_range(field, getattr(schedule, field), low, high)
