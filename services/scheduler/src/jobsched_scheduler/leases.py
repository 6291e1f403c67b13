"""The lease sweep: attempts whose runner stopped heartbeating end as "runner lost"
(or are retried when attempts remain)."""

import asyncio
import logging
import time

from .store import PgStore

log = logging.getLogger(__name__)


async def sweep_leases(
    store: PgStore, interval: float, lease_ttl: float, stop: asyncio.Event
) -> None:
    # While the database is away no runner can renew a lease. After it returns, give
    # every live runner a whole lease to heartbeat before anything counts as lost.
    healthy_since: float | None = None
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), interval)
            return
        except TimeoutError:
            pass
        try:
            if healthy_since is None:
                await store.ping()
                healthy_since = time.monotonic()
            if time.monotonic() - healthy_since < lease_ttl:
                continue
            lost = await store.expire_leases()
        except Exception as exc:
            healthy_since = None
            log.warning("Lease sweep failed: %s", exc)
            continue
        for key in lost:
            log.warning("Job %d attempt %d: runner lost", key.job_id, key.attempt)
