"""The FastAPI application: middleware, error handlers, the routers and the dashboard."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import grpc
from fastapi import Depends, FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles

from .auth import Authorize
from .body_limit import BodyLimit
from .create_coalesce import CreateCoalescer
from .docs import add_docs
from .errors import invalid_request
from .front_door import FrontDoor
from .metrics import RequestMetrics
from .routes import (
    audit,
    config,
    events,
    health,
    identity,
    insight,
    jobs,
    limits,
    login,
    schedules,
)
from .scheduler import connect, grpc_error
from .security_headers import SecurityHeaders
from .settings import Settings
from .stream_slots import StreamSlots
from .url_text import UrlText


def create_app(settings: Settings) -> FastAPI:
    """The app's `state.stopping` ends the event streams when set: `main` makes it the
    process's shutdown event; without one (a test client), the app's end sets it."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        timeout = settings.REQUEST_TIMEOUT_SECONDS
        async with connect(settings.SCHEDULER_ADDR, timeout, settings.tls) as client:
            app.state.scheduler = client
            try:
                yield
            finally:
                app.state.stopping.set()

    app = FastAPI(
        title="jobsched",
        description="Run shell commands under a global concurrency limit.",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,  # add_docs serves it, from local files
        redoc_url=None,
        # The gateway's metrics are its own (metrics.py); FastAPI's OpenTelemetry would
        # otherwise ask the global providers on every request whether it is wanted.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.stopping = asyncio.Event()
    app.state.stream_slots = StreamSlots(settings.MAX_EVENT_STREAMS)
    app.state.creates = CreateCoalescer()
    app.state.api_tokens = settings.api_tokens
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
        )
    app.add_middleware(BodyLimit, limit=settings.MAX_BODY_BYTES)
    app.add_middleware(UrlText)
    app.add_middleware(
        FrontDoor, allowed_hosts=settings.allowed_hosts, cors_origins=settings.cors_origins
    )
    app.add_middleware(SecurityHeaders)
    app.add_middleware(RequestMetrics)
    app.exception_handler(RequestValidationError)(invalid_request)
    app.exception_handler(grpc.aio.AioRpcError)(grpc_error)

    app.include_router(health.router)
    add_docs(app)
    authorized = [Depends(Authorize())]
    for router in (jobs, insight, config, schedules, limits, audit, identity, login, events):
        app.include_router(router.router, dependencies=authorized)

    web_dir = Path(settings.WEB_DIR)
    if web_dir.is_dir():
        app.mount("/", StaticFiles(directory=web_dir, html=True), name="web")
    return app
