"""`jobsched-runner`: connect to the scheduler and run jobs until SIGTERM, then drain."""

import asyncio
import logging

import grpc
from jobsched_common.health import add_health_and_reflection, set_not_serving, set_serving
from jobsched_common.lifecycle import shutdown_event
from jobsched_common.logs import setup_logging
from jobsched_common.metrics import serve_metrics
from jobsched_common.tls import channel_credentials

from .agent import RunnerAgent
from .reaper import Reaper
from .settings import Settings

log = logging.getLogger("jobsched.runner")


async def serve(settings: Settings) -> None:
    stop = shutdown_event()
    reaper = Reaper(asyncio.get_running_loop())
    agent = RunnerAgent(settings, reaper)
    health_server = None
    if settings.RUNNER_HEALTH_BIND:
        health_server = grpc.aio.server()
        health = add_health_and_reflection(health_server, [])
        health_server.add_insecure_port(settings.RUNNER_HEALTH_BIND)
        await health_server.start()
        await set_serving(health, [])
    log.info("Runner %s starting, scheduler at %s", settings.RUNNER_ID, settings.SCHEDULER_ADDR)
    await agent.run(stop)
    if health_server is not None:
        await set_not_serving(health)
        await health_server.stop(1)
    reaper.close()
    log.info("Runner stopped")


def main() -> None:
    settings = Settings()
    setup_logging("runner", settings.LOG_LEVEL, settings.LOG_FORMAT)
    try:
        channel_credentials(settings.tls)  # unreadable files stop the start, not each link
    except ValueError as exc:
        raise SystemExit(f"TLS: {exc}") from exc
    serve_metrics(settings.METRICS_BIND)
    asyncio.run(serve(settings))
