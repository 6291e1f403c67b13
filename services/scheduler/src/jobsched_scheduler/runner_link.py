"""The RunnerService: one bidirectional stream per connected runner."""

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator
from datetime import UTC, datetime

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from jobsched.v1 import runner_pb2 as pb
from jobsched.v1 import runner_pb2_grpc
from jobsched_common.limits import MAX_BATCH_BYTES
from jobsched_common.timestamps import from_timestamp

from .dispatch import ConnectedRunner, Dispatcher
from .errors import InvalidValue
from .leases import log_lost
from .messages import within_bytes
from .model import AttemptKey, Claimed, Finish
from .ports import Store
from .reports import Pending, ReportWriter
from .rpc import rpc_stream
from .runner_auth import NotThisRunner, RunnerAuth, Unauthenticated, permit

log = logging.getLogger(__name__)

# How long a refused caller is given to send its first message before the call ends.
REFUSAL_GRACE_SECONDS = 5.0


def _key(ref: pb.AttemptRef) -> AttemptKey:
    return AttemptKey(ref.job_id, ref.attempt)


def _ref(key: AttemptKey) -> pb.AttemptRef:
    return pb.AttemptRef(job_id=key.job_id, attempt=key.attempt)


def _time(ts: Timestamp) -> datetime | None:
    return from_timestamp(ts) if ts.seconds or ts.nanos else None


async def _hear_out(requests: AsyncIterator[pb.RunnerMessage]) -> None:
    """Waits (briefly) for a refused caller's first message, unread. A grpc.aio client
    whose write is still under way when the call ends reports INTERNAL, not the status
    it was refused with (grpc/grpc#36066); once its register has arrived, it has none."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(REFUSAL_GRACE_SECONDS):
            await anext(aiter(requests), None)


def _text(data: bytes) -> str:
    # Postgres text holds no NUL; runners send UTF-8, but we store what we are sent safely.
    return data.decode("utf-8", "replace").replace("\x00", "\ufffd")


class RunnerLinks(runner_pb2_grpc.RunnerServiceServicer):
    def __init__(
        self,
        store: Store,
        dispatcher: Dispatcher,
        heartbeat_interval: float,
        lease_ttl: float,
        output_limit: int,
        auth: RunnerAuth,
    ):
        self.store = store
        self.auth = auth
        self.dispatcher = dispatcher
        self.heartbeat_interval = heartbeat_interval
        self.lease_ttl = lease_ttl
        self.output_limit = output_limit
        self.reports = ReportWriter(store, self._on_stored)
        # Set on shutdown: streams end, and runners reconnect to another scheduler.
        self.closing = asyncio.Event()
        # Which stream to acknowledge each stored finish on, by attempt and runner.
        self._finish_from: dict[Pending, asyncio.Queue[pb.SchedulerMessage]] = {}

    def _on_stored(self, finished: list[Pending]) -> None:
        acks: dict[asyncio.Queue[pb.SchedulerMessage], list[pb.AttemptRef]] = {}
        for pending in finished:
            outbox = self._finish_from.pop(pending, None)
            if outbox is not None:
                acks.setdefault(outbox, []).append(_ref(pending[0]))
        for outbox, refs in acks.items():
            outbox.put_nowait(pb.SchedulerMessage(acked=pb.Acked(refs=refs)))

    @rpc_stream
    async def Connect(
        self,
        request_iterator: AsyncIterator[pb.RunnerMessage],
        context: grpc.aio.ServicerContext[pb.RunnerMessage, pb.SchedulerMessage],
    ) -> AsyncGenerator[pb.SchedulerMessage, None]:
        # Nothing is registered, renewed or ended for a caller without a credential.
        try:
            name = self.auth.identify(context.invocation_metadata() or (), context.auth_context())
        except Unauthenticated as exc:
            log.warning("Runner connection from %s refused: %s", context.peer(), exc)
            await _hear_out(request_iterator)
            raise
        first = await anext(aiter(request_iterator), None)
        if first is None or not first.HasField("register"):
            raise InvalidValue("first message must be register")
        reg = first.register
        if not reg.runner_id or reg.capacity < 1:
            raise InvalidValue("register needs a runner_id and capacity >= 1")
        try:
            permit(name, reg.runner_id)
        except NotThisRunner as exc:
            log.warning("Runner connection from %s refused: %s", context.peer(), exc)
            raise
        outbox: asyncio.Queue[pb.SchedulerMessage] = asyncio.Queue()
        runner = ConnectedRunner(
            reg.runner_id,
            reg.capacity,
            deliver=lambda claimed: _deliver(outbox, claimed),
            kill=lambda keys, reason: _kill(outbox, keys, reason),
        )
        await self._reattach(runner, [_key(r) for r in reg.running], outbox)
        outbox.put_nowait(
            pb.SchedulerMessage(
                registered=pb.Registered(
                    heartbeat_interval_ms=int(self.heartbeat_interval * 1000),
                    lease_ttl_ms=int(self.lease_ttl * 1000),
                    output_limit_bytes=self.output_limit,
                )
            )
        )
        self.dispatcher.attach(runner)
        self.dispatcher.acknowledged(runner, [_key(r) for r in reg.running])
        log.info("Runner %s connected (capacity %d)", runner.runner_id, runner.capacity)
        reader = asyncio.create_task(self._read(runner, request_iterator, outbox))
        closing = asyncio.ensure_future(self._until_closed(runner))
        try:
            while True:
                getter = asyncio.ensure_future(outbox.get())
                await asyncio.wait({getter, reader, closing}, return_when=asyncio.FIRST_COMPLETED)
                if not getter.done():
                    getter.cancel()
                    break
                yield getter.result()
        finally:
            closing.cancel()
            if reader.done() and not reader.cancelled() and reader.exception():
                log.warning("Runner %s link failed: %r", runner.runner_id, reader.exception())
            reader.cancel()
            self.dispatcher.detach(runner)
            log.info("Runner %s disconnected", runner.runner_id)

    async def _until_closed(self, runner: ConnectedRunner) -> None:
        """Until the scheduler stops, or the runner has been silent for a lease."""
        hang_up = asyncio.ensure_future(runner.heard.hang_up.wait())
        closing = asyncio.ensure_future(self.closing.wait())
        try:
            await asyncio.wait({hang_up, closing}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            hang_up.cancel()
            closing.cancel()
        if runner.heard.hang_up.is_set():
            log.warning(
                "Runner %s has been silent for a lease; ending its stream", runner.runner_id
            )

    async def _reattach(
        self,
        runner: ConnectedRunner,
        keys: list[AttemptKey],
        outbox: asyncio.Queue[pb.SchedulerMessage],
    ) -> None:
        """A registering runner keeps the attempts it holds that are still current; the
        ones given away meanwhile must stop. Attempts the store has on this runner that
        it no longer holds (it restarted: its reaper killed their commands when the old
        process died) end now as "runner lost", not a lease later."""
        log_lost(await self.store.expire_unheld(runner.runner_id, keys))
        if not keys:
            return
        current, cancelled = await self.store.renew_leases(runner.runner_id, keys)
        runner.active.update(current)
        _kill(outbox, [k for k in keys if k not in current], "attempt superseded")
        _kill(outbox, list(cancelled), "cancelled")
        log.info("Runner %s re-attached %d running job(s)", runner.runner_id, len(current))

    async def _read(
        self,
        runner: ConnectedRunner,
        messages: AsyncIterator[pb.RunnerMessage],
        outbox: asyncio.Queue[pb.SchedulerMessage],
    ) -> None:
        async for msg in messages:
            kind = msg.WhichOneof("body")
            if kind == "started":
                self.dispatcher.acknowledged(runner, [_key(msg.started.ref)])
                at = _time(msg.started.at) or _now()
                self.reports.started(_key(msg.started.ref), at, by=runner.runner_id)
            elif kind == "output":
                self.dispatcher.acknowledged(runner, [_key(msg.output.ref)])
                text = _text(msg.output.data)
                self.reports.output(_key(msg.output.ref), text, by=runner.runner_id)
            elif kind == "finished":
                self._finished(runner, msg.finished, outbox)
            elif kind == "results":
                for finished in msg.results.items:
                    self._finished(runner, finished, outbox)
            elif kind == "heartbeat":
                await self._heartbeat(runner, msg.heartbeat, outbox)
            elif kind == "draining":
                runner.draining = True
                log.info("Runner %s is draining", runner.runner_id)

    def _finished(
        self,
        runner: ConnectedRunner,
        done: pb.Finished,
        outbox: asyncio.Queue[pb.SchedulerMessage],
    ) -> None:
        key = _key(done.ref)
        by = runner.runner_id
        self._finish_from[(key, by)] = outbox
        self.reports.output(key, _text(done.output_tail), done.output_truncated, by=by)
        finish = Finish(
            exit_code=done.exit_code,
            reason=done.reason,
            started_at=_time(done.started_at),
            finished_at=_time(done.finished_at) or _now(),
        )
        self.reports.finished(key, finish, by=by)
        self.dispatcher.release(runner, [key])

    async def _heartbeat(
        self,
        runner: ConnectedRunner,
        heartbeat: pb.Heartbeat,
        outbox: asyncio.Queue[pb.SchedulerMessage],
    ) -> None:
        keys = [_key(r) for r in heartbeat.running]
        self.dispatcher.heartbeat(runner, keys)
        try:
            current, cancelled = await self.store.renew_leases(runner.runner_id, keys)
        except Exception as exc:  # no answer: the runner stops its jobs if this lasts
            log.warning("Renewing leases of runner %s failed: %s", runner.runner_id, exc)
            return
        renewed = pb.LeasesRenewed(seq=heartbeat.seq, refs=[_ref(k) for k in current])
        outbox.put_nowait(pb.SchedulerMessage(renewed=renewed))
        _kill(outbox, [k for k in keys if k not in current], "attempt superseded")
        _kill(outbox, list(cancelled), "cancelled")


def _deliver(outbox: asyncio.Queue[pb.SchedulerMessage], claimed: list[Claimed]) -> None:
    """Sends the assignments, many to a message but at most MAX_BATCH_BYTES of them
    unless one alone is larger: a runner's capacity of long commands may not fit one."""
    items = (
        pb.Assignment(ref=_ref(c.key), command=c.command, timeout_seconds=c.timeout_seconds or 0)
        for c in claimed
    )
    for batch in within_bytes(items, MAX_BATCH_BYTES):
        outbox.put_nowait(pb.SchedulerMessage(assignments=pb.Assignments(items=batch)))


def _kill(outbox: asyncio.Queue[pb.SchedulerMessage], keys: list[AttemptKey], reason: str) -> None:
    if keys:
        refs = [_ref(k) for k in keys]
        outbox.put_nowait(pb.SchedulerMessage(kill=pb.Kill(refs=refs, reason=reason)))


def _now() -> datetime:
    return datetime.now(UTC)
