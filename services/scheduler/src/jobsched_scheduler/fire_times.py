"""When a schedule fires: cron expressions evaluated by cronsim in the schedule's time
zone (daylight saving as cronsim, like Debian's cron, handles it), or fixed intervals
counted from the Unix epoch. Every time in and out is an aware UTC datetime."""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

# cronsim reads five (or six) fields only: the usual nicknames are spelled out here.
CRON_ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# cronsim may answer a time at or before the start around a daylight-saving change
# (started inside a repeated hour, it sees only the wall clock); the next few answers
# are past it.
_MAX_STEPS = 8
_TICK = timedelta(microseconds=1)


class RuleError(ValueError):
    """A cron expression or time zone that cannot be used, with the reason."""


@dataclass(frozen=True)
class FireRule:
    """Exactly one of cron and every_seconds is set."""

    cron: str | None
    every_seconds: int | None
    timezone: str = "UTC"

    def next_after(self, after: datetime) -> datetime | None:
        """The first fire time strictly after `after`; None when there is none (a cron
        date that never comes, such as 30 February)."""
        if self.every_seconds is not None:
            return EPOCH + (_steps(after, self.every_seconds) + 1) * self._every
        return _first(self._cron(after, reverse=False), lambda t: t > after)

    def latest_at_or_before(self, at: datetime) -> datetime | None:
        """The last fire time at or before `at`."""
        if self.every_seconds is not None:
            return EPOCH + _steps(at, self.every_seconds) * self._every
        return _first(self._cron(at + _TICK, reverse=True), lambda t: t <= at)

    @property
    def _every(self) -> timedelta:
        assert self.every_seconds is not None
        return timedelta(seconds=self.every_seconds)

    def _cron(self, start: datetime, reverse: bool) -> CronSim:
        assert self.cron is not None
        local = start.astimezone(zone(self.timezone))
        try:
            return CronSim(cron_fields(self.cron), local, reverse)
        except CronSimError as exc:  # only a row set by hand gets past validation
            raise RuleError(str(exc)) from None


def _steps(at: datetime, every_seconds: int) -> int:
    """Whole intervals from the epoch to `at`."""
    return int((at - EPOCH) // timedelta(seconds=every_seconds))


def _first(times: CronSim, wanted: Callable[[datetime], bool]) -> datetime | None:
    for _ in range(_MAX_STEPS):
        try:
            found = next(times).astimezone(UTC)
        except StopIteration:
            return None
        if wanted(found):
            return found
    return None


def cron_fields(expr: str) -> str:
    """The five fields of a cron expression, its nickname spelled out."""
    return CRON_ALIASES.get(expr.strip().lower(), expr)


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise RuleError(f"unknown time zone '{name}'") from exc


def check_cron(expr: str) -> None:
    """Raises RuleError with cronsim's reason when the expression cannot be used."""
    fields = cron_fields(expr)
    if fields.startswith("@"):
        raise RuleError(f"unknown nickname '{expr}'; use one of {', '.join(CRON_ALIASES)}")
    if len(fields.split()) != 5:
        raise RuleError("expected five fields (minute hour day-of-month month day-of-week)")
    try:
        CronSim(fields, datetime.now(UTC))
    except CronSimError as exc:
        raise RuleError(str(exc)) from None
