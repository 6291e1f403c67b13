"""An in-memory Store for unit tests: the claim, lease, fencing and finish rules of the
SQL (`queries.sql`, migrations 002, 004 and 007) on plain objects, with a clock the test
moves and calls it can make fail or wait."""

import asyncio
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from jobsched_common.limits import (
    DEFAULT_MAX_CONCURRENT_JOBS,
    MAX_CONCURRENT_JOBS,
    STATUSES,
    TERMINAL_STATUSES,
    WAITING_STATUSES,
)
from jobsched_scheduler.audit import LOCAL, AuditRow, Caller, audit_json
from jobsched_scheduler.errors import Conflict, InvalidValue
from jobsched_scheduler.model import (
    AttemptKey,
    AttemptReport,
    Claimed,
    ClaimResult,
    Ended,
    Finish,
    JobRow,
    KeyLimit,
    NewJob,
    Refused,
    StoredReports,
    slot_order,
)
from jobsched_scheduler.store import limit_action


class StoreDown(Exception):
    """What a call made to fail raises, as the store does when the database is away."""


def retry_delay(attempt: int) -> timedelta:
    """The backoff after a failed attempt: `jobsched_retry_at` without its jitter, so
    the longest wait the SQL can choose."""
    return timedelta(seconds=min(300, 2 ** max(attempt - 1, 0)))


@dataclass
class Job:
    id: int
    name: str
    command: str
    max_attempts: int
    timeout_seconds: int | None
    created_at: datetime
    status: str = "queued"
    attempt: int = 0
    runner_id: str | None = None
    last_run: datetime | None = None
    updated_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    exit_code: int | None = None
    reason: str | None = None
    cancel_requested: bool = False
    run_after: datetime | None = None
    lease_expires_at: datetime | None = None
    priority: int = 0
    depends_on: tuple[int, ...] = ()
    concurrency_key: str | None = None
    fair_seq: int = 0

    @property
    def key(self) -> AttemptKey:
        return AttemptKey(self.id, self.attempt)

    def row(self) -> JobRow:
        return JobRow(
            self.id,
            self.name,
            self.command,
            self.status,
            self.last_run,
            self.created_at,
            self.updated_at,
            self.attempt,
            self.max_attempts,
            self.timeout_seconds,
            self.runner_id,
            self.started_at,
            self.finished_at,
            self.exit_code,
            self.reason,
            self.priority,
            self.run_after if self.status in WAITING_STATUSES else None,
            list(self.depends_on) or None,
            self.concurrency_key,
        )


@dataclass
class Attempt:
    runner_id: str
    claimed_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    exit_code: int | None = None
    reason: str | None = None
    output: str = ""
    output_truncated: bool = False


class MemoryStore:
    def __init__(
        self, lease_seconds: float = 30.0, output_limit: int = 1000, default_timeout: int = 0
    ):
        self.lease = timedelta(seconds=lease_seconds)
        self.output_limit = output_limit
        self.default_timeout = default_timeout
        self.now = datetime.now(UTC)
        self.max_concurrent = DEFAULT_MAX_CONCURRENT_JOBS
        self.paused = False
        self.limits: dict[str, tuple[int | None, bool]] = {}  # key: (limit, paused)
        self.fair_clock = 0
        self.jobs: dict[int, Job] = {}
        self.attempts: dict[AttemptKey, Attempt] = {}
        self.calls: Counter[str] = Counter()  # calls made, by method
        self.failures: Counter[str] = Counter()  # the next calls of a method that fail
        self.gates: dict[str, asyncio.Event] = {}  # a method's calls wait until it is set
        self.audit: list[AuditRow] = []  # oldest first

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)

    async def _call(self, method: str) -> None:
        self.calls[method] += 1
        gate = self.gates.get(method)
        if gate is not None:
            await gate.wait()
        if self.failures[method] > 0:
            self.failures[method] -= 1
            raise StoreDown(f"{method}: database unavailable")

    def _current(self, key: AttemptKey) -> Job | None:
        """The job whose running attempt this is: reports of any other change nothing."""
        job = self.jobs.get(key.job_id)
        return job if job and job.status == "running" and job.attempt == key.attempt else None

    def _count(self, status: str) -> int:
        return sum(1 for job in self.jobs.values() if job.status == status)

    # --- dispatch ----------------------------------------------------------------------

    async def claim(self, free_by_runner: dict[str, int]) -> ClaimResult:
        await self._call("claim")
        for job in self.jobs.values():
            if job.status == "scheduled" and (job.run_after is None or job.run_after <= self.now):
                job.status = "queued"
        slots = slot_order(free_by_runner, MAX_CONCURRENT_JOBS)
        queued = self._count("queued")
        result = ClaimResult(self.max_concurrent, self._count("running"), queued)
        room = 0 if self.paused else max(0, min(result.available, queued, len(slots)))
        key_room = self._key_room()
        eligible: list[Job] = []
        ordered = (job for job in self.jobs.values() if self._eligible(job))
        for job in sorted(ordered, key=lambda job: (-job.priority, job.fair_seq, job.id)):
            left = key_room.get(job.concurrency_key or "")
            if len(eligible) == room or left == 0:
                continue
            if left is not None:
                key_room[job.concurrency_key or ""] = left - 1
            eligible.append(job)
        self.fair_clock = max([self.fair_clock, *(job.fair_seq for job in eligible)])
        for job, runner_id in zip(eligible, slots[: len(eligible)], strict=True):
            self._open_attempt(job, runner_id)
            timeout = job.timeout_seconds or self.default_timeout or None
            claimed = Claimed(job.key, job.command, timeout)
            result.by_runner.setdefault(runner_id, []).append(claimed)
        waiting = [j.run_after for j in self.jobs.values() if j.status == "scheduled"]
        result.next_due_at = min((t for t in waiting if t), default=None)
        return result

    def _key_room(self) -> dict[str, int | None]:
        """Room under each key's limit: 0 when paused or full, None without a limit."""
        running = Counter(j.concurrency_key for j in self.jobs.values() if j.status == "running")
        return {
            key: 0 if paused else None if limit is None else max(0, limit - running[key])
            for key, (limit, paused) in self.limits.items()
        }

    def _next_turn(self, key: str | None) -> int:
        """After the key's last queued job, and not before the virtual time."""
        turns = [
            j.fair_seq
            for j in self.jobs.values()
            if j.status == "queued" and j.concurrency_key == key
        ]
        return max([self.fair_clock, *turns]) + 1

    def _eligible(self, job: Job) -> bool:
        """Queued, due, and every dependency completed: the claim's WHERE."""
        return (
            job.status == "queued"
            and (job.run_after is None or job.run_after <= self.now)
            and all(self.jobs[d].status == "completed" for d in job.depends_on)
        )

    def _open_attempt(self, job: Job, runner_id: str) -> None:
        job.status, job.attempt, job.runner_id = "running", job.attempt + 1, runner_id
        job.lease_expires_at = self.now + self.lease
        job.last_run = job.updated_at = self.now
        job.started_at = job.finished_at = job.exit_code = job.reason = job.run_after = None
        job.cancel_requested = False
        self.attempts[job.key] = Attempt(runner_id, claimed_at=self.now)

    async def renew_leases(
        self, runner_id: str, keys: list[AttemptKey]
    ) -> tuple[set[AttemptKey], set[AttemptKey]]:
        await self._call("renew_leases")
        current, cancelled = set(), set()
        for key in keys:
            job = self._current(key)
            if job is not None and job.runner_id == runner_id:
                job.lease_expires_at = self.now + self.lease
                current.add(key)
                if job.cancel_requested:
                    cancelled.add(key)
        return current, cancelled

    async def expire_leases(self) -> list[AttemptKey]:
        await self._call("expire_leases")
        return self._expire()

    def _expire(self) -> list[AttemptKey]:
        lost = [
            job
            for job in self.jobs.values()
            if job.status == "running" and job.lease_expires_at and job.lease_expires_at < self.now
        ]
        for job in lost:
            self._end(job, exit_code=None, reason="runner lost", finished_at=self.now)
            job.reason = "runner lost"  # also when it was asked to stop
            attempt = self.attempts[job.key]
            attempt.reason, attempt.finished_at = "runner lost", self.now
        return [job.key for job in lost]

    async def end_attempts(self, keys: list[AttemptKey], reason: str) -> list[AttemptKey]:
        await self._call("end_attempts")
        ended = [
            job
            for key in keys
            if (job := self._current(key)) is not None
            and job.lease_expires_at is not None
            and job.lease_expires_at <= self.attempts[key].claimed_at + self.lease
        ]
        for job in ended:
            self._end(job, exit_code=None, reason=reason, finished_at=self.now)
            job.reason = reason
            attempt = self.attempts[job.key]
            attempt.reason, attempt.finished_at = reason, self.now
        return [job.key for job in ended]

    async def expire_unheld(self, runner_id: str, held: list[AttemptKey]) -> list[AttemptKey]:
        await self._call("expire_unheld")
        for job in self.jobs.values():
            if job.status == "running" and job.runner_id == runner_id and job.key not in held:
                job.lease_expires_at = datetime.min.replace(tzinfo=UTC)
        return self._expire()

    def _end(self, job: Job, exit_code: int | None, reason: str, finished_at: datetime) -> None:
        """Cancelled when asked to stop, completed on success, else queued again after a
        backoff while attempts remain, else failed."""
        failed = exit_code != 0 or reason != ""
        retried = not job.cancel_requested and failed and job.attempt < job.max_attempts
        if job.cancel_requested:
            job.status, job.reason = "cancelled", "cancelled"
        elif not failed:
            job.status, job.reason = "completed", None
        else:
            job.status = "scheduled" if retried else "failed"
            job.reason = reason or f"exit code {exit_code}"
        job.run_after = self.now + retry_delay(job.attempt) if retried else None
        job.finished_at, job.updated_at, job.lease_expires_at = finished_at, self.now, None
        self._cancel_dependents()

    def _cancel_dependents(self) -> None:
        """Jobs waiting on a job failed or cancelled end cancelled, and so on down."""
        changed = True
        while changed:
            changed = False
            for job in sorted(self.jobs.values(), key=lambda job: job.id):
                broken = self._broken(job.depends_on)
                if job.status in WAITING_STATUSES and broken:
                    job.status, job.reason = "cancelled", f"dependency {broken}"
                    job.finished_at = job.updated_at = self.now
                    changed = True

    def _broken(self, depends_on: tuple[int, ...]) -> str | None:
        """The first dependency that failed or was cancelled, as a reason names it."""
        for dep in sorted(depends_on):
            status = self.jobs[dep].status
            if status in ("failed", "cancelled"):
                return f"{dep} {status}"
        return None

    # --- runner reports ----------------------------------------------------------------

    async def apply_reports(self, reports: Sequence[AttemptReport]) -> StoredReports:
        await self._call("apply_reports")
        finished = [r for r in reports if r.finished]
        refused = [self._refused(r) for r in reports if self._foreign(r)]
        reports = [r for r in reports if not self._foreign(r)]
        for report in reports:
            job = self._current(report.key)
            if job is None or report.finished:
                continue
            attempt = self.attempts[report.key]
            if report.started_at:
                job.started_at = attempt.started_at = report.started_at
            if report.output:
                self._append(attempt, "".join(report.output), report.truncated)
        ended = [
            self._finish(job, report, report.finished)
            for report in reports
            if report.finished and (job := self._current(report.key))
        ]
        return StoredReports([r.key for r in finished], ended, refused)

    def _foreign(self, report: AttemptReport) -> bool:
        """A report on a current attempt given to another runner than its sender."""
        job = self._current(report.key)
        return job is not None and report.runner_id not in (None, job.runner_id)

    def _refused(self, report: AttemptReport) -> Refused:
        job = self._current(report.key)
        assert job is not None and job.runner_id is not None and report.runner_id is not None
        return Refused(report.key, report.runner_id, job.runner_id)

    def _finish(self, job: Job, report: AttemptReport, end: Finish) -> Ended:
        job.exit_code = end.exit_code
        job.started_at = job.started_at or end.started_at or report.started_at
        self._end(job, end.exit_code, end.reason, end.finished_at)
        attempt = self.attempts[report.key]
        attempt.exit_code, attempt.reason = job.exit_code, job.reason
        attempt.started_at, attempt.finished_at = job.started_at, job.finished_at
        self._append(attempt, "".join(report.output), report.truncated)
        started = job.started_at
        waited = (started - job.created_at).total_seconds() if started else None
        ran = (end.finished_at - started).total_seconds() if started else None
        return Ended(report.key, job.status, waited if report.key.attempt == 1 else None, ran)

    def _append(self, attempt: Attempt, text: str, truncated: bool) -> None:
        whole = attempt.output + text
        attempt.output = whole[: self.output_limit]
        attempt.output_truncated |= truncated or len(whole) > self.output_limit

    # --- the public API ----------------------------------------------------------------

    def _record(
        self, caller: Caller, action: str, target: str, before: Any = None, after: Any = None
    ) -> None:
        """An audit entry, as `record_audit` writes one."""
        entry = AuditRow(
            len(self.audit) + 1,
            self.now,
            caller.actor,
            action,
            target,
            audit_json(before),
            audit_json(after),
            caller.remote,
        )
        self.audit.append(entry)

    async def list_audit(self, limit: int, before_id: int) -> list[AuditRow]:
        await self._call("list_audit")
        newest_first = [e for e in reversed(self.audit) if not before_id or e.id < before_id]
        return newest_first[:limit]

    async def create_job(self, job: NewJob, caller: Caller = LOCAL) -> JobRow:
        await self._call("create_job")
        return self._insert([job], caller)[0]

    async def create_jobs(self, jobs: list[NewJob], caller: Caller = LOCAL) -> list[JobRow]:
        await self._call("create_jobs")
        return self._insert(jobs, caller)

    async def create_jobs_apart(
        self, jobs: list[NewJob], callers: list[Caller]
    ) -> list[JobRow | None]:
        await self._call("create_jobs_apart")
        taken = {job.name for job in self.jobs.values()}
        rows: list[JobRow | None] = []
        for new, caller in zip(jobs, callers, strict=True):
            rows.append(None if new.name in taken else self._insert([new], caller)[0])
            taken.add(new.name)
        return rows

    def _insert(self, jobs: list[NewJob], caller: Caller) -> list[JobRow]:
        """Every job or none: a taken name inserts nothing."""
        taken = {job.name for job in self.jobs.values()}
        for new in jobs:
            if new.name in taken:
                raise Conflict(f"job name '{new.name}' already exists")
            taken.add(new.name)
            missing = [d for d in new.depends_on if d not in self.jobs]
            if missing:
                raise InvalidValue(f"depends_on: job {missing[0]} does not exist")
        rows = []
        for new in jobs:
            job_id = max(self.jobs, default=0) + 1
            job = Job(
                job_id,
                new.name,
                new.command,
                new.max_attempts,
                new.timeout_seconds,
                created_at=self.now,
                updated_at=self.now,
                priority=new.priority,
                depends_on=tuple(sorted(set(new.depends_on))),
                concurrency_key=new.concurrency_key,
            )
            if new.delay_seconds is not None:
                job.run_after = self.now + timedelta(seconds=new.delay_seconds)
            else:
                job.run_after = new.run_at
            if job.run_after and job.run_after > self.now:
                job.status = "scheduled"
            job.fair_seq = self._next_turn(job.concurrency_key)
            broken = self._broken(job.depends_on)
            if broken:
                job.status, job.reason, job.finished_at = (
                    "cancelled",
                    f"dependency {broken}",
                    self.now,
                )
            self.jobs[job_id] = job
            rows.append(job.row())
        after: dict[str, Any]
        if len(rows) == 1:
            after = {"name": rows[0].name, "command": rows[0].command}
            self._record(caller, "job.create", f"job/{rows[0].id}", None, after)
        elif rows:
            first, last = rows[0].id, rows[-1].id
            after = {"count": len(rows), "first_id": first, "last_id": last}
            self._record(caller, "jobs.create", f"jobs/{first}-{last}", None, after)
        return rows

    async def get_job(self, job_id: int) -> JobRow | None:
        await self._call("get_job")
        job = self.jobs.get(job_id)
        return job.row() if job else None

    async def list_jobs(self, status: str | None, limit: int, before_id: int) -> list[JobRow]:
        await self._call("list_jobs")
        newest_first = sorted(self.jobs.values(), key=lambda job: -job.id)
        return [
            job.row()
            for job in newest_first
            if (not status or job.status == status) and (not before_id or job.id < before_id)
        ][:limit]

    async def get_output(self, job_id: int, attempt: int = 0) -> dict[str, Any] | None:
        await self._call("get_output")
        numbers = [key.attempt for key in self.attempts if key.job_id == job_id]
        number = attempt or max(numbers, default=0)
        found = self.attempts.get(AttemptKey(job_id, number))
        if found is None:
            return None
        return {
            "job_id": job_id,
            "attempt": number,
            "output": found.output,
            "output_truncated": found.output_truncated,
        }

    async def list_attempts(self, job_id: int) -> list[dict[str, Any]]:
        await self._call("list_attempts")
        return [
            {
                "job_id": key.job_id,
                "attempt": key.attempt,
                "runner_id": a.runner_id,
                "claimed_at": a.claimed_at,
                "started_at": a.started_at,
                "finished_at": a.finished_at,
                "exit_code": a.exit_code,
                "reason": a.reason,
                "output_length": len(a.output),
                "output_truncated": a.output_truncated,
            }
            for key, a in sorted(self.attempts.items(), key=lambda item: item[0].attempt)
            if key.job_id == job_id
        ]

    async def get_config(self) -> tuple[int, bool]:
        await self._call("get_config")
        return self.max_concurrent, self.paused

    async def set_max_concurrent(self, value: int, caller: Caller = LOCAL) -> int:
        await self._call("set_max_concurrent")
        before, self.max_concurrent = self.max_concurrent, value
        field = "max_concurrent_jobs"
        self._record(caller, "config.update", "config", {field: before}, {field: value})
        return value

    async def set_paused(self, paused: bool, caller: Caller = LOCAL) -> bool:
        await self._call("set_paused")
        before, self.paused = self.paused, paused
        self._record(caller, "config.update", "config", {"paused": before}, {"paused": paused})
        return paused

    async def list_limits(self) -> list[KeyLimit]:
        await self._call("list_limits")
        keys = set(self.limits) | {
            j.concurrency_key
            for j in self.jobs.values()
            if j.concurrency_key and j.status in ("queued", "running")
        }
        return [self._limit(key) for key in sorted(keys)]

    async def get_limit(self, key: str) -> KeyLimit | None:
        await self._call("get_limit")
        found = self._limit(key)
        return found if key in self.limits or found.running or found.queued else None

    async def set_limit(
        self, key: str, max_concurrent_jobs: int | None, paused: bool, caller: Caller = LOCAL
    ) -> KeyLimit:
        await self._call("set_limit")
        old = self.limits.get(key)
        before = None if old is None else {"max_concurrent_jobs": old[0], "paused": old[1]}
        after = {"max_concurrent_jobs": max_concurrent_jobs, "paused": paused}
        self.limits[key] = (max_concurrent_jobs, paused)
        self._record(caller, limit_action(before, after), f"limit/{key}", before, after)
        return self._limit(key)

    async def delete_limit(self, key: str, caller: Caller = LOCAL) -> bool:
        await self._call("delete_limit")
        old = self.limits.pop(key, None)
        if old is None:
            return False
        before = {"max_concurrent_jobs": old[0], "paused": old[1]}
        self._record(caller, "limit.delete", f"limit/{key}", before, None)
        return True

    def _limit(self, key: str) -> KeyLimit:
        limit, paused = self.limits.get(key, (None, False))
        jobs = [j for j in self.jobs.values() if j.concurrency_key == key]
        running = sum(1 for j in jobs if j.status == "running")
        return KeyLimit(key, limit, paused, running, sum(1 for j in jobs if j.status == "queued"))

    async def count_by_status(self) -> dict[str, int]:
        await self._call("count_by_status")
        counts: dict[str, int] = dict.fromkeys(STATUSES, 0)
        for job in self.jobs.values():
            counts[job.status] += 1
        return counts

    async def cancel(self, job_id: int, caller: Caller = LOCAL) -> tuple[JobRow | None, bool]:
        await self._call("cancel")
        job = self.jobs.get(job_id)
        if job is None:
            return None, False
        before = {"status": job.status}
        if job.status in WAITING_STATUSES:
            job.status, job.reason = "cancelled", "cancelled"
            job.finished_at = job.updated_at = self.now
            self._cancel_dependents()
        elif job.status == "running":
            job.cancel_requested, job.updated_at = True, self.now
        else:
            return job.row(), False
        self._record(caller, "job.cancel", f"job/{job_id}", before, {"status": job.status})
        return job.row(), True

    async def retry(self, job_id: int, caller: Caller = LOCAL) -> tuple[JobRow | None, bool]:
        await self._call("retry")
        job = self.jobs.get(job_id)
        if job is None or job.status not in TERMINAL_STATUSES or self._broken(job.depends_on):
            return (job.row() if job else None), False
        self._record(
            caller, "job.retry", f"job/{job_id}", {"status": job.status}, {"status": "queued"}
        )
        job.status, job.updated_at = "queued", self.now
        job.run_after = job.reason = job.exit_code = job.started_at = job.finished_at = None
        job.max_attempts = max(job.max_attempts, job.attempt + 1)
        return job.row(), True
