"""The FastAPI application: REST routes over the scheduler's JobService."""

import hmac
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

import grpc
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from jobsched.v1 import jobs_pb2 as pb
from jobsched.v1 import jobs_pb2_grpc
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import live
from .metrics import RequestMetrics, metrics_endpoint
from .schemas import (
    MAX_ID,
    STATUS_TO_PB,
    Attempt,
    Config,
    Job,
    JobCreate,
    JobOutput,
    JobsCreate,
    JsonBody,
    Stats,
    Status,
    attempt_json,
    job_json,
)
from .settings import Settings

JobId = Annotated[int, PathParam(ge=1, le=MAX_ID)]

# How gRPC failures reach a REST client: a clear 4xx for bad input, 503 when the
# scheduler or its database is away, never a bare 500.
HTTP_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 422,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.FAILED_PRECONDITION: 409,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 503,
}


class BodyLimit:
    """Answers 413 to a request body larger than the limit, counted as it arrives."""

    def __init__(self, app: ASGIApp, limit: int):
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await _too_large(scope, receive, send, self.limit)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise HTTPException(413, f"request body larger than {self.limit} bytes")
            return message

        await self.app(scope, counted, send)


async def _too_large(scope: Scope, receive: Receive, send: Send, limit: int) -> None:
    response = JSONResponse({"detail": f"request body larger than {limit} bytes"}, 413)
    await response(scope, receive, send)


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with grpc.aio.insecure_channel(settings.SCHEDULER_ADDR) as channel:
            app.state.jobs = jobs_pb2_grpc.JobServiceStub(channel)
            yield

    app = FastAPI(
        title="jobsched",
        description="Run shell commands under a global concurrency limit.",
        version="0.1.0",
        lifespan=lifespan,
    )
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PUT"],
            allow_headers=["Authorization", "Content-Type"],
        )
    app.add_middleware(BodyLimit, limit=settings.MAX_BODY_BYTES)
    app.add_middleware(RequestMetrics)
    app.add_route("/metrics", metrics_endpoint, include_in_schema=False)

    @app.exception_handler(grpc.aio.AioRpcError)
    async def grpc_error(request: Request, exc: grpc.aio.AioRpcError) -> JSONResponse:
        status = HTTP_STATUS.get(exc.code(), 502)
        detail = exc.details() or exc.code().name
        if status == 503:
            detail = f"scheduler unavailable: {detail}"
        return JSONResponse({"detail": detail}, status)

    async def require_token(request: Request) -> None:
        """Async, so that FastAPI runs it on the loop, not in a worker thread."""
        if not settings.API_TOKEN:
            return
        given = request.headers.get("authorization", "")
        expected = f"Bearer {settings.API_TOKEN}"
        if not hmac.compare_digest(given.encode(), expected.encode()):
            raise HTTPException(
                401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"}
            )

    authorized = [Depends(require_token)]
    timeout = settings.REQUEST_TIMEOUT_SECONDS

    def call(request: Request, method: str) -> Callable[..., Awaitable[Any]]:
        stub = request.app.state.jobs
        rpc: Callable[..., Awaitable[Any]] = getattr(stub, method)

        async def invoke(message: Any) -> Any:
            return await rpc(message, timeout=timeout)

        return invoke

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/api/jobs", response_model=list[Job], dependencies=authorized)
    async def list_jobs(
        request: Request,
        status: Status | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        before: Annotated[
            int | None, Query(ge=1, le=MAX_ID, description="keyset cursor: ids below")
        ] = None,
    ) -> JsonBody:
        """Jobs, newest first. Follow the `Link: rel="next"` header for the next page."""
        reply: pb.ListJobsResponse = await call(request, "ListJobs")(
            pb.ListJobsRequest(
                status=STATUS_TO_PB[status] if status else pb.JOB_STATUS_UNSPECIFIED,
                limit=limit,
                before_id=before or 0,
            )
        )
        headers = {}
        if reply.next_before_id:
            query = {"limit": limit, "before": reply.next_before_id}
            if status:
                query["status"] = status  # type: ignore[assignment]
            headers["Link"] = f'</api/jobs?{urlencode(query)}>; rel="next"'
        return JsonBody([job_json(j) for j in reply.jobs], headers=headers)

    @app.post("/api/jobs/create", status_code=201, response_model=Job, dependencies=authorized)
    async def create_job(request: Request, body: JobCreate) -> JsonBody:
        job = await call(request, "CreateJob")(body.to_pb())
        return JsonBody(job_json(job), status_code=201)

    @app.post("/api/jobs/bulk", status_code=201, response_model=list[Job], dependencies=authorized)
    async def create_jobs(request: Request, body: JobsCreate) -> JsonBody:
        """Up to 1000 jobs in one insert, all or none: a name that is taken fails the
        whole request (409). The jobs come back in the order given."""
        reply = await call(request, "CreateJobs")(body.to_pb())
        return JsonBody([job_json(j) for j in reply.jobs], status_code=201)

    @app.get("/api/jobs/{job_id}", response_model=Job, dependencies=authorized)
    async def get_job(request: Request, job_id: JobId) -> JsonBody:
        return JsonBody(job_json(await call(request, "GetJob")(pb.GetJobRequest(id=job_id))))

    @app.get("/api/jobs/{job_id}/output", dependencies=authorized)
    async def get_output(
        request: Request,
        job_id: JobId,
        attempt: Annotated[int, Query(ge=0, le=2**31 - 1, description="0: the latest")] = 0,
    ) -> JobOutput:
        out = await call(request, "GetJobOutput")(
            pb.GetJobOutputRequest(id=job_id, attempt=attempt)
        )
        return JobOutput(
            job_id=out.job_id, attempt=out.attempt, output=out.output, truncated=out.truncated
        )

    @app.post("/api/jobs/{job_id}/cancel", response_model=Job, dependencies=authorized)
    async def cancel_job(request: Request, job_id: JobId) -> JsonBody:
        """Ends a queued job at once; stops a running one (it then ends `cancelled`)."""
        return JsonBody(job_json(await call(request, "CancelJob")(pb.CancelJobRequest(id=job_id))))

    @app.post("/api/jobs/{job_id}/retry", response_model=Job, dependencies=authorized)
    async def retry_job(request: Request, job_id: JobId) -> JsonBody:
        """Queues a finished job again (with one more attempt if it had used them all)."""
        return JsonBody(job_json(await call(request, "RetryJob")(pb.RetryJobRequest(id=job_id))))

    @app.get("/api/jobs/{job_id}/attempts", response_model=list[Attempt], dependencies=authorized)
    async def list_attempts(request: Request, job_id: JobId) -> JsonBody:
        """Every attempt of the job, oldest first: runner, timings, exit code, reason."""
        reply = await call(request, "ListAttempts")(pb.ListAttemptsRequest(job_id=job_id))
        return JsonBody([attempt_json(a) for a in reply.attempts])

    @app.get("/api/config", dependencies=authorized)
    async def get_config(request: Request) -> Config:
        config = await call(request, "GetConfig")(pb.GetConfigRequest())
        return Config(max_concurrent_jobs=config.max_concurrent_jobs)

    @app.put("/api/config", dependencies=authorized)
    async def put_config(request: Request, body: Config) -> Config:
        config = await call(request, "UpdateConfig")(
            pb.UpdateConfigRequest(max_concurrent_jobs=body.max_concurrent_jobs)
        )
        return Config(max_concurrent_jobs=config.max_concurrent_jobs)

    @app.get("/api/stats", dependencies=authorized)
    async def get_stats(request: Request) -> Stats:
        s = await call(request, "GetStats")(pb.GetStatsRequest())
        return Stats(
            queued=s.queued,
            running=s.running,
            completed=s.completed,
            failed=s.failed,
            cancelled=s.cancelled,
            total=s.total,
            max_concurrent_jobs=s.max_concurrent_jobs,
            runners_connected=s.runners_connected,
        )

    app.include_router(live.router(settings))  # GET /api/events: server-sent events

    web_dir = Path(settings.WEB_DIR)
    if web_dir.is_dir():
        app.mount("/", StaticFiles(directory=web_dir, html=True), name="web")
    return app
