"""The last hour (or any window up to a day) a minute at a time, from the scheduler's own
records: job_attempts (claimed, started, finished) and jobs (created, final status, key).

- `running`: the most attempts open at once during the minute (an attempt is open from
  its claim to its end), by a sweep over starts and ends; so a minute of many short jobs
  shows the peak it reached, never a sum of everything that overlapped it.
- `limit` and `key_limit`: today's values on every point. Changes of a limit are not
  recorded, so a past minute shows the limit as it is now, not as it was then.
- `completed`, `failed`, `cancelled`: jobs that ended in the minute, by final status
  (a job cancelled before it ever ran counts too).
- waits: creation to start of first attempts started in the minute (0 when none)."""

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from jobsched_common.limits import DEFAULT_MAX_CONCURRENT_JOBS
from psycopg.rows import class_row
from psycopg_pool import AsyncConnectionPool

from . import validation
from .errors import InvalidValue, Unavailable
from .queries import q

DEFAULT_WINDOW_SECONDS = 3600
MAX_WINDOW_SECONDS = 86_400


@dataclass(frozen=True)
class SeriesPoint:
    at: datetime
    running: int
    limit: int
    key_running: int
    key_limit: int | None
    completed: int
    failed: int
    cancelled: int
    wait_p50_seconds: float
    wait_p95_seconds: float


def window_minutes(window_seconds: int) -> int:
    """How many points a window takes: 0 means an hour."""
    if window_seconds < 0 or window_seconds > MAX_WINDOW_SECONDS:
        raise InvalidValue(f"window_seconds: must be 0..{MAX_WINDOW_SECONDS}")
    return math.ceil((window_seconds or DEFAULT_WINDOW_SECONDS) / 60)


def series_key(key: str) -> str | None:
    return validation.concurrency_key(key) if key else None


class PgSeries:
    def __init__(self, pool: AsyncConnectionPool[Any]):
        self.pool = pool

    async def series(self, window_seconds: int, key: str) -> list[SeriesPoint]:
        params = {
            "minutes": window_minutes(window_seconds),
            "key": series_key(key),
            "default_limit": DEFAULT_MAX_CONCURRENT_JOBS,
        }
        try:
            async with self.pool.connection() as conn:
                cur = conn.cursor(row_factory=class_row(SeriesPoint))
                await cur.execute(q("series"), params)
                points: list[SeriesPoint] = await cur.fetchall()
                return points
        except psycopg.OperationalError as exc:
            raise Unavailable("database unavailable") from exc
