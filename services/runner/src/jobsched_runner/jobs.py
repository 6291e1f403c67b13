"""The runner's jobs: each assigned attempt started at most once, watched while it runs,
and its result kept until the scheduler acknowledges it."""

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Protocol

from jobsched.v1 import runner_pb2 as pb
from jobsched_common.timestamps import to_timestamp
from prometheus_client import Counter, Gauge

from .attempts import Key, to_key, to_ref
from .containment import Boundary, Containment, Unenclosable
from .environment import job_environment
from .execute import CapturedOutput, Execution, Limits, Outcome, ProcessGroups, count_groups
from .settings import Settings
from .users import JobUser

log = logging.getLogger(__name__)

RUNNING = Gauge("jobsched_runner_jobs_running", "Commands this runner is running")
FINISHED = Counter("jobsched_runner_jobs_finished_total", "Commands ended", ["outcome"])

# A job that ends this soon after it starts is reported, and logged, by its finish alone.
STARTED_REPORT_DELAY = 0.05
# A runner cut off from every scheduler stops its jobs this far into their lease, before
# a scheduler may hand them to another runner.
LEASE_SAFETY = 0.7
# Should the runner itself be stuck (stopped, its event loop blocked), its reaper kills
# its jobs this far into their lease: later than the runner would, still before the end.
REAPER_LEASE_SHARE = 0.85
LEASE_CHECK_INTERVAL = 0.2
# How often the processes of each job are counted.
CENSUS_INTERVAL = 0.25


class Process(Protocol):
    """What the jobs use of an `Execution`."""

    output: CapturedOutput
    started_at: datetime
    pgid: int | None

    @property
    def stopping(self) -> bool: ...

    def stop(self, reason: str) -> None: ...

    def kill_now(self, reason: str) -> None: ...

    async def run(self, on_started: Callable[[datetime], None]) -> Outcome: ...


# command, timeout (None: none), output limit in bytes, environment, attempt
Launch = Callable[[str, float | None, int, dict[bytes, bytes], Key], Process]


class Jobs:
    """Starts, stops and finishes attempts; every message they cause goes to `send`."""

    def __init__(
        self,
        settings: Settings,
        send: Callable[[pb.RunnerMessage], None],
        groups: ProcessGroups | None = None,
        launch: Launch | None = None,
        clock: Callable[[], float] = time.monotonic,
        containment: Containment | None = None,
        user: JobUser | None = None,
    ):
        self.settings = settings
        self.running: dict[Key, Process] = {}
        self.unacked: dict[Key, pb.Finished] = {}
        self._send = send
        self._groups = groups
        self._launch = launch or self._execution
        self._clock = clock
        self._containment = containment
        self._user = user
        self._tasks: set[asyncio.Task[None]] = set()
        self._lease_ttl = 10.0
        self._output_limit = 1024 * 1024
        # When each running attempt's lease last surely counted from (on `clock`).
        self._lease_from: dict[Key, float] = {}
        self._reaper_told: float | None = None  # the kill time the reaper holds
        self._limits = Limits(
            memory_bytes=settings.JOB_MEMORY_LIMIT_MB * 1024 * 1024,
            max_processes=settings.JOB_MAX_PROCESSES,
        )
        # Built once: os.environ decodes and encodes every variable on each read.
        home = user.home if user is not None else None
        self._job_env = job_environment(settings.job_env_passthrough, home=home)

    # --- what the link asks of them -------------------------------------------------------

    def running_keys(self) -> list[Key]:
        return list(self.running)

    def held_keys(self) -> list[Key]:
        """What a new stream's register names: attempts running, and those finished
        whose result the scheduler has not acknowledged yet (it is sent again)."""
        return [*self.running, *self.unacked]

    def unacked_results(self) -> list[pb.Finished]:
        return list(self.unacked.values())

    def set_terms(self, lease_ttl: float, output_limit: int) -> None:
        """The scheduler's terms, from its Registered answer."""
        self._lease_ttl = lease_ttl
        self._output_limit = output_limit or self._output_limit

    def renewed(self, keys: Iterable[Key], since: float) -> None:
        """These leases count from `since` (on `clock`) at the earliest."""
        for key in keys:
            if key in self.running:
                self._lease_from[key] = max(self._lease_from.get(key, since), since)

    def acked(self, keys: Iterable[Key]) -> None:
        for key in keys:
            self.unacked.pop(key, None)

    def take_output(self) -> list[pb.OutputChunk]:
        chunks = []
        for key, execution in list(self.running.items()):
            text = execution.output.take()
            if text:
                chunks.append(pb.OutputChunk(ref=to_ref(key), data=text.encode()))
        return chunks

    def start(self, item: pb.Assignment) -> None:
        key = to_key(item.ref)
        if key in self.running or key in self.unacked:
            return  # a duplicate delivery: an attempt starts at most once
        env = {
            **self._job_env,
            b"JOBSCHED_JOB_ID": b"%d" % key[0],
            b"JOBSCHED_ATTEMPT": b"%d" % key[1],
        }
        execution = self._launch(
            item.command, item.timeout_seconds or None, self._output_limit, env, key
        )
        self.running[key] = execution
        # The lease began at the claim, moments ago: the safety margin covers the delivery.
        self._lease_from[key] = self._clock()
        if self._reaper_told is None:
            self.tell_reaper()
        task = asyncio.create_task(self._run(key, execution))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def stop(self, keys: Iterable[Key], reason: str) -> None:
        for key in keys:
            execution = self.running.get(key)
            if execution is not None:
                execution.stop(reason)

    # --- watchdogs ------------------------------------------------------------------------

    async def watch_leases(self) -> None:
        while True:
            await asyncio.sleep(LEASE_CHECK_INTERVAL)
            self.kill_unrenewed()
            self.tell_reaper()

    def tell_reaper(self) -> None:
        """Tells the reaper when to kill the jobs should this process stop answering: a
        share of a lease after the latest renewal (or start) of a running job, at no time
        with none. A job whose lease alone lapses is the runner's to kill (Kill, or
        `kill_unrenewed`); the reaper acts when they all do, the runner being stuck. A
        new time goes only once it moved, which renewals do a few times a lease."""
        if self._groups is None:
            return
        held = [self._lease_from[k] for k in self.running if k in self._lease_from]
        at = max(held) + self._lease_ttl * REAPER_LEASE_SHARE if held else None
        told = self._reaper_told
        if at == told or (at is not None and told is not None and abs(at - told) < 0.1):
            return
        self._reaper_told = at
        self._groups.kill_at(at)

    def kill_unrenewed(self) -> None:
        """Kills a job whose lease has gone unrenewed for most of a TTL (the scheduler is
        unreachable, or cannot write): it may soon be given to another runner, and an
        attempt must never run twice at once."""
        deadline = self._clock() - self._lease_ttl * LEASE_SAFETY
        for key, execution in list(self.running.items()):
            if not execution.stopping and self._lease_from.get(key, deadline) < deadline:
                log.warning("Job %d attempt %d: lease not renewed, killing it", *key)
                # No grace period: the command must be gone before the lease is.
                execution.kill_now("lease lost")

    async def watch_process_counts(self) -> None:
        """Counts each job's processes within its boundary; without a subreaper's sweep
        to do, or a limit to keep, there is nothing to count."""
        limit = self.settings.JOB_MAX_PROCESSES
        containment = self._containment
        while limit or containment is not None:
            await asyncio.sleep(CENSUS_INTERVAL)
            # A census is costly; a job younger than a round waits for the next one, so
            # a burst of short jobs costs none (but what they left behind is swept).
            born_before = _now() - timedelta(seconds=CENSUS_INTERVAL)
            old = any(e.started_at < born_before for e in self.running.values())
            if containment is None:
                counts = await asyncio.to_thread(count_groups) if old else {}
            elif old or containment.wants_census():
                try:
                    counts = await containment.census()
                except OSError:  # /proc or a cgroup unreadable for a moment: next round
                    log.exception("Census of jobs' processes failed")
                    continue
            else:
                continue
            if limit:
                self.kill_crowded(counts)

    def kill_crowded(self, counts: dict[int, int]) -> None:
        """Kills a job that has grown past the limit (`counts`: processes per job, by its
        process group): a fork bomb must not take the runner, or the machine, down."""
        limit = self.settings.JOB_MAX_PROCESSES
        for execution in list(self.running.values()):
            pgid = execution.pgid
            if not execution.stopping and pgid and counts.get(pgid, 0) > limit:
                execution.kill_now(f"too many processes (over {limit})")

    # --- one attempt ----------------------------------------------------------------------

    def _execution(
        self,
        command: str,
        timeout: float | None,
        output_limit: int,
        env: dict[bytes, bytes],
        key: Key,
    ) -> Execution:
        grace = self.settings.KILL_GRACE_SECONDS
        boundary: Boundary | None = None
        if self._containment is not None:
            try:
                boundary = self._containment.open(key)
            except OSError as exc:
                boundary = Unenclosable(exc)
        return Execution(
            command,
            timeout,
            grace,
            output_limit,
            self._groups,
            self._limits,
            env,
            boundary,
            self._user,
        )

    async def _run(self, key: Key, execution: Process) -> None:
        RUNNING.inc()

        def report_started(at: datetime) -> None:
            if key in self.running:
                log.info("Executing job %d (attempt %d)", *key, extra={"job_id": key[0]})
                self._send(
                    pb.RunnerMessage(started=pb.Started(ref=to_ref(key), at=to_timestamp(at)))
                )

        def started(at: datetime) -> None:
            asyncio.get_running_loop().call_later(STARTED_REPORT_DELAY, report_started, at)

        try:
            outcome = await execution.run(started)
        except Exception as exc:  # a runner bug must not leave the job running forever
            log.exception("Job %d attempt %d crashed the runner's executor", *key)
            outcome = Outcome(1, f"runner error: {exc}", execution.started_at, _now())
        self._finish(key, execution, outcome)

    def _finish(self, key: Key, execution: Process, outcome: Outcome) -> None:
        finished = pb.Finished(
            ref=to_ref(key),
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
        _record_outcome(key, outcome)


def _record_outcome(key: Key, outcome: Outcome) -> None:
    job = {"job_id": key[0]}
    ok = outcome.exit_code == 0 and not outcome.reason
    FINISHED.labels("completed" if ok else "failed").inc()
    took = (outcome.finished_at - outcome.started_at).total_seconds() * 1000
    if ok:
        log.info("Job %d completed successfully (attempt %d, %.0f ms)", *key, took, extra=job)
    else:
        why = outcome.reason or f"exit code {outcome.exit_code}"
        log.info("Job %d failed: %s (attempt %d, %.0f ms)", key[0], why, key[1], took, extra=job)


def _now() -> datetime:
    return datetime.now(UTC)
