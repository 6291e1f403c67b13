"""The lease sweep: attempts whose runner stopped heartbeating end as "runner lost"
(or are retried when attempts remain).

Expiring a lease at any time is safe, also right after a scheduler restart or a
database outage: a runner kills any job whose lease it could not renew for 70% of a
TTL, so by the time a lease has expired its command is gone. A runner that registers
again without some of its attempts ends their leases at once (runner_link.py)."""

import asyncio
import logging
from collections.abc import Callable

from .model import AttemptKey
from .ports import Store

log = logging.getLogger(__name__)


async def sweep_leases(
    store: Store,
    interval: float,
    stop: asyncio.Event,
    on_lost: Callable[[list[AttemptKey]], None] = lambda keys: None,
) -> None:
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
        log_lost(lost)
        if lost:
            on_lost(lost)


def log_lost(keys: list[AttemptKey]) -> None:
    for key in keys:
        extra = {"job_id": key.job_id}
        log.warning("Job %d attempt %d: runner lost", key.job_id, key.attempt, extra=extra)
