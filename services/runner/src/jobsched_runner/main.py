"""`jobsched-runner`: connect to the scheduler and run jobs until SIGTERM, then drain."""

import asyncio
import logging
import os

import grpc
from jobsched_common.health import add_health_and_reflection, set_not_serving, set_serving
from jobsched_common.lifecycle import run_service, shutdown_event
from jobsched_common.logs import setup_logging
from jobsched_common.metrics import serve_metrics
from jobsched_common.tls import channel_credentials, is_loopback_bind

from .agent import RunnerAgent
from .containment import choose_containment
from .reaper import Reaper
from .settings import Settings
from .users import JobUser, resolve_job_user

log = logging.getLogger("jobsched.runner")


async def serve(settings: Settings) -> None:
    stop = shutdown_event()
    user = resolve_job_user(settings.JOB_USER)
    reaper = Reaper(asyncio.get_running_loop())
    containment = choose_containment(settings, reaper, as_other_user=user is not None)
    log.info("Job containment: %s", containment.describe())
    _log_job_user(user)
    agent = RunnerAgent(settings, reaper, containment=containment, user=user)
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
    containment.close()
    reaper.close()
    log.info("Runner stopped")


def check_safe(settings: Settings) -> None:
    """Stops at start on TLS files that cannot be used, and before its token would
    cross a network in plaintext."""
    try:
        channel_credentials(settings.tls)
    except ValueError as exc:
        raise SystemExit(f"TLS: {exc}") from exc
    plaintext = [a for a in settings.scheduler_addrs if not is_loopback_bind(a)]
    if plaintext and not settings.TLS_CA_FILE:
        raise SystemExit(
            f"refusing to dial {', '.join(plaintext)} without TLS: set TLS_CA_FILE to the "
            "CA of the scheduler's certificate"
        )


def _log_job_user(user: JobUser | None) -> None:
    if user is not None:
        log.info("Jobs run as %s (uid %d)", user.name, user.uid)
    elif os.geteuid() == 0:
        log.warning("Jobs run as root: set JOB_USER to an unprivileged user")


def main() -> None:
    settings = Settings()
    setup_logging("runner", settings.LOG_LEVEL, settings.LOG_FORMAT)
    check_safe(settings)
    serve_metrics(settings.METRICS_BIND)
    run_service(serve(settings))
