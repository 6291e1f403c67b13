"""The slot calculation: when woken, hand free slots to connected runners.

Knows nothing of gRPC: a runner is a capacity, a set of attempts it runs and a
callback that delivers assignments. Every claim goes through the store's one
serialised transaction, so several schedulers never exceed the limit together.

What wakes it: every insert, status change and config change, by any scheduler or by
hand, arrives as a notification (events.py) and wakes it once; so does a runner that
connects. Nothing else calls wake(), so that one change costs one claim cycle. A job
that ended wakes it only when the last cycle left queued jobs unclaimed: the slot is
of use to nobody else, and a job queued since wakes it by itself. Under a stream of
single creates that spares a quarter of the claims. A job that ends while a claim is
under way is weighed against that claim's answer, not the last one's: waking dispatch
at once, such jobs made three claims in ten claims of nothing.

Only runners that liveness.py finds alive get work; a claim that cannot be delivered
ends at once ("not delivered", retried by the normal rule) instead of a lease later."""

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from . import metrics
from .liveness import NOT_DELIVERED, Heard, Liveness
from .model import AttemptKey, Claimed, ClaimResult
from .ports import Store

log = logging.getLogger(__name__)
# Under load, dispatch runs hundreds of cycles a second: this many seconds apart at most,
# one is logged at INFO.
CYCLE_LOG_SECONDS = 1.0
# How long to wait after a failed cycle before the next one may run.
RETRY_PAUSE_SECONDS = 1.0


@dataclass
class ConnectedRunner:
    runner_id: str
    capacity: int
    deliver: Callable[[list[Claimed]], None]
    kill: Callable[[list[AttemptKey], str], None]
    active: set[AttemptKey] = field(default_factory=set)
    draining: bool = False
    heard: Heard = field(default_factory=lambda: Heard("", time.monotonic()))

    @property
    def free(self) -> int:
        return 0 if self.draining else max(0, self.capacity - len(self.active))


class Dispatcher:
    def __init__(self, store: Store, check_interval: float, liveness: Liveness | None = None):
        self.store = store
        self.check_interval = check_interval
        self.liveness = liveness or Liveness(store)
        self.runners: dict[str, ConnectedRunner] = {}
        metrics.RUNNERS.set_function(lambda: len(self.runners))
        self._wake = asyncio.Event()
        self._next_due_at: datetime | None = None
        self._told_at = -CYCLE_LOG_SECONDS  # when a cycle was last logged at INFO
        self._untold = 0  # jobs assigned since, in cycles logged at DEBUG
        # The last cycle left queued jobs unclaimed, or made no claim to tell.
        self._left_waiting = True
        self._claiming = False
        self._freed_while_claiming = False

    def wake(self) -> None:
        self._wake.set()

    def slots_freed(self) -> None:
        """A job ended somewhere. Only a job the last cycle left waiting (for a slot, the
        limit, a key's room or a dependency) can use what it freed."""
        if self._claiming:
            self._freed_while_claiming = True
        elif self._left_waiting:
            self.wake()

    def attach(self, runner: ConnectedRunner) -> None:
        runner.heard = self.liveness.connected(runner.runner_id)
        self.runners[runner.runner_id] = runner
        self.wake()

    def detach(self, runner: ConnectedRunner) -> None:
        self.liveness.disconnected(runner.heard)
        if self.runners.get(runner.runner_id) is runner:
            del self.runners[runner.runner_id]

    def kill(self, runner_id: str, key: AttemptKey, reason: str) -> bool:
        """Stops an attempt at once if its runner is connected here. Otherwise the
        runner learns it at its next heartbeat, through whichever scheduler it uses."""
        runner = self.runners.get(runner_id)
        if runner is None or key not in runner.active:
            return False
        runner.kill([key], reason)
        return True

    def release(self, runner: ConnectedRunner, keys: list[AttemptKey]) -> None:
        """The runner's processes for these attempts have ended: its slots are free."""
        runner.active.difference_update(keys)
        self.liveness.acknowledged(runner.heard, keys)

    def acknowledged(self, runner: ConnectedRunner, keys: list[AttemptKey]) -> None:
        """The runner named these attempts: it has them."""
        self.liveness.acknowledged(runner.heard, keys)

    def heartbeat(self, runner: ConnectedRunner, keys: list[AttemptKey]) -> None:
        self.liveness.heartbeat(runner.heard, keys)

    def leases_expired(self, keys: list[AttemptKey]) -> None:
        """The sweep ended these attempts: whoever held them here gets no new work
        until it heartbeats again."""
        lost = set(keys)
        self.liveness.leases_expired(r.heard for r in self.runners.values() if r.active & lost)

    async def run(self, stop: asyncio.Event) -> None:
        stopper = asyncio.ensure_future(stop.wait())
        try:
            while not stop.is_set():
                waker = asyncio.ensure_future(self._wake.wait())
                done, _ = await asyncio.wait(
                    {waker, stopper}, timeout=self._timeout(), return_when="FIRST_COMPLETED"
                )
                waker.cancel()
                if stopper in done:
                    return
                self._wake.clear()
                try:
                    await self.dispatch_once(timer=not done)
                except Exception as exc:  # the database may be away; the next cycle retries
                    log.warning("Dispatch cycle failed: %s", exc)
                    await _pause(stop, RETRY_PAUSE_SECONDS)
        finally:
            stopper.cancel()

    def _timeout(self) -> float:
        """The safety-net interval, or sooner when a `scheduled` job falls due."""
        if self._next_due_at is None:
            return self.check_interval
        due = (self._next_due_at - datetime.now(UTC)).total_seconds()
        return min(self.check_interval, max(due, 0.0) + 0.01)

    async def dispatch_once(self, timer: bool = False) -> ClaimResult | None:
        self._left_waiting = True  # until a claim tells otherwise
        free = {runner_id: n for runner_id, n in self.offered().items() if n > 0}
        if not free:
            if timer:
                log.info("No free runner capacity (%d runner(s) connected)", len(self.runners))
            if not (timer or self._due()):
                return None
        result = await self._claim(free)
        self._next_due_at = result.next_due_at
        metrics.QUEUE_DEPTH.set(result.queued - result.claimed)
        metrics.RUNNING.set(result.running + result.claimed)
        metrics.LIMIT.set(result.limit)
        metrics.JOBS_STARTED.inc(result.claimed)
        self._log_cycle(result, timer)
        undelivered: list[AttemptKey] = []
        for runner_id, claimed in result.by_runner.items():
            runner = self.runners.get(runner_id)
            if runner is None or not self._deliver(runner, claimed):
                undelivered += [c.key for c in claimed]
        if undelivered:
            await self._end_undelivered(undelivered)
        return result

    async def _claim(self, free: dict[str, int]) -> ClaimResult:
        """The store's claim; a job that ended meanwhile wakes the next cycle if this
        claim left jobs waiting (or failed)."""
        self._claiming, self._freed_while_claiming = True, False
        try:
            result = await self.store.claim(free)
            self._left_waiting = result.queued > result.claimed
            return result
        finally:
            self._claiming = False
            if self._freed_while_claiming and self._left_waiting:
                self.wake()

    def offered(self) -> dict[str, int]:
        """The free slots the claim may fill, by runner: none of a runner that is not
        alive enough for new work (liveness.py)."""
        return {
            r.runner_id: r.free if self.liveness.eligible(r.heard) else 0
            for r in self.runners.values()
        }

    def _deliver(self, runner: ConnectedRunner, claimed: list[Claimed]) -> bool:
        keys = [c.key for c in claimed]
        runner.active.update(keys)
        try:
            runner.deliver(claimed)
        except Exception:
            log.exception(
                "Sending %d assignment(s) to runner %s failed", len(keys), runner.runner_id
            )
            runner.active.difference_update(keys)
            # Some may have gone out before the failure: those must not run.
            runner.kill(keys, NOT_DELIVERED)
            return False
        self.liveness.sent(runner.heard, keys, runner.kill, runner.active.difference_update)
        return True

    async def _end_undelivered(self, keys: list[AttemptKey]) -> None:
        """Claimed for a runner that left since, or could not be sent: ended now rather
        than a lease later."""
        try:
            ended = await self.store.end_attempts(keys, NOT_DELIVERED)
        except Exception as exc:  # the lease sweep ends them instead
            log.warning("Ending %d undelivered attempt(s) failed: %s", len(keys), exc)
            return
        for key in ended:
            extra = {"job_id": key.job_id}
            log.warning(
                "Job %d attempt %d: %s", key.job_id, key.attempt, NOT_DELIVERED, extra=extra
            )

    def _due(self) -> bool:
        """A `scheduled` job's time has come: the claim queues it, even with no slot
        free to run it."""
        return self._next_due_at is not None and self._next_due_at <= datetime.now(UTC)

    def _log_cycle(self, result: ClaimResult, timer: bool) -> None:
        """The original's lines for a timer cycle or one that assigned jobs; under load
        at most one cycle a second is told at INFO, the rest at DEBUG."""
        now = time.monotonic()
        loud = timer or (result.claimed > 0 and now - self._told_at >= CYCLE_LOG_SECONDS)
        untold = self._untold
        if loud:
            self._told_at, self._untold = now, 0
        else:
            self._untold += result.claimed
        level = logging.INFO if loud else logging.DEBUG
        if not log.isEnabledFor(level):
            return
        log.log(
            level,
            "Max concurrent: %d, Running: %d, Available slots: %d",
            result.limit,
            result.running,
            result.available,
        )
        if result.queued:
            log.log(level, "Found %d queued job(s)", result.queued)
        if 0 < result.available < result.queued:
            log.log(
                level,
                "Limiting execution to %d job(s) due to concurrent limit",
                min(result.available, result.queued),
            )
        if result.claimed:
            more = f" ({untold} more since the last report)" if loud and untold else ""
            log.log(level, "Assigned %d job(s) to runners%s", result.claimed, more)


async def _pause(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        pass
