"""The retention sweep: finished jobs older than their status's retention are deleted,
with their attempts and output, a small batch to a transaction, so that the sweep never
holds many rows nor long (rows another transaction holds are left for the next run).
The counters lose the jobs by trigger, as with any delete. Entries of the audit log
older than its retention go the same way. A run that deleted anything is recorded in
the audit log (actor `retention`) once it is done."""

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from .bulk import PgBulk

log = logging.getLogger(__name__)

BATCH = 500


# The key of Retention.days for the audit log's own entries.
AUDIT = "audit"


@dataclass(frozen=True)
class Retention:
    """Days each finished status (and the audit log, as AUDIT) is kept; one left out is
    kept for good."""

    days: dict[str, float]

    @property
    def active(self) -> bool:
        return bool(self.days)


async def sweep_once(bulk: PgBulk, retention: Retention, batch: int = BATCH) -> dict[str, int]:
    """One run: deletes what has expired, batch by batch; returns how many of each status."""
    deleted: dict[str, int] = {}
    cutoffs: dict[str, str] = {}
    for status, days in sorted(retention.days.items()):
        cutoff = datetime.now(UTC) - timedelta(days=days)
        cutoffs[status] = cutoff.isoformat()
        total = 0
        while True:
            if status == AUDIT:
                count = await bulk.delete_expired_audit(cutoff, batch)
                what = "audit log entries written"
            else:
                count = await bulk.delete_expired(status, cutoff, batch)
                what = f"{status} jobs finished"
            total += count
            if count:
                log.info(
                    "Retention: deleted %d %s before %s (%d so far)",
                    count,
                    what,
                    f"{cutoff:%Y-%m-%d %H:%M:%S} UTC",
                    total,
                )
            # A short batch of jobs is the last; one of audit entries may be a window that
            # reaches entries still young, so only none deleted ends those.
            if count == 0 or (count < batch and status != AUDIT):
                break
        deleted[status] = total
    if any(deleted.values()):
        await bulk.record_retention(deleted, cutoffs)
    return deleted


async def sweep_retention(
    bulk: PgBulk, retention: Retention, interval: float, stop: asyncio.Event
) -> None:
    """Runs at start, then every `interval` seconds, until stopped."""
    while not stop.is_set():
        try:
            deleted = await sweep_once(bulk, retention)
            if any(deleted.values()):
                log.info("Retention run done: %s", _described(deleted))
        except Exception as exc:
            log.warning("Retention sweep failed: %s", exc)
        try:
            await asyncio.wait_for(stop.wait(), interval)
        except TimeoutError:
            pass


def _described(deleted: dict[str, int]) -> str:
    return ", ".join(f"{n} {status}" for status, n in deleted.items())
