"""`jobsched-gateway`: serve the REST API and the dashboard with uvicorn until SIGTERM."""

import asyncio
import contextlib
import logging
from collections.abc import Iterator

import uvicorn
from fastapi import FastAPI
from jobsched_common.lifecycle import settle_heap, shutdown_event
from jobsched_common.logs import setup_logging

from .app import create_app
from .client_timeouts import deadline_protocol
from .settings import Settings

log = logging.getLogger("jobsched.gateway")

GRACE_SECONDS = 5  # for open requests to finish once the server stops listening


class Server(uvicorn.Server):
    """A uvicorn server that leaves SIGTERM and SIGINT to the process's shutdown event."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve(app: FastAPI, config: uvicorn.Config) -> None:
    """Serves until SIGTERM or SIGINT sets the shutdown event, which ends the event
    streams at once (they would hold the server's graceful wait) and tells the server
    to exit."""
    stopping = app.state.stopping = shutdown_event()
    server = Server(config)

    async def exit_on_shutdown() -> None:
        await stopping.wait()
        server.should_exit = True

    watcher = asyncio.create_task(exit_on_shutdown())
    try:
        await server.serve()
    finally:
        watcher.cancel()


def main() -> None:
    settings = Settings()
    setup_logging("gateway", settings.LOG_LEVEL, settings.LOG_FORMAT)
    settings.check_safe()
    log.info("Starting web dashboard on http://%s:%d", settings.GATEWAY_HOST, settings.GATEWAY_PORT)
    app = create_app(settings)
    settle_heap()
    config = uvicorn.Config(
        app,
        host=settings.GATEWAY_HOST,
        port=settings.GATEWAY_PORT,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=GRACE_SECONDS,
        http=deadline_protocol(),
        timeout_keep_alive=settings.CLIENT_TIMEOUT_SECONDS,
    )
    # The event loop uvicorn.run would choose (uvloop when it is installed).
    with asyncio.Runner(loop_factory=config.get_loop_factory()) as runner:
        runner.run(serve(app, config))
