"""Why a job is not running: its blockers, from the same rules and tables as the claim,
read in one snapshot, with a sentence for a person on each."""

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from jobsched_common.limits import DEFAULT_MAX_CONCURRENT_JOBS
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from .errors import NotFound, Unavailable
from .queries import q

# Counting the eligible jobs ahead stops here: past it, "10,000 or more".
POSITION_CAP = 10_000
Row = dict[str, Any]


@dataclass(frozen=True)
class Blocker:
    kind: str
    message: str
    limit: int = 0
    running: int = 0
    holders: list[int] = field(default_factory=list)
    key: str = ""
    run_at: datetime | None = None
    waiting_on: list[int] = field(default_factory=list)
    position: int = 0


@dataclass(frozen=True)
class Explanation:
    job_id: int
    status: str
    runnable: bool
    position: int | None
    blockers: list[Blocker]
    message: str


def _when(at: datetime | None) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S UTC") if at else "an unknown time"


def _ids(ids: Iterable[int]) -> str:
    return ", ".join(str(i) for i in ids)


def _plural(n: int, one: str, many: str) -> str:
    return one if n == 1 else many


def _time_blockers(job: Row) -> list[Blocker]:
    if job["status"] != "scheduled":
        return []
    run_at = job["run_at"]
    if run_at is None:
        return [Blocker("not_before", "It is due now and is queued at the next claim.")]
    return [Blocker("not_before", f"It waits until {_when(run_at)} to be queued.", run_at=run_at)]


def _dependency_blockers(job: Row) -> list[Blocker]:
    if job["unmet_dependencies"] <= 0:
        return []
    waiting = list(job["waiting_on"])
    jobs = _plural(len(waiting), "job", "jobs")
    return [
        Blocker(
            "dependencies",
            f"It waits for {jobs} {_ids(waiting)} to complete.",
            waiting_on=waiting,
        )
    ]


def _key_blockers(job: Row) -> list[Blocker]:
    key = job["concurrency_key"]
    if key is None:
        return []
    found = []
    if job["key_paused"]:
        found.append(Blocker("key_paused", f"Its concurrency key '{key}' is paused.", key=key))
    limit, running = job["key_limit"], job["key_running"]
    if limit is not None and running >= limit:
        message = f"Its concurrency key '{key}' is at its limit: {running} of {limit} running."
        found.append(
            Blocker(
                "key_limit",
                message,
                limit=limit,
                running=running,
                holders=list(job["key_holders"]),
                key=key,
            )
        )
    return found


def _pause_blockers(job: Row) -> list[Blocker]:
    if not job["paused"]:
        return []
    return [Blocker("paused", "The scheduler is paused: no job starts until it is resumed.")]


def _global_limit_blockers(job: Row) -> list[Blocker]:
    limit, running = job["global_limit"], job["global_running"]
    if running < limit:
        return []
    return [
        Blocker(
            "global_limit",
            f"The global limit is reached: {running} of {limit} jobs are running.",
            limit=limit,
            running=running,
            holders=list(job["global_holders"]),
        )
    ]


def runner_blockers(free_slots: list[int]) -> list[Blocker]:
    """From the runners connected to this scheduler: their free slots, one a runner."""
    if not free_slots:
        return [Blocker("no_runners", "No runner is connected to this scheduler.")]
    if not any(free_slots):
        return [Blocker("runner_capacity", "Every connected runner's slots are taken.")]
    return []


def behind_blocker(position: int, cap: int = POSITION_CAP) -> Blocker:
    ahead = f"{cap:,} or more" if position >= cap else f"{position:,}"
    jobs = _plural(position, "job is", "jobs are")
    message = f"{ahead} eligible {jobs} ahead of it in the claim's order."
    return Blocker("behind", message, position=position)


def _ended_message(job: Row) -> str:
    status = job["status"]
    if status == "running":
        return (
            f"Running on {job['runner_id'] or 'a runner'} since {_when(job['since'])} "
            f"(attempt {job['attempt']} of {job['max_attempts']})."
        )
    because = f" ({job['reason']})" if job["reason"] else ""
    return f"{status.capitalize()} at {_when(job['finished_at'])}{because}."


def _waiting_message(job_id: int, status: str, blockers: list[Blocker]) -> str:
    stopping = [b for b in blockers if b.kind != "behind"]
    if stopping:
        first = stopping[0].message
        return f"Job {job_id} is {status} and cannot start yet: {first[0].lower()}{first[1:]}"
    if blockers:
        return f"Job {job_id} can start; {blockers[0].message[0].lower()}{blockers[0].message[1:]}"
    return f"Job {job_id} is next: it starts as soon as a runner takes it."


# What keeps a job out of the claim's line altogether (the others hold the whole line).
OUT_OF_LINE = frozenset({"not_before", "dependencies", "key_paused", "key_limit"})


def explanation(
    job: Row, position: int | None, free_slots: list[int], cap: int = POSITION_CAP
) -> Explanation:
    """The answer for a job's facts (explain_job's row), its position when queued (at
    most `cap`), and the free slots of the runners connected here."""
    status = job["status"] or "queued"
    if status not in ("queued", "scheduled"):
        return Explanation(job["id"], status, False, None, [], _ended_message(job))
    blockers = [
        *_time_blockers(job),
        *_dependency_blockers(job),
        *_pause_blockers(job),
        *_key_blockers(job),
        *_global_limit_blockers(job),
        *runner_blockers(free_slots),
    ]
    if any(b.kind in OUT_OF_LINE for b in blockers):
        position = None  # not in the line the claim takes from: no place in it
    if position:
        blockers.append(behind_blocker(position, cap))
    runnable = all(b.kind == "behind" for b in blockers)
    message = _waiting_message(job["id"], status, blockers)
    return Explanation(job["id"], status, runnable, position, blockers, message)


class PgExplainer:
    """Reads a job's facts and its position in one read-only snapshot."""

    def __init__(self, pool: AsyncConnectionPool[Any], position_cap: int = POSITION_CAP):
        self.pool = pool
        self.position_cap = position_cap

    async def facts(self, job_id: int) -> tuple[Row, int | None]:
        try:
            return await self._facts(job_id)
        except psycopg.OperationalError as exc:
            raise Unavailable("database unavailable") from exc

    async def _facts(self, job_id: int) -> tuple[Row, int | None]:
        async with self.pool.connection() as conn, conn.transaction():
            await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(
                q("explain_job"), {"id": job_id, "default_limit": DEFAULT_MAX_CONCURRENT_JOBS}
            )
            job = await cur.fetchone()
            if job is None:
                raise NotFound(f"job {job_id} not found")
            if (job["status"] or "queued") != "queued":
                return job, None
            params = {k: job[k] for k in ("id", "priority", "fair_seq")} | {
                "cap": self.position_cap
            }
            await cur.execute(q("explain_position"), params)
            counted = await cur.fetchone()
            return job, int(counted["position"]) if counted else 0
