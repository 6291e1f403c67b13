"""Which connected runners may take new work, and what becomes of an assignment that
no runner acknowledged.

A runner is heard from by its heartbeats. One silent for two heartbeat intervals gets
no new work; one silent for a lease has its stream ended (gRPC keepalive usually ends a
dead stream sooner). A runner whose leases the sweep has just expired gets none until
it heartbeats again. An assignment must be acknowledged (any message naming it:
started, output, finished, a heartbeat, a registration) within the ack timeout, or its
attempt ends as "not acknowledged" and is retried by the normal rule: the attempt's
number is its fence, so a late start of it reports nothing, and its runner is told to
kill it and gets no new work until it names that attempt again. One whose lease was
renewed since its claim (its runner took it to another scheduler) is left to its lease."""

import asyncio
import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from .model import AttemptKey
from .ports import Store

log = logging.getLogger(__name__)

NOT_ACKNOWLEDGED = "not acknowledged"
NOT_DELIVERED = "not delivered"
# How often overdue acknowledgements and silent runners are looked for.
CHECK_SECONDS = 0.25
# A check this much later than planned means this process was frozen or starved.
STALL_SECONDS = 1.0


@dataclass(eq=False)  # identity: each stream is its own runner
class Heard:
    """What the scheduler has heard of one connected runner."""

    runner_id: str
    at: float  # its last heartbeat or registration, on the liveness clock
    # The sweep expired leases it held: no new work until it heartbeats again.
    leases_lost: bool = False
    # Its assignments that timed out unacknowledged; it gets no new work while it has
    # any, since it may be dropping what it is sent, until it names them again.
    dropped: set[AttemptKey] = field(default_factory=set)
    # Set to end its stream: it has been silent for a lease.
    hang_up: asyncio.Event = field(default_factory=asyncio.Event)


class Sent:
    """An assignment awaiting its acknowledgement: to whom, and until when."""

    __slots__ = ("deadline", "heard", "kill", "release")

    def __init__(
        self,
        heard: Heard,
        deadline: float,
        kill: Callable[[list[AttemptKey], str], None],
        release: Callable[[list[AttemptKey]], None],
    ):
        self.heard = heard
        self.deadline = deadline
        self.kill = kill
        self.release = release


class Liveness:
    def __init__(
        self,
        store: Store,
        silence_limit: float = math.inf,
        hang_up_after: float = math.inf,
        ack_timeout: float = math.inf,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.store = store
        self.silence_limit = silence_limit
        self.hang_up_after = hang_up_after
        self.ack_timeout = ack_timeout
        self.clock = clock
        self.runners: set[Heard] = set()
        self._awaiting: dict[AttemptKey, Sent] = {}

    # --- what the runner link and dispatch tell it ----------------------------------------

    def connected(self, runner_id: str) -> Heard:
        heard = Heard(runner_id, self.clock())
        self.runners.add(heard)
        return heard

    def disconnected(self, heard: Heard) -> None:
        """Its unacknowledged assignments stay awaited: the runner may come back with
        them (its registration acknowledges them), else they end at their deadline."""
        self.runners.discard(heard)

    def eligible(self, heard: Heard) -> bool:
        silent = self.clock() - heard.at > self.silence_limit
        return not (silent or heard.leases_lost or heard.dropped)

    def heartbeat(self, heard: Heard, keys: Iterable[AttemptKey]) -> None:
        heard.at = self.clock()
        heard.leases_lost = False
        self.acknowledged(heard, keys)

    def acknowledged(self, heard: Heard, keys: Iterable[AttemptKey]) -> None:
        """Only the runner an attempt was sent to acknowledges it (on any stream)."""
        for key in keys:
            sent = self._awaiting.get(key)
            if sent is not None and sent.heard.runner_id == heard.runner_id:
                del self._awaiting[key]
            heard.dropped.discard(key)

    def sent(
        self,
        heard: Heard,
        keys: Iterable[AttemptKey],
        kill: Callable[[list[AttemptKey], str], None],
        release: Callable[[list[AttemptKey]], None],
    ) -> None:
        if math.isinf(self.ack_timeout):
            return
        deadline = self.clock() + self.ack_timeout
        for key in keys:
            self._awaiting[key] = Sent(heard, deadline, kill, release)

    def leases_expired(self, held_by: Iterable[Heard]) -> None:
        for heard in held_by:
            heard.leases_lost = True

    # --- the watch ------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            waited_from = self.clock()
            try:
                await asyncio.wait_for(stop.wait(), CHECK_SECONDS)
                return
            except TimeoutError:
                pass
            self.stalled(self.clock() - waited_from - CHECK_SECONDS)
            try:
                await self.check()
            except Exception as exc:  # the database may be away; the next check retries
                log.warning("Ending unacknowledged assignments failed: %s", exc)

    def stalled(self, seconds: float) -> None:
        """This process was frozen or starved for so long: what it could not hear then
        is no runner's fault, so every runner's silence and every wait for an
        acknowledgement counts without that time (the messages may be read, not yet)."""
        if seconds < STALL_SECONDS:
            return
        log.warning("The scheduler was stalled for %.1fs; liveness counts from now", seconds)
        for heard in self.runners:
            heard.at += seconds
        for sent in self._awaiting.values():
            sent.deadline += seconds

    async def check(self) -> None:
        now = self.clock()
        for heard in self.runners:
            if now - heard.at > self.hang_up_after and not heard.hang_up.is_set():
                heard.hang_up.set()
        overdue = [key for key, sent in self._awaiting.items() if sent.deadline <= now]
        if overdue:
            await self._give_up(overdue)

    async def _give_up(self, keys: list[AttemptKey]) -> None:
        """Ends the attempts first: should that fail, they stay awaited and the next
        check tries again (and the lease sweep remains behind it). One acknowledged
        while this waited on the store has ended all the same: its runner must kill it."""
        sent = {key: self._awaiting[key] for key in keys}
        ended = set(await self.store.end_attempts(keys, NOT_ACKNOWLEDGED))
        for key, item in sent.items():
            unheard = self._awaiting.pop(key, None) is not None
            item.release([key])
            if key not in ended:
                continue  # it ended meanwhile, by a report or the lease sweep
            if unheard:
                item.heard.dropped.add(key)
            item.kill([key], NOT_ACKNOWLEDGED)
            extra = {"job_id": key.job_id}
            log.warning(
                "Job %d attempt %d: %s by runner %s",
                key.job_id,
                key.attempt,
                NOT_ACKNOWLEDGED,
                item.heard.runner_id,
                extra=extra,
            )
