"""The JobService: the public gRPC API used by the gateway and any gRPC client."""

import asyncio
import logging
from collections.abc import AsyncGenerator

from jobsched.v1 import jobs_pb2 as pb
from jobsched.v1 import jobs_pb2_grpc
from jobsched_common.limits import TERMINAL_STATUSES

from . import messages, metrics, validation
from .access import current_caller
from .audit_messages import audit_page, audit_request
from .bulk import PgBulk
from .create_batch import CreateBatcher
from .dispatch import Dispatcher
from .errors import DomainError, FellBehind, NotFound, Unavailable, WrongState
from .events import EventHub
from .explain import PgExplainer, explanation
from .insight_messages import explanation_message, series_message
from .model import AttemptKey, JobFilter, JobRow
from .ports import Store
from .rpc import Ctx, refusal, rpc, rpc_stream
from .series import PgSeries

log = logging.getLogger(__name__)


def _found(row: JobRow | None, job_id: int) -> JobRow:
    if row is None:
        raise NotFound(f"job {job_id} not found")
    return row


def _changed(outcome: tuple[JobRow | None, bool], job_id: int, refusal: str) -> JobRow:
    """The job a cancel or retry changed; else why it could not be changed."""
    row, changed = outcome
    row = _found(row, job_id)
    if not changed:
        raise WrongState(f"job {job_id} " + refusal.format(status=row.status))
    return row


def _target(ids: list[int] | None, where: JobFilter | None) -> str:
    """A bulk action's jobs, for the log."""
    if ids is not None:
        return f"{len(ids)} ids"
    assert where is not None
    return f"filter status={where.status or 'any'} q={where.text or ''!r}"


class JobApi(jobs_pb2_grpc.JobServiceServicer):
    def __init__(
        self,
        store: Store,
        dispatcher: Dispatcher,
        events: EventHub,
        *,
        explainer: PgExplainer | None = None,
        series: PgSeries | None = None,
        bulk: PgBulk | None = None,
    ):
        self.store = store
        self.dispatcher = dispatcher
        self.events = events
        self.explainer = explainer
        self.series = series
        self.bulk = bulk
        self.creates = CreateBatcher(store.create_jobs_apart)

    def _bulk(self) -> PgBulk:
        if self.bulk is None:
            raise Unavailable("search, deletes and bulk actions are not served by this scheduler")
        return self.bulk

    @rpc
    async def CreateJob(self, request: pb.CreateJobRequest, context: Ctx) -> pb.Job:
        return messages.job_message(await self._create(request))

    async def _create(self, request: pb.CreateJobRequest) -> JobRow:
        job = validation.new_job(request)
        row = await self.creates.create(job, current_caller())
        log.info("Created new job: %s", job.name, extra={"job_id": row.id})
        metrics.JOBS_CREATED.inc()
        return row

    async def _create_alone(self, request: pb.CreateJobRequest) -> pb.CreateJobResult:
        """One job of a CreateJobs with each_alone: its job, or its own refusal."""
        try:
            return pb.CreateJobResult(job=messages.job_message(await self._create(request)))
        except DomainError as exc:
            return pb.CreateJobResult(refusal=refusal(exc))

    @rpc
    async def CreateJobs(
        self, request: pb.CreateJobsRequest, context: Ctx
    ) -> pb.CreateJobsResponse:
        if request.each_alone:
            validation.batch_size(len(request.jobs))
            results = await asyncio.gather(*map(self._create_alone, request.jobs))
            return pb.CreateJobsResponse(results=results)
        rows = await self.store.create_jobs(validation.new_jobs(request.jobs), current_caller())
        log.info("Created %d new jobs (ids %d to %d)", len(rows), rows[0].id, rows[-1].id)
        metrics.JOBS_CREATED.inc(len(rows))
        return pb.CreateJobsResponse(jobs=[messages.job_message(row) for row in rows])

    @rpc
    async def GetJob(self, request: pb.GetJobRequest, context: Ctx) -> pb.Job:
        job_id = validation.job_id(request.id)
        return messages.job_message(_found(await self.store.get_job(job_id), job_id))

    @rpc
    async def ListJobs(self, request: pb.ListJobsRequest, context: Ctx) -> pb.ListJobsResponse:
        page = validation.jobs_page(request)
        if text := validation.search_text(request.q):
            rows = await self._bulk().search(page.status, text, page.limit, page.before_id)
        else:
            rows = await self.store.list_jobs(page.status, page.limit, page.before_id)
        jobs = messages.job_page(rows)
        more = len(jobs) < len(rows) or len(rows) == page.limit
        return pb.ListJobsResponse(jobs=jobs, next_before_id=jobs[-1].id if more else 0)

    @rpc
    async def GetJobOutput(self, request: pb.GetJobOutputRequest, context: Ctx) -> pb.JobOutput:
        job_id = validation.job_id(request.id)
        row = await self.store.get_output(job_id, validation.attempt_number(request.attempt))
        if row is None:
            _found(await self.store.get_job(job_id), job_id)
        return messages.output_message(job_id, row)

    @rpc
    async def CancelJob(self, request: pb.CancelJobRequest, context: Ctx) -> pb.Job:
        job_id = validation.job_id(request.id)
        row = _changed(
            await self.store.cancel(job_id, current_caller()), job_id, "is already {status}"
        )
        if row.status == "running":
            self.dispatcher.kill(row.runner_id or "", AttemptKey(row.id, row.attempt), "cancelled")
        log.info("Cancelled job %d (%s)", row.id, row.status, extra={"job_id": row.id})
        return messages.job_message(row)

    @rpc
    async def RetryJob(self, request: pb.RetryJobRequest, context: Ctx) -> pb.Job:
        job_id = validation.job_id(request.id)
        outcome = await self.store.retry(job_id, current_caller())
        refusal = "is {status}: only a finished job can be retried"
        if outcome[0] is not None and outcome[0].status in TERMINAL_STATUSES:
            refusal = "depends on a job that failed or was cancelled: retry that one first"
        row = _changed(outcome, job_id, refusal)
        log.info("Queued job %d again", row.id, extra={"job_id": row.id})
        return messages.job_message(row)

    @rpc
    async def DeleteJob(self, request: pb.DeleteJobRequest, context: Ctx) -> pb.DeleteJobResponse:
        job_id = validation.job_id(request.id)
        await self._bulk().delete(job_id, current_caller())
        log.info("Deleted job %d", job_id, extra={"job_id": job_id})
        return pb.DeleteJobResponse()

    @rpc
    async def CancelJobs(self, request: pb.BulkJobsRequest, context: Ctx) -> pb.BulkJobsResponse:
        ids, where = validation.bulk_target(request)
        changed = await self._bulk().cancel(ids, where, current_caller())
        for job in changed:
            if job.status == "running":
                self.dispatcher.kill(job.runner_id or "", job.key, "cancelled")
        log.info("Cancelled %d jobs (%s)", len(changed), _target(ids, where))
        return pb.BulkJobsResponse(changed=len(changed))

    @rpc
    async def RetryJobs(self, request: pb.BulkJobsRequest, context: Ctx) -> pb.BulkJobsResponse:
        ids, where = validation.bulk_target(request)
        changed = await self._bulk().retry(ids, where, current_caller())
        log.info("Queued %d jobs again (%s)", changed, _target(ids, where))
        return pb.BulkJobsResponse(changed=changed)

    @rpc
    async def ListAttempts(
        self, request: pb.ListAttemptsRequest, context: Ctx
    ) -> pb.ListAttemptsResponse:
        job_id = validation.job_id(request.job_id)
        rows = await self.store.list_attempts(job_id)
        if not rows:
            _found(await self.store.get_job(job_id), job_id)
        return pb.ListAttemptsResponse(attempts=[messages.attempt_message(r) for r in rows])

    @rpc
    async def ListAudit(self, request: pb.ListAuditRequest, context: Ctx) -> pb.ListAuditResponse:
        page = audit_request(request)
        return audit_page(await self.store.list_audit(page.limit, page.before_id), page.limit)

    @rpc
    async def GetConfig(self, request: pb.GetConfigRequest, context: Ctx) -> pb.Config:
        return await self._config()

    @rpc
    async def UpdateConfig(self, request: pb.UpdateConfigRequest, context: Ctx) -> pb.Config:
        limit, paused = validation.config_change(request)
        if limit is not None:
            log.info(
                "Updated max_concurrent_jobs to %d",
                await self.store.set_max_concurrent(limit, current_caller()),
            )
        if paused is not None:
            await self.store.set_paused(paused, current_caller())
            log.info("Paused: new jobs wait" if paused else "Resumed: jobs start again")
        return await self._config()

    async def _config(self) -> pb.Config:
        limit, paused = await self.store.get_config()
        return pb.Config(max_concurrent_jobs=limit, paused=paused)

    @rpc
    async def GetStats(self, request: pb.GetStatsRequest, context: Ctx) -> pb.Stats:
        counts = await self.store.count_by_status()
        limit, paused = await self.store.get_config()
        return pb.Stats(
            queued=counts["queued"],
            running=counts["running"],
            completed=counts["completed"],
            failed=counts["failed"],
            cancelled=counts["cancelled"],
            scheduled=counts["scheduled"],
            total=sum(counts.values()),
            max_concurrent_jobs=limit,
            paused=paused,
            runners_connected=len(self.dispatcher.runners),
        )

    @rpc
    async def ExplainJob(self, request: pb.ExplainJobRequest, context: Ctx) -> pb.JobExplanation:
        if self.explainer is None:
            raise Unavailable("ExplainJob is not served by this scheduler")
        job, position = await self.explainer.facts(validation.job_id(request.id))
        free_slots = list(self.dispatcher.offered().values())
        answer = explanation(job, position, free_slots, self.explainer.position_cap)
        return explanation_message(answer)

    @rpc
    async def GetSeries(self, request: pb.GetSeriesRequest, context: Ctx) -> pb.Series:
        if self.series is None:
            raise Unavailable("GetSeries is not served by this scheduler")
        return series_message(await self.series.series(request.window_seconds, request.key))

    @rpc_stream
    async def WatchEvents(
        self, request: pb.WatchEventsRequest, context: Ctx
    ) -> AsyncGenerator[pb.JobEvent, None]:
        watcher = self.events.subscribe()
        try:
            while not watcher.dropped:
                try:
                    event = await asyncio.wait_for(watcher.queue.get(), 1.0)
                except TimeoutError:
                    continue
                yield messages.event_message(event)
            raise FellBehind("watcher fell behind")
        finally:
            self.events.unsubscribe(watcher)
