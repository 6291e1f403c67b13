"""Listens on the `jobsched_events` channel that the database triggers fill.

Every insert and status change, by any scheduler or by hand with SQL, arrives here:
it wakes dispatch when a slot or a job may be waiting, and feeds event watchers.
Notifications sent while the listening connection was down are lost: each time it is
(re)established, watchers get a `resync` event, and re-read what they show."""

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import psycopg
from jobsched_common.limits import TERMINAL_STATUSES, WAITING_STATUSES

from .store import CONNECTION_OPTIONS

log = logging.getLogger(__name__)

CHANNEL = "jobsched_events"
# Sent by migration 008's trigger when any schedule changes.
SCHEDULES_CHANGED = '"schedules"'
WATCHER_BUFFER = 10_000


@dataclass(frozen=True)
class JobEvent:
    job_id: int
    status: str
    attempt: int
    at: datetime
    config_changed: bool = False  # an event of the configuration: no job
    resync: bool = False  # events may have been missed: re-read the state; no job


def config_event() -> JobEvent:
    return JobEvent(0, "", 0, datetime.now(UTC), config_changed=True)


def resync_event() -> JobEvent:
    return JobEvent(0, "", 0, datetime.now(UTC), resync=True)


def parse_payload(payload: str) -> tuple[list[JobEvent], bool]:
    """Returns the job events in a notification and whether the config changed."""
    data = json.loads(payload)
    if data == "config":
        return [], True
    now = datetime.now(UTC)
    return [JobEvent(int(i), str(s), int(a), now) for i, s, a in data], False


def new_work(events: list[JobEvent]) -> bool:
    """A job was queued, or scheduled to fall due before dispatch would otherwise wake."""
    return any(e.status in WAITING_STATUSES for e in events)


def slots_freed(events: list[JobEvent]) -> bool:
    return any(e.status in TERMINAL_STATUSES for e in events)


@dataclass(eq=False)  # identity: each watcher is its own subscription
class Watcher:
    queue: asyncio.Queue[JobEvent] = field(default_factory=lambda: asyncio.Queue(WATCHER_BUFFER))
    # Set when the watcher fell too far behind and was cut off.
    dropped: bool = False


class EventHub:
    def __init__(
        self,
        database_url: str,
        on_wake: Callable[[], None],
        on_schedules: Callable[[], None] = lambda: None,
        on_slots_freed: Callable[[], None] | None = None,
    ):
        """`on_wake` for new work or a changed config, `on_slots_freed` (by default the
        same) for jobs that ended, `on_schedules` for changed schedules."""
        self.database_url = database_url
        self.on_wake = on_wake
        self.on_schedules = on_schedules
        self.on_slots_freed = on_slots_freed or on_wake
        self._watchers: set[Watcher] = set()

    def subscribe(self) -> Watcher:
        watcher = Watcher()
        self._watchers.add(watcher)
        return watcher

    def unsubscribe(self, watcher: Watcher) -> None:
        self._watchers.discard(watcher)

    def publish(self, events: list[JobEvent]) -> None:
        for watcher in list(self._watchers):
            try:
                for event in events:
                    watcher.queue.put_nowait(event)
            except asyncio.QueueFull:
                # A watcher that cannot keep up is cut off rather than slowing us.
                watcher.dropped = True
                self._watchers.discard(watcher)

    async def run(self, stop: asyncio.Event) -> None:
        """Listens until stopped, reconnecting when the database goes away."""
        delay = 0.2
        while not stop.is_set():
            try:
                await self._listen(stop)
                delay = 0.2
            except (psycopg.Error, OSError) as exc:
                log.warning("Event listener lost the database (%s); retrying in %.1fs", exc, delay)
                try:
                    await asyncio.wait_for(stop.wait(), delay)
                except TimeoutError:
                    pass
                delay = min(delay * 2, 5.0)

    async def _listen(self, stop: asyncio.Event) -> None:
        async with await psycopg.AsyncConnection.connect(
            self.database_url, autocommit=True, **CONNECTION_OPTIONS
        ) as conn:
            await conn.execute(f"LISTEN {CHANNEL}")
            # Notifications sent while we were away are lost: look at the table once,
            # and have every watcher do the same (listening already, so none is missed).
            self.on_wake()
            self.on_schedules()
            if self._watchers:
                log.info("Listening for events: %d watcher(s) told to resync", len(self._watchers))
            self.publish([resync_event()])
            while not stop.is_set():
                async for note in conn.notifies(timeout=1.0):
                    self._handle(note.payload)

    def _handle(self, payload: str) -> None:
        if payload == SCHEDULES_CHANGED:
            self.on_schedules()
            return
        try:
            events, config_changed = parse_payload(payload)
        except (ValueError, TypeError) as exc:
            log.warning("Ignoring malformed notification %r: %s", payload[:200], exc)
            return
        if config_changed or new_work(events):
            self.on_wake()
        elif slots_freed(events):
            self.on_slots_freed()
        if config_changed:
            events = [config_event()]
        if events:
            self.publish(events)
