"""`/api/jobs`: create, list, read, cancel and retry jobs, their attempts and output."""

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Response
from jobsched.v1 import jobs_pb2 as pb
from jobsched_common.limits import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, Status

from ..bulk_schemas import BulkJobs, BulkResult, CreateOutcome, SearchText, outcome_json
from ..create_coalesce import CreateCoalescer, coalescer
from ..scheduler import Scheduler
from ..schemas import (
    STATUS_TO_PB,
    Attempt,
    Int32,
    Int64,
    Job,
    JobCreate,
    JobOutput,
    JobsCreate,
    JsonBody,
    attempt_json,
    job_json,
    schema_only,
)

JobId = Annotated[Int64, schema_only(minimum=1)]
PageSize = Annotated[
    Annotated[Int32, schema_only(minimum=1, maximum=MAX_PAGE_SIZE)] | None,
    Query(description=f"jobs on a page; {DEFAULT_PAGE_SIZE} when not given"),
]
Cursor = Annotated[
    Annotated[Int64, schema_only(minimum=1)] | None,
    Query(description="keyset cursor: ids below"),
]
AttemptNumber = Annotated[
    Annotated[Int32, schema_only(minimum=0)], Query(description="0: the latest")
]

Creates = Annotated[CreateCoalescer, Depends(coalescer)]

router = APIRouter()


@router.get("/api/jobs", response_model=list[Job])
async def list_jobs(
    scheduler: Scheduler,
    status: Status | None = None,
    limit: PageSize = None,
    before: Cursor = None,
    q: Annotated[SearchText | None, Query()] = None,
) -> JsonBody:
    """Jobs, newest first. Follow the `Link: rel="next"` header for the next page.
    With `q`, only jobs whose name or command contains it, in any case."""
    request = pb.ListJobsRequest(q=q or "")
    if status is not None:  # only what the client gave: the scheduler judges it
        request.status = STATUS_TO_PB[status]
    if limit is not None:
        request.limit = limit
    if before is not None:
        request.before_id = before
    reply: pb.ListJobsResponse = await scheduler.call("ListJobs", request)
    headers = {}
    if reply.next_before_id:
        query: dict[str, str | int] = {} if limit is None else {"limit": limit}
        query["before"] = reply.next_before_id
        if status:
            query["status"] = status
        if q:
            query["q"] = q
        headers["Link"] = f'</api/jobs?{urlencode(query)}>; rel="next"'
    return JsonBody([job_json(j) for j in reply.jobs], headers=headers)


@router.post("/api/jobs/create", status_code=201, response_model=Job)
async def create_job(scheduler: Scheduler, creates: Creates, body: JobCreate) -> JsonBody:
    job = await creates.create(scheduler, body.to_pb())
    return JsonBody(job_json(job), status_code=201)


EACH_ALONE: dict[int | str, dict[str, Any]] = {
    200: {"model": list[CreateOutcome], "description": "With `each_alone`."}
}


@router.post("/api/jobs/bulk", status_code=201, response_model=list[Job], responses=EACH_ALONE)
async def create_jobs(scheduler: Scheduler, body: JobsCreate) -> JsonBody:
    """Up to 1000 jobs in one insert, all or none: a name that is taken fails the
    whole request (409). The jobs come back in the order given. With `each_alone`,
    each job is created or refused on its own: 200, and one `{job}` or `{error:
    {status, detail}}` a job, in the order given."""
    reply = await scheduler.call("CreateJobs", body.to_pb())
    if body.each_alone:
        return JsonBody([outcome_json(result) for result in reply.results])
    return JsonBody([job_json(j) for j in reply.jobs], status_code=201)


@router.post("/api/jobs/cancel", response_model=BulkResult)
async def cancel_jobs(scheduler: Scheduler, body: BulkJobs) -> JsonBody:
    """Cancels the listed jobs, or every job matching the filter, that has not finished:
    a queued one ends at once, a running one is stopped. How many changed."""
    reply = await scheduler.call("CancelJobs", body.to_pb())
    return JsonBody({"changed": reply.changed})


@router.post("/api/jobs/retry", response_model=BulkResult)
async def retry_jobs(scheduler: Scheduler, body: BulkJobs) -> JsonBody:
    """Queues the listed jobs, or every job matching the filter, that has finished, again
    (a job whose dependency failed or is gone is passed over). How many changed."""
    reply = await scheduler.call("RetryJobs", body.to_pb())
    return JsonBody({"changed": reply.changed})


@router.get("/api/jobs/{job_id}", response_model=Job)
async def get_job(scheduler: Scheduler, job_id: JobId) -> JsonBody:
    return JsonBody(job_json(await scheduler.call("GetJob", pb.GetJobRequest(id=job_id))))


@router.delete("/api/jobs/{job_id}", status_code=204)
async def delete_job(scheduler: Scheduler, job_id: JobId) -> Response:
    """Deletes a finished job with its attempts and output (409 if it has not finished)."""
    await scheduler.call("DeleteJob", pb.DeleteJobRequest(id=job_id))
    return Response(status_code=204)


@router.get("/api/jobs/{job_id}/output")
async def get_output(scheduler: Scheduler, job_id: JobId, attempt: AttemptNumber = 0) -> JobOutput:
    out = await scheduler.call("GetJobOutput", pb.GetJobOutputRequest(id=job_id, attempt=attempt))
    return JobOutput(
        job_id=out.job_id, attempt=out.attempt, output=out.output, truncated=out.truncated
    )


@router.post("/api/jobs/{job_id}/cancel", response_model=Job)
async def cancel_job(scheduler: Scheduler, job_id: JobId) -> JsonBody:
    """Ends a queued job at once; stops a running one (it then ends `cancelled`)."""
    return JsonBody(job_json(await scheduler.call("CancelJob", pb.CancelJobRequest(id=job_id))))


@router.post("/api/jobs/{job_id}/retry", response_model=Job)
async def retry_job(scheduler: Scheduler, job_id: JobId) -> JsonBody:
    """Queues a finished job again (with one more attempt if it had used them all)."""
    return JsonBody(job_json(await scheduler.call("RetryJob", pb.RetryJobRequest(id=job_id))))


@router.get("/api/jobs/{job_id}/attempts", response_model=list[Attempt])
async def list_attempts(scheduler: Scheduler, job_id: JobId) -> JsonBody:
    """Every attempt of the job, oldest first: runner, timings, exit code, reason."""
    reply = await scheduler.call("ListAttempts", pb.ListAttemptsRequest(job_id=job_id))
    return JsonBody([attempt_json(a) for a in reply.attempts])
