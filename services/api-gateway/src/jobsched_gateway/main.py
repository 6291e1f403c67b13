"""`jobsched-gateway`: serve the REST API and the dashboard with uvicorn."""

import logging

import uvicorn
from jobsched_common.logs import setup_logging

from .app import create_app
from .settings import Settings

log = logging.getLogger("jobsched.gateway")


def main() -> None:
    settings = Settings()
    setup_logging("gateway", settings.LOG_LEVEL, settings.LOG_FORMAT)
    settings.check_safe()
    log.info("Starting web dashboard on http://%s:%d", settings.GATEWAY_HOST, settings.GATEWAY_PORT)
    uvicorn.run(
        create_app(settings),
        host=settings.GATEWAY_HOST,
        port=settings.GATEWAY_PORT,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=5,
    )
