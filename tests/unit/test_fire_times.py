"""Fire times: cron in the schedule's time zone as cronsim (and Debian's cron) evaluates it,
daylight-saving days in Europe/Berlin included, and intervals counted from the epoch."""

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from jobsched_scheduler.fire_times import FireRule, RuleError, check_cron, cron_fields

BERLIN = "Europe/Berlin"


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def fire_times(rule: FireRule, start: datetime, end: datetime) -> list[datetime]:
    """Every fire time after start up to end, found one after the other as the fire loop
    finds them: each from the last one stored."""
    found = []
    at = rule.next_after(start)
    while at is not None and at <= end:
        found.append(at)
        at = rule.next_after(at)
    return found


def test_daily_at_2_30_on_the_spring_forward_day_runs_at_3_00_once() -> None:
    # 2026-03-29: Berlin's clocks go from 02:00 CET to 03:00 CEST; 02:30 never happens.
    rule = FireRule("30 2 * * *", None, BERLIN)
    times = fire_times(rule, utc(2026, 3, 27, 12), utc(2026, 3, 31, 12))
    assert times == [
        utc(2026, 3, 28, 1, 30),  # 02:30 CET
        utc(2026, 3, 29, 1, 0),  # 03:00 CEST, at once after the gap
        utc(2026, 3, 30, 0, 30),  # 02:30 CEST
        utc(2026, 3, 31, 0, 30),
    ]


def test_hourly_on_the_spring_forward_day_has_23_runs() -> None:
    rule = FireRule("0 * * * *", None, BERLIN)
    day = fire_times(rule, utc(2026, 3, 28, 23) - timedelta(seconds=1), utc(2026, 3, 29, 21, 59))
    assert len(day) == 23
    assert utc(2026, 3, 29, 0) in day and utc(2026, 3, 29, 1) in day  # 01:00 CET, 03:00 CEST
    assert all(b - a == timedelta(hours=1) for a, b in itertools.pairwise(day))


def test_daily_at_2_30_on_the_fall_back_day_runs_once() -> None:
    # 2026-10-25: Berlin's clocks go from 03:00 CEST back to 02:00 CET; 02:30 happens twice.
    rule = FireRule("30 2 * * *", None, BERLIN)
    times = fire_times(rule, utc(2026, 10, 24, 12), utc(2026, 10, 26, 12))
    assert times == [utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)]  # CEST, then CET


def test_daily_at_2_30_found_from_inside_the_repeated_hour_is_not_run_again() -> None:
    # A scheduler that starts (or resumes) at 02:00 CET, after the 02:30 CEST run.
    rule = FireRule("30 2 * * *", None, BERLIN)
    assert rule.next_after(utc(2026, 10, 25, 1, 0)) == utc(2026, 10, 26, 1, 30)


def test_hourly_on_the_fall_back_day_has_25_runs_two_of_them_at_2_00() -> None:
    rule = FireRule("0 * * * *", None, BERLIN)
    day = fire_times(rule, utc(2026, 10, 24, 22) - timedelta(seconds=1), utc(2026, 10, 25, 22, 59))
    assert len(day) == 25
    assert utc(2026, 10, 25, 0) in day and utc(2026, 10, 25, 1) in day  # 02:00 CEST, CET
    assert all(b - a == timedelta(hours=1) for a, b in itertools.pairwise(day))


def test_latest_at_or_before_includes_the_time_itself() -> None:
    rule = FireRule("*/15 * * * *", None, "UTC")
    assert rule.latest_at_or_before(utc(2026, 1, 1, 5, 0)) == utc(2026, 1, 1, 5, 0)
    assert rule.latest_at_or_before(utc(2026, 1, 1, 5, 15) - timedelta(seconds=1)) == utc(
        2026, 1, 1, 5, 0
    )
    assert rule.next_after(utc(2026, 1, 1, 5, 0)) == utc(2026, 1, 1, 5, 15)


def test_cron_is_read_in_the_schedules_time_zone() -> None:
    rule = FireRule("0 4 * * *", None, BERLIN)
    assert rule.next_after(utc(2026, 11, 28, 12)) == utc(2026, 11, 29, 3)  # 04:00 CET
    assert rule.next_after(utc(2026, 7, 1, 12)) == utc(2026, 7, 2, 2)  # 04:00 CEST


def test_intervals_are_counted_from_the_epoch_whatever_the_zone() -> None:
    rule = FireRule(None, 60, BERLIN)
    assert rule.next_after(utc(2026, 1, 1, 5, 0) + timedelta(seconds=30)) == utc(2026, 1, 1, 5, 1)
    assert rule.next_after(utc(2026, 1, 1, 5, 1)) == utc(2026, 1, 1, 5, 2)
    assert rule.latest_at_or_before(utc(2026, 1, 1, 5, 1)) == utc(2026, 1, 1, 5, 1)
    assert rule.latest_at_or_before(utc(2026, 1, 1, 5, 2) - timedelta(seconds=1)) == utc(
        2026, 1, 1, 5, 1
    )
    every_7 = FireRule(None, 7, "UTC")
    fire = every_7.next_after(utc(2026, 1, 1))
    assert fire is not None and fire.timestamp() % 7 == 0


@pytest.mark.parametrize(
    ("alias", "fields"),
    [
        ("@hourly", "0 * * * *"),
        ("@daily", "0 0 * * *"),
        ("@midnight", "0 0 * * *"),
        ("@weekly", "0 0 * * 0"),
        ("@monthly", "0 0 1 * *"),
        ("@yearly", "0 0 1 1 *"),
        ("@annually", "0 0 1 1 *"),
    ],
)
def test_nicknames_are_spelled_out(alias: str, fields: str) -> None:
    assert cron_fields(alias) == fields
    check_cron(alias)


def test_a_weekly_nickname_fires_on_sunday_midnight_in_its_zone() -> None:
    rule = FireRule("@weekly", None, BERLIN)
    assert rule.next_after(utc(2026, 11, 25, 12)) == utc(2026, 11, 28, 23)  # Sun 00:00 CET


@pytest.mark.parametrize(
    ("expr", "says"),
    [
        ("61 * * * *", "Bad minute"),
        ("* * * *", "five fields"),
        ("0 * * * * *", "five fields"),
        ("@reboot", "unknown nickname"),
        ("* * 32 * *", "Bad day-of-month"),
        ("0 0 30 2 *", "Bad day-of-month"),
    ],
)
def test_a_bad_cron_is_refused_with_the_reason(expr: str, says: str) -> None:
    with pytest.raises(RuleError, match=says):
        check_cron(expr)


def test_a_date_that_never_comes_has_no_fire_time() -> None:
    # The 1st or 21st of a month that is also its last Monday (cronsim's own example).
    assert FireRule("0 0 */20 * 1L", None, "UTC").next_after(utc(2026, 1, 1)) is None
