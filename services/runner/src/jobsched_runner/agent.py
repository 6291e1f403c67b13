"""The runner's side of the link: one stream to the scheduler, reconnected with
backoff, over which it takes assignments and reports starts, output and results.

Results survive a lost stream: a finished report is kept until the scheduler
acknowledges it, and resent after every reconnect."""

import asyncio
import contextlib
import itertools
import logging
import os
import random
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import grpc
from jobsched.v1 import runner_pb2 as pb
from jobsched.v1 import runner_pb2_grpc
from jobsched_common.timestamps import to_timestamp
from prometheus_client import Counter, Gauge

from .execute import Execution, Limits, Outcome, ProcessGroups, count_groups
from .settings import Settings

log = logging.getLogger(__name__)

RUNNING = Gauge("jobsched_runner_jobs_running", "Commands this runner is running")
FINISHED = Counter("jobsched_runner_jobs_finished_total", "Commands ended", ["outcome"])
CONNECTED = Gauge("jobsched_runner_connected", "1 while the link to a scheduler is up")

Key = tuple[int, int]  # (job id, attempt): the attempt is the fencing token
OUTPUT_FLUSH_SECONDS = 0.25
# A job that ends this soon after it starts is reported, and logged, by its finish alone.
STARTED_REPORT_DELAY = 0.05
MAX_RESULTS_PER_MESSAGE = 500
ACK_WAIT_SECONDS = 5.0
MAX_RECONNECT_DELAY = 2.0
# Pings find a dead scheduler or a silent network within seconds, not TCP's minutes.
CHANNEL_OPTIONS = [
    ("grpc.keepalive_time_ms", 2000),
    ("grpc.keepalive_timeout_ms", 2000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
]
# A runner cut off from every scheduler stops its jobs this far into their lease, before
# a scheduler may hand them to another runner.
LEASE_SAFETY = 0.7
# How often the processes of each job are counted.
CENSUS_INTERVAL = 0.25


def _ref(key: Key) -> pb.AttemptRef:
    return pb.AttemptRef(job_id=key[0], attempt=key[1])


class RunnerAgent:
    def __init__(self, settings: Settings, groups: ProcessGroups | None = None):
        self.settings = settings
        self.groups = groups
        self.running: dict[Key, Execution] = {}
        self.unacked: dict[Key, pb.Finished] = {}
        self.draining = False
        self.connected = asyncio.Event()
        self._outbox: asyncio.Queue[pb.RunnerMessage | None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._heartbeat_interval = 3.0
        self._lease_ttl = 10.0
        self._output_limit = 1024 * 1024
        # When each running attempt's lease last surely counted from (monotonic).
        self._lease_from: dict[Key, float] = {}
        self._heartbeat_sent: dict[int, float] = {}
        self._seq = itertools.count(1)
        # Each job's environment starts from the runner's, copied once: os.environ
        # decodes and encodes every variable on each read.
        self._job_env = dict(os.environb)

    # --- lifecycle -------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        link = asyncio.create_task(self._keep_connected())
        watchdog = asyncio.create_task(self._watch_leases())
        census = asyncio.create_task(self._watch_process_counts())
        await stop.wait()
        await self._drain()
        for task in (link, watchdog, census):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _drain(self) -> None:
        """Takes no new work, lets running jobs finish within the grace, stops the rest,
        and waits a little for their results to be acknowledged."""
        self.draining = True
        self._send(pb.RunnerMessage(draining=pb.Draining()))
        log.info("Draining: %d job(s) running", len(self.running))
        await self._wait_until(lambda: not self.running, self.settings.RUNNER_DRAIN_SECONDS)
        for execution in self.running.values():
            execution.stop("runner shut down")
        await self._wait_until(lambda: not self.running, self.settings.KILL_GRACE_SECONDS + 5)
        await self._wait_until(lambda: not self.unacked, ACK_WAIT_SECONDS)
        if self.unacked:
            log.warning("Stopping with %d unacknowledged result(s)", len(self.unacked))

    async def _wait_until(self, condition: Callable[[], bool], timeout: float) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while not condition() and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)

    async def _keep_connected(self) -> None:
        delay = 0.1
        addrs = self.settings.scheduler_addrs
        for attempt in itertools.count():
            addr = addrs[attempt % len(addrs)]
            try:
                await self._session(addr)
                delay = 0.1
            except grpc.aio.AioRpcError as exc:
                log.warning(
                    "Scheduler %s unreachable (%s: %s)", addr, exc.code().name, exc.details()
                )
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
            await asyncio.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, MAX_RECONNECT_DELAY)

    async def _watch_leases(self) -> None:
        """Stops a job whose lease has gone unrenewed for most of a TTL (the scheduler
        is unreachable, or cannot write): it may soon be given to another runner, and
        an attempt must never run twice at once."""
        while True:
            await asyncio.sleep(0.2)
            deadline = time.monotonic() - self._lease_ttl * LEASE_SAFETY
            for key, execution in list(self.running.items()):
                if not execution.stopping and self._lease_from.get(key, deadline) < deadline:
                    log.warning("Job %d attempt %d: lease not renewed, killing it", *key)
                    # No grace period: the command must be gone before the lease is.
                    execution.kill_now("lease lost")

    async def _watch_process_counts(self) -> None:
        """Kills a job whose process group grows past the limit: a fork bomb must not
        take the runner, or the machine, down with it."""
        limit = self.settings.JOB_MAX_PROCESSES
        while limit:
            await asyncio.sleep(CENSUS_INTERVAL)
            # Reading all of /proc is costly; a job younger than a round waits for the
            # next one, so a burst of short jobs costs no census at all.
            born_before = _now() - timedelta(seconds=CENSUS_INTERVAL)
            if not any(e.started_at < born_before for e in self.running.values()):
                continue
            counts = await asyncio.to_thread(count_groups)
            for execution in list(self.running.values()):
                pgid = execution.pgid
                if not execution.stopping and pgid and counts.get(pgid, 0) > limit:
                    execution.kill_now(f"too many processes (over {limit})")

    async def _session(self, addr: str) -> None:
        async with grpc.aio.insecure_channel(addr, options=CHANNEL_OPTIONS) as channel:
            stub = runner_pb2_grpc.RunnerServiceStub(channel)
            outbox: asyncio.Queue[pb.RunnerMessage | None] = asyncio.Queue()
            self._heartbeat_sent[0] = time.monotonic()  # Registered renews what we hold
            outbox.put_nowait(
                pb.RunnerMessage(
                    register=pb.Register(
                        runner_id=self.settings.RUNNER_ID,
                        capacity=self.settings.RUNNER_CAPACITY,
                        running=[_ref(k) for k in self.running],
                    )
                )
            )
            if self.draining:
                outbox.put_nowait(pb.RunnerMessage(draining=pb.Draining()))
            for finished in self.unacked.values():
                outbox.put_nowait(pb.RunnerMessage(finished=finished))
            call = stub.Connect(_drain_queue(outbox))
            self._outbox = outbox
            helpers = [
                asyncio.create_task(self._heartbeats()),
                asyncio.create_task(self._flush_output()),
            ]
            try:
                async for message in call:
                    self._handle(message)
            finally:
                for task in helpers:
                    task.cancel()
                outbox.put_nowait(None)

    def _handle(self, message: pb.SchedulerMessage) -> None:
        kind = message.WhichOneof("body")
        if kind == "registered":
            reg = message.registered
            self._heartbeat_interval = max(reg.heartbeat_interval_ms / 1000, 0.05)
            self._lease_ttl = max(reg.lease_ttl_ms / 1000, 0.1)
            self._renewed(0, list(self.running))
            CONNECTED.set(1)
            self._output_limit = reg.output_limit_bytes or self._output_limit
            self.connected.set()
            log.info(
                "Connected to scheduler as %s (capacity %d)",
                self.settings.RUNNER_ID,
                self.settings.RUNNER_CAPACITY,
            )
        elif kind == "assignments":
            for item in message.assignments.items:
                self._start(item)
        elif kind == "kill":
            for ref in message.kill.refs:
                execution = self.running.get((ref.job_id, ref.attempt))
                if execution is not None:
                    execution.stop(message.kill.reason or "cancelled")
        elif kind == "renewed":
            refs = message.renewed.refs
            self._renewed(message.renewed.seq, [(r.job_id, r.attempt) for r in refs])
        elif kind == "acked":
            for ref in message.acked.refs:
                self.unacked.pop((ref.job_id, ref.attempt), None)

    def _renewed(self, seq: int, keys: list[Key]) -> None:
        sent = self._heartbeat_sent.pop(seq, None)
        if sent is None:
            return
        for key in keys:
            if key in self.running:
                self._lease_from[key] = max(self._lease_from.get(key, sent), sent)

    def _send(self, message: pb.RunnerMessage) -> None:
        if self._outbox is not None:
            self._outbox.put_nowait(message)

    async def _heartbeats(self) -> None:
        while True:
            await asyncio.sleep(self._heartbeat_interval)
            seq = next(self._seq)
            self._heartbeat_sent[seq] = time.monotonic()
            # An answer that never came is no longer awaited after a lease.
            stale = time.monotonic() - self._lease_ttl
            for old in [s for s, at in self._heartbeat_sent.items() if at < stale]:
                del self._heartbeat_sent[old]
            running = [_ref(k) for k in self.running]
            self._send(pb.RunnerMessage(heartbeat=pb.Heartbeat(running=running, seq=seq)))

    async def _flush_output(self) -> None:
        while True:
            await asyncio.sleep(OUTPUT_FLUSH_SECONDS)
            for key, execution in list(self.running.items()):
                text = execution.output.take()
                if text:
                    chunk = pb.OutputChunk(ref=_ref(key), data=text.encode())
                    self._send(pb.RunnerMessage(output=chunk))

    # --- jobs ----------------------------------------------------------------------------

    def _start(self, item: pb.Assignment) -> None:
        key = (item.ref.job_id, item.ref.attempt)
        if key in self.running or key in self.unacked:
            return  # a duplicate delivery: an attempt starts at most once
        execution = Execution(
            item.command,
            item.timeout_seconds or None,
            self.settings.KILL_GRACE_SECONDS,
            self._output_limit,
            self.groups,
            Limits(
                memory_bytes=self.settings.JOB_MEMORY_LIMIT_MB * 1024 * 1024,
                max_processes=self.settings.JOB_MAX_PROCESSES,
            ),
            env={
                **self._job_env,
                b"JOBSCHED_JOB_ID": b"%d" % key[0],
                b"JOBSCHED_ATTEMPT": b"%d" % key[1],
            },
        )
        self.running[key] = execution
        # The lease began at the claim, moments ago: the safety margin covers the delivery.
        self._lease_from[key] = time.monotonic()
        task = asyncio.create_task(self._run(key, execution))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, key: Key, execution: Execution) -> None:
        job = {"job_id": key[0]}
        RUNNING.inc()

        def report_started(at: datetime) -> None:
            if key in self.running:
                log.info("Executing job %d (attempt %d)", *key, extra=job)
                self._send(pb.RunnerMessage(started=pb.Started(ref=_ref(key), at=to_timestamp(at))))

        def started(at: datetime) -> None:
            loop = asyncio.get_running_loop()
            loop.call_later(STARTED_REPORT_DELAY, report_started, at)

        try:
            outcome = await execution.run(started)
        except Exception as exc:  # a runner bug must not leave the job running forever
            log.exception("Job %d attempt %d crashed the runner's executor", *key)
            outcome = Outcome(1, f"runner error: {exc}", execution.started_at, _now())
        finished = pb.Finished(
            ref=_ref(key),
            started_at=to_timestamp(outcome.started_at),
            finished_at=to_timestamp(outcome.finished_at),
            exit_code=outcome.exit_code,
            reason=outcome.reason,
            output_tail=execution.output.take().encode(),
            output_truncated=execution.output.truncated,
        )
        self.unacked[key] = finished
        del self.running[key]
        self._lease_from.pop(key, None)
        self._send(pb.RunnerMessage(finished=finished))
        RUNNING.dec()
        ok = outcome.exit_code == 0 and not outcome.reason
        FINISHED.labels("completed" if ok else "failed").inc()
        took = (outcome.finished_at - outcome.started_at).total_seconds() * 1000
        if ok:
            log.info("Job %d completed successfully (attempt %d, %.0f ms)", *key, took, extra=job)
        else:
            why = outcome.reason or f"exit code {outcome.exit_code}"
            log.info(
                "Job %d failed: %s (attempt %d, %.0f ms)", key[0], why, key[1], took, extra=job
            )


async def _drain_queue(
    queue: asyncio.Queue[pb.RunnerMessage | None],
) -> AsyncIterator[pb.RunnerMessage]:
    """The stream's messages in order, until None; finished reports queued back to back
    travel together in one Results message."""
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
        ended = False
        while len(batch) < MAX_RESULTS_PER_MESSAGE and not queue.empty():
            following = queue.get_nowait()
            if following is None:
                ended = True
                break
            if not following.HasField("finished"):
                taken = following
                break
            batch.append(following.finished)
        yield message if len(batch) == 1 else pb.RunnerMessage(results=pb.Results(items=batch))
        if ended:
            return


def _now() -> datetime:
    return datetime.now(UTC)
