"""The lease sweep: attempts whose runner stopped heartbeating end as "runner lost"."""

import asyncio
import logging

from .store import PgStore

log = logging.getLogger(__name__)


async def sweep_leases(store: PgStore, interval: float, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), interval)
            return
        except TimeoutError:
            pass
        try:
            lost = await store.expire_leases()
        except Exception as exc:
            log.warning("Lease sweep failed: %s", exc)
            continue
        for key in lost:
            log.warning("Job %d attempt %d failed: runner lost", key.job_id, key.attempt)
