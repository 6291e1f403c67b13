"""The store as dispatch, reports, leases, the runner link and the API see it: PgStore is
its adapter for PostgreSQL, and the unit tests have an in-memory one."""

from collections.abc import Sequence
from typing import Any, Protocol

from .audit import AuditRow, Caller
from .model import AttemptKey, AttemptReport, ClaimResult, JobRow, KeyLimit, NewJob, StoredReports


class Store(Protocol):
    # --- dispatch: the claim, and the leases of what it handed out -------------------

    async def claim(self, free_by_runner: dict[str, int]) -> ClaimResult:
        """Queues the `scheduled` jobs that fell due, then claims eligible queued jobs in
        the claim's order (highest priority, then oldest) for free runner slots, at most
        up to limit - running (none while paused), and opens their attempts with a lease."""

    async def renew_leases(
        self, runner_id: str, keys: list[AttemptKey]
    ) -> tuple[set[AttemptKey], set[AttemptKey]]:
        """The attempts still current (now renewed), and those of them asked to stop."""

    async def expire_leases(self) -> list[AttemptKey]:
        """Ends the attempts whose lease ran out: retried when attempts remain."""

    async def expire_unheld(self, runner_id: str, held: list[AttemptKey]) -> list[AttemptKey]:
        """Ends the runner's running attempts that it does not hold (it registered again
        without them) as lost leases end; returns every attempt ended so."""

    async def end_attempts(self, keys: list[AttemptKey], reason: str) -> list[AttemptKey]:
        """Ends these attempts, if still current and their lease never renewed since
        the claim, as lost leases end (retried when attempts remain) with this reason;
        returns those it ended."""

    # --- runner reports ----------------------------------------------------------------

    async def apply_reports(self, reports: Sequence[AttemptReport]) -> StoredReports:
        """Stores a batch at once (all or nothing); stale attempts change nothing."""

    # --- the public API ----------------------------------------------------------------

    # Each write takes its caller and records it in the audit log (audit.py), in the
    # write's own transaction.

    async def create_job(self, job: NewJob, caller: Caller = ...) -> JobRow: ...

    async def create_jobs(self, jobs: list[NewJob], caller: Caller = ...) -> list[JobRow]: ...

    async def create_jobs_apart(
        self, jobs: list[NewJob], callers: list[Caller]
    ) -> list[JobRow | None]:
        """Jobs of different callers in one insert: None for one whose name is taken."""

    async def get_job(self, job_id: int) -> JobRow | None: ...

    async def list_jobs(self, status: str | None, limit: int, before_id: int) -> list[JobRow]: ...

    async def get_output(self, job_id: int, attempt: int = 0) -> dict[str, Any] | None: ...

    async def list_attempts(self, job_id: int) -> list[dict[str, Any]]: ...

    async def get_config(self) -> tuple[int, bool]:
        """The concurrency limit and whether new starts are held."""
        ...

    async def set_max_concurrent(self, value: int, caller: Caller = ...) -> int: ...

    async def set_paused(self, paused: bool, caller: Caller = ...) -> bool: ...

    # --- concurrency keys ------------------------------------------------------------

    async def list_limits(self) -> list[KeyLimit]: ...

    async def get_limit(self, key: str) -> KeyLimit | None:
        """None when the key has no limit and no jobs queued or running."""

    async def set_limit(
        self, key: str, max_concurrent_jobs: int | None, paused: bool, caller: Caller = ...
    ) -> KeyLimit: ...

    async def delete_limit(self, key: str, caller: Caller = ...) -> bool:
        """Whether the key had a limit to remove."""

    async def count_by_status(self) -> dict[str, int]: ...

    async def list_audit(self, limit: int, before_id: int) -> list[AuditRow]:
        """A page of the audit log, newest first, below `before_id` (0: the newest)."""

    async def cancel(self, job_id: int, caller: Caller = ...) -> tuple[JobRow | None, bool]:
        """The job as it now is (None when it does not exist), and whether this changed it."""

    async def retry(self, job_id: int, caller: Caller = ...) -> tuple[JobRow | None, bool]:
        """The job as it now is (None when it does not exist), and whether this queued it."""
