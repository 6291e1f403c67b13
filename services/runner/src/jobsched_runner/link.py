"""The runner's link to the scheduler: one stream, reconnected with backoff across the
scheduler's addresses, over which it registers, heartbeats, takes work and reports.

Results survive a lost stream: a finished report is kept until the scheduler
acknowledges it, and resent after every reconnect."""

import asyncio
import contextlib
import itertools
import logging
import random
import time
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Sequence,
)
from contextlib import AbstractAsyncContextManager
from typing import Protocol

import grpc
from jobsched.v1 import runner_pb2 as pb
from jobsched.v1 import runner_pb2_grpc
from jobsched_common.keepalive import link_options
from jobsched_common.limits import MAX_BATCH_BYTES
from jobsched_common.tls import aio_channel
from prometheus_client import Gauge

from .attempts import Key, to_key, to_ref
from .settings import Settings

log = logging.getLogger(__name__)

CONNECTED = Gauge("jobsched_runner_connected", "1 while the link to a scheduler is up")

OUTPUT_FLUSH_SECONDS = 0.25
MAX_RESULTS_PER_MESSAGE = 500
FIRST_RECONNECT_DELAY = 0.1
MAX_RECONNECT_DELAY = 2.0
ChannelOptions = Sequence[tuple[str, int]]

Incoming = AsyncIterable[pb.SchedulerMessage]
Outgoing = AsyncIterator[pb.RunnerMessage]
# Opens one stream to the scheduler at an address; it sends what the iterator yields.
Transport = Callable[[str, AsyncIterator[pb.RunnerMessage]], AbstractAsyncContextManager[Incoming]]


def channel_options(settings: Settings) -> ChannelOptions:
    """Keepalive pings find a dead scheduler within seconds, not TCP's minutes (the
    scheduler permits them)."""
    return link_options(settings.KEEPALIVE_SECONDS, settings.KEEPALIVE_TIMEOUT_SECONDS)


def grpc_transport(settings: Settings) -> Transport:
    """Streams over gRPC: TLS when TLS_CA_FILE is set (with the runner's certificate
    when it has one), and its RUNNER_TOKEN as bearer metadata when it has one."""
    files = settings.tls
    options = channel_options(settings)
    metadata = (("authorization", f"Bearer {settings.RUNNER_TOKEN}"),)

    @contextlib.asynccontextmanager
    async def stream(addr: str, outgoing: Outgoing) -> AsyncIterator[Incoming]:
        async with aio_channel(addr, files, options) as channel:
            stub = runner_pb2_grpc.RunnerServiceStub(channel)
            yield stub.Connect(outgoing, metadata=metadata if settings.RUNNER_TOKEN else None)

    return stream


class SchedulerSilent(Exception):
    """The scheduler keeps the stream open but answers no heartbeat."""


class LinkedJobs(Protocol):
    """What the link needs of the jobs it carries."""

    def running_keys(self) -> list[Key]: ...

    def held_keys(self) -> list[Key]: ...

    def unacked_results(self) -> list[pb.Finished]: ...

    def set_terms(self, lease_ttl: float, output_limit: int) -> None: ...

    def renewed(self, keys: Iterable[Key], since: float) -> None: ...

    def acked(self, keys: Iterable[Key]) -> None: ...

    def take_output(self) -> list[pb.OutputChunk]: ...

    def start(self, item: pb.Assignment) -> None: ...

    def stop(self, keys: Iterable[Key], reason: str) -> None: ...


class Link:
    """Keeps a session with a scheduler; `send` queues a message on the current stream
    (dropped while there is none: what must survive is resent on reconnect). The
    transport, clock and sleep are parameters so that a unit test can give fakes."""

    def __init__(
        self,
        settings: Settings,
        jobs: LinkedJobs,
        transport: Transport | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ):
        self.settings = settings
        self.jobs = jobs
        self.draining = False
        self.connected = asyncio.Event()
        self._transport = transport or grpc_transport(settings)
        self._clock = clock
        self._sleep = sleep
        self._outbox: asyncio.Queue[pb.RunnerMessage | None] | None = None
        self._heartbeat_interval = 3.0
        self._lease_ttl = 10.0
        # When each heartbeat still awaiting its answer was sent (on `clock`), by seq.
        self._heartbeat_sent: dict[int, float] = {}
        # When the scheduler last answered a heartbeat or a registration.
        self._answered_at = clock()
        self._seq = itertools.count(1)

    def send(self, message: pb.RunnerMessage) -> None:
        if self._outbox is not None:
            self._outbox.put_nowait(message)

    def drain(self) -> None:
        """Tells the scheduler, now and on every reconnect, to send no new work."""
        self.draining = True
        self.send(pb.RunnerMessage(draining=pb.Draining()))

    async def run(self) -> None:
        """Keeps connected until cancelled, trying each address in turn."""
        delay = FIRST_RECONNECT_DELAY
        addrs = self.settings.scheduler_addrs
        for attempt in itertools.count():
            addr = addrs[attempt % len(addrs)]
            try:
                await self._session(addr)
                delay = FIRST_RECONNECT_DELAY
            except grpc.aio.AioRpcError as exc:
                log.warning(
                    "Scheduler %s unreachable (%s: %s)", addr, exc.code().name, exc.details()
                )
            except SchedulerSilent as exc:
                log.warning("Scheduler %s is silent (%s); trying the next", addr, exc)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise  # the runner is stopping
                log.warning("Link to scheduler %s was cancelled; reconnecting", addr)
            except Exception:  # whatever ends a link, the runner reconnects
                log.exception("Link to scheduler %s failed; reconnecting", addr)
            finally:
                self._outbox = None
                self.connected.clear()
                CONNECTED.set(0)
            await self._sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, MAX_RECONNECT_DELAY)

    async def _session(self, addr: str) -> None:
        outbox: asyncio.Queue[pb.RunnerMessage | None] = asyncio.Queue()
        for opening in self._opening():
            outbox.put_nowait(opening)
        async with self._transport(addr, _drain_queue(outbox)) as incoming:
            self._outbox = outbox
            reader = asyncio.create_task(self._read(incoming))
            beats = asyncio.create_task(self._heartbeats())
            flush = asyncio.create_task(self._flush_output())
            try:
                await asyncio.wait({reader, beats}, return_when=asyncio.FIRST_COMPLETED)
                if not reader.done():
                    raise SchedulerSilent(f"no answer to heartbeats for {self._lease_ttl:g} s")
                reader.result()
            finally:
                for task in (reader, beats, flush):
                    task.cancel()
                outbox.put_nowait(None)

    async def _read(self, incoming: Incoming) -> None:
        async for message in incoming:
            self._handle(message)

    def _opening(self) -> list[pb.RunnerMessage]:
        """A stream's first messages: who we are and what we still run, whether we are
        draining, and every result not yet acknowledged."""
        self._heartbeat_sent[0] = self._clock()  # Registered renews what we hold
        register = pb.Register(
            runner_id=self.settings.RUNNER_ID,
            capacity=self.settings.RUNNER_CAPACITY,
            running=[to_ref(k) for k in self.jobs.held_keys()],
        )
        messages = [pb.RunnerMessage(register=register)]
        if self.draining:
            messages.append(pb.RunnerMessage(draining=pb.Draining()))
        messages += [pb.RunnerMessage(finished=f) for f in self.jobs.unacked_results()]
        return messages

    def _handle(self, message: pb.SchedulerMessage) -> None:
        kind = message.WhichOneof("body")
        if kind == "registered":
            self._registered(message.registered)
        elif kind == "assignments":
            for item in message.assignments.items:
                self.jobs.start(item)
        elif kind == "kill":
            keys = [to_key(ref) for ref in message.kill.refs]
            self.jobs.stop(keys, message.kill.reason or "cancelled")
        elif kind == "renewed":
            self._renewed(message.renewed.seq, [to_key(r) for r in message.renewed.refs])
        elif kind == "acked":
            self.jobs.acked(to_key(ref) for ref in message.acked.refs)

    def _registered(self, terms: pb.Registered) -> None:
        self._heartbeat_interval = max(terms.heartbeat_interval_ms / 1000, 0.05)
        self._lease_ttl = max(terms.lease_ttl_ms / 1000, 0.1)
        self.jobs.set_terms(self._lease_ttl, terms.output_limit_bytes)
        self._renewed(0, self.jobs.running_keys())
        CONNECTED.set(1)
        self.connected.set()
        log.info(
            "Connected to scheduler as %s (capacity %d)",
            self.settings.RUNNER_ID,
            self.settings.RUNNER_CAPACITY,
        )

    def _renewed(self, seq: int, keys: list[Key]) -> None:
        """The leases renewed in answer to heartbeat `seq` count from when it was sent."""
        self._answered_at = self._clock()
        sent = self._heartbeat_sent.pop(seq, None)
        if sent is not None:
            self.jobs.renewed(keys, sent)

    async def _heartbeats(self) -> None:
        """Heartbeats until the scheduler has answered none for a lease: one that cannot
        renew leases (its database is away, say) is no use, and another one may be."""
        self._answered_at = self._clock()
        while True:
            await self._sleep(self._heartbeat_interval)
            if self._clock() - self._answered_at > self._lease_ttl:
                return
            self.send(self._heartbeat())

    def _heartbeat(self) -> pb.RunnerMessage:
        seq = next(self._seq)
        now = self._heartbeat_sent[seq] = self._clock()
        # An answer that never came is no longer awaited after a lease.
        stale = now - self._lease_ttl
        for old in [s for s, at in self._heartbeat_sent.items() if at < stale]:
            del self._heartbeat_sent[old]
        running = [to_ref(k) for k in self.jobs.running_keys()]
        return pb.RunnerMessage(heartbeat=pb.Heartbeat(running=running, seq=seq))

    async def _flush_output(self) -> None:
        while True:
            await self._sleep(OUTPUT_FLUSH_SECONDS)
            for chunk in self.jobs.take_output():
                self.send(pb.RunnerMessage(output=chunk))


async def _drain_queue(
    queue: asyncio.Queue[pb.RunnerMessage | None],
) -> AsyncIterator[pb.RunnerMessage]:
    """The stream's messages in order, until None; finished reports queued back to back
    travel together in one Results message, of at most MAX_RESULTS_PER_MESSAGE results
    and, unless one alone is larger, MAX_BATCH_BYTES."""
    taken: pb.RunnerMessage | None = None  # a message taken out of the queue early
    while True:
        message = taken or await queue.get()
        taken = None
        if message is None:
            return
        if not message.HasField("finished"):
            yield message
            continue
        batch = [message.finished]
        size = message.finished.ByteSize()
        ended = False
        while len(batch) < MAX_RESULTS_PER_MESSAGE and not queue.empty():
            following = queue.get_nowait()
            if following is None:
                ended = True
                break
            if not following.HasField("finished"):
                taken = following
                break
            size += following.finished.ByteSize()
            if size > MAX_BATCH_BYTES:
                taken = following
                break
            batch.append(following.finished)
        yield message if len(batch) == 1 else pb.RunnerMessage(results=pb.Results(items=batch))
        if ended:
            return
