"""`jobsched-scheduler`: serve the gRPC API and dispatch; `jobsched-scheduler migrate`:
apply the migrations and exit."""

import asyncio
import contextlib
import logging
import sys
import time
import weakref
from typing import Any

import grpc
from grpc_health.v1 import health as grpc_health
from grpc_health.v1 import health_pb2_grpc
from jobsched.v1 import jobs_pb2, jobs_pb2_grpc, runner_pb2, runner_pb2_grpc
from jobsched_common.health import add_health_and_reflection, set_not_serving, set_serving
from jobsched_common.keepalive import link_options
from jobsched_common.lifecycle import run_service, shutdown_event
from jobsched_common.logs import setup_logging
from jobsched_common.metrics import MetricsInterceptor, serve_metrics
from jobsched_common.tls import add_port, is_loopback_bind, server_credentials
from psycopg_pool import AsyncConnectionPool

from . import certs
from .access import AccessInterceptor
from .api import JobApi
from .bulk import PgBulk
from .dispatch import Dispatcher
from .events import EventHub
from .explain import PgExplainer
from .leases import sweep_leases
from .limit_api import LimitApi
from .liveness import Liveness
from .migrations import migrate
from .retention import Retention, sweep_retention
from .runner_auth import RunnerAuth
from .runner_link import RunnerLinks
from .schedule_api import ScheduleApi
from .schedule_store import PgSchedules
from .schedules import FireLoop
from .series import PgSeries
from .settings import Settings
from .store import PgStore, new_pool, server_encoding

log = logging.getLogger("jobsched.scheduler")

SERVICE_NAMES = [
    jobs_pb2.DESCRIPTOR.services_by_name["JobService"].full_name,
    runner_pb2.DESCRIPTOR.services_by_name["RunnerService"].full_name,
    jobs_pb2.DESCRIPTOR.services_by_name["LimitService"].full_name,
    jobs_pb2.DESCRIPTOR.services_by_name["ScheduleService"].full_name,
]
SHUTDOWN_GRACE = 5.0


def server_options(settings: Settings) -> list[tuple[str, int]]:
    """Both ends ping to find a dead link within seconds, also while no message flows.
    Runners ping every few seconds: the default policy would answer such pings with
    GOAWAY "too_many_pings", so any rate of them is accepted (no strikes)."""
    return [
        *link_options(settings.KEEPALIVE_SECONDS, settings.KEEPALIVE_TIMEOUT_SECONDS),
        ("grpc.http2.min_ping_interval_without_data_ms", 500),
        ("grpc.http2.max_ping_strikes", 0),
    ]


POOL_WAIT_SECONDS = 3.0
# A pooled connection idle longer than this is checked with a round trip before use.
POOL_CHECK_AFTER_IDLE_SECONDS = 1.0


class IdleCheck:
    """The pool's check, made only on connections that sat idle: one that worked a
    moment ago is used as is, sparing every busy transaction a round trip. A database
    restart takes longer than the idle time, so what it broke is still caught."""

    def __init__(self) -> None:
        self._returned: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()

    async def check(self, conn: Any) -> None:
        returned = self._returned.get(conn)
        if returned is None or time.monotonic() - returned > POOL_CHECK_AFTER_IDLE_SECONDS:
            await AsyncConnectionPool.check_connection(conn)

    async def returned(self, conn: Any) -> None:
        self._returned[conn] = time.monotonic()


async def open_pool(settings: Settings, stop: asyncio.Event) -> AsyncConnectionPool[Any] | None:
    """Waits for the database as long as it takes, unless asked to stop."""
    delay = 0.5
    while not stop.is_set():
        idle = IdleCheck()
        pool = new_pool(
            settings.database_url,
            settings.DB_POOL_SIZE,
            min_size=2,
            check=idle.check,
            reset=idle.returned,
            # Fail fast while the database is away: callers answer UNAVAILABLE.
            timeout=POOL_WAIT_SECONDS,
        )
        try:
            await pool.open(wait=True, timeout=10)
            return pool
        except Exception as exc:
            await pool.close()
            log.warning("Database not reachable (%s); retrying in %.1fs", exc, delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            delay = min(delay * 2, 5.0)
    return None


async def run_migrations(settings: Settings) -> None:
    stop = shutdown_event()
    pool = await open_pool(settings, stop)
    if pool is None:
        return
    async with pool, pool.connection() as conn:
        applied = await migrate(conn)
        await warn_unless_utf8(conn)
    log.info("Database is up to date (%d migration(s) applied)", len(applied))


async def warn_unless_utf8(conn: Any) -> None:
    """The connections speak UTF8 (store.CLIENT_ENCODING), but a SQL_ASCII database
    refuses any text that is not ASCII: say so once, at start."""
    encoding = await server_encoding(conn)
    if encoding != "UTF8":
        log.warning(
            "The database's encoding is %s, not UTF8: text that is not ASCII may be refused. "
            "Create it with ENCODING 'UTF8' (initdb --locale=C.UTF-8 or -E UTF8).",
            encoding,
        )


async def serve(settings: Settings) -> None:
    stop = shutdown_event()
    log.info("Starting Job Scheduler...")
    log.info("Check interval: %g seconds", settings.CHECK_INTERVAL)
    pool = await open_pool(settings, stop)
    if pool is None:
        return
    async with pool:
        log.info("Connected to database successfully")
        async with pool.connection() as conn:
            await migrate(conn)
            await warn_unless_utf8(conn)
        await _serve_with(pool, settings, stop)


async def _serve_with(
    pool: AsyncConnectionPool[Any], settings: Settings, stop: asyncio.Event
) -> None:
    store = PgStore(
        pool,
        settings.LEASE_TTL_SECONDS,
        settings.OUTPUT_LIMIT_BYTES,
        settings.DEFAULT_TIMEOUT_SECONDS,
    )
    liveness = Liveness(
        store,
        silence_limit=settings.silence_limit,
        hang_up_after=settings.LEASE_TTL_SECONDS,
        ack_timeout=settings.ASSIGN_ACK_TIMEOUT,
    )
    dispatcher = Dispatcher(store, settings.CHECK_INTERVAL, liveness)
    schedules = PgSchedules(pool)
    fire_loop = FireLoop(schedules, settings.CHECK_INTERVAL)
    events = EventHub(
        settings.database_url, dispatcher.wake, fire_loop.wake, dispatcher.slots_freed
    )
    links = RunnerLinks(
        store,
        dispatcher,
        settings.heartbeat_interval,
        settings.LEASE_TTL_SECONDS,
        settings.OUTPUT_LIMIT_BYTES,
        RunnerAuth(settings.runner_tokens, settings.RUNNER_TOKENS_FILE),
    )
    bulk = PgBulk(pool)
    api = JobApi(
        store,
        dispatcher,
        events,
        explainer=PgExplainer(pool),
        series=PgSeries(pool),
        bulk=bulk,
    )
    access = AccessInterceptor(settings.api_tokens)
    server = grpc.aio.server(
        interceptors=[MetricsInterceptor(), access], options=server_options(settings)
    )
    jobs_pb2_grpc.add_JobServiceServicer_to_server(api, server)
    jobs_pb2_grpc.add_LimitServiceServicer_to_server(LimitApi(store), server)
    runner_pb2_grpc.add_RunnerServiceServicer_to_server(links, server)
    jobs_pb2_grpc.add_ScheduleServiceServicer_to_server(ScheduleApi(schedules), server)
    health = add_health_and_reflection(server, SERVICE_NAMES)
    add_port(server, settings.SCHEDULER_BIND, settings.tls)
    await server.start()
    probes = await serve_probes(settings.SCHEDULER_HEALTH_BIND, health)
    await set_serving(health, SERVICE_NAMES)
    log.info(
        "Serving gRPC on %s (%s)",
        settings.SCHEDULER_BIND,
        "TLS" if settings.tls.has_identity else "plaintext, loopback only",
    )
    if not settings.api_tokens:
        log.info("No API tokens: the API answers callers on loopback only, as 'local'")

    workers = [
        asyncio.create_task(dispatcher.run(stop)),
        asyncio.create_task(events.run(stop)),
        asyncio.create_task(links.reports.run(stop)),
        asyncio.create_task(
            sweep_leases(store, settings.sweep_interval, stop, dispatcher.leases_expired)
        ),
        asyncio.create_task(liveness.run(stop)),
        asyncio.create_task(fire_loop.run(stop)),
    ]
    retention = Retention(settings.retention_days)
    if retention.active:
        sweep = sweep_retention(bulk, retention, settings.RETENTION_INTERVAL_SECONDS, stop)
        workers.append(asyncio.create_task(sweep))
    log.info("Scheduler is running, checking for queued jobs...")
    await stop.wait()
    log.info("Received shutdown signal, stopping scheduler...")
    await set_not_serving(health)
    links.closing.set()
    if probes is not None:
        await probes.stop(0)
    await server.stop(SHUTDOWN_GRACE)
    await asyncio.wait(workers, timeout=SHUTDOWN_GRACE)
    for task in workers:
        task.cancel()
    log.info("Scheduler stopped")


async def serve_probes(bind: str, health: grpc_health.aio.HealthServicer) -> grpc.aio.Server | None:
    """The health service alone, in plaintext, for probes that cannot speak TLS
    (Kubernetes' native gRPC probes): it tells whether the scheduler serves, nothing more."""
    if not bind:
        return None
    server = grpc.aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    server.add_insecure_port(bind)
    await server.start()
    log.info("Serving health probes on %s", bind)
    return server


def check_safe(settings: Settings) -> None:
    """Refuses, before touching the database, to serve runners and the API in plaintext
    beyond loopback, or to start where no runner could ever authenticate."""
    tls = settings.tls
    if not tls.has_identity and not is_loopback_bind(settings.SCHEDULER_BIND):
        raise SystemExit(
            f"refusing to listen on {settings.SCHEDULER_BIND} without TLS; set TLS_CERT_FILE "
            "and TLS_KEY_FILE (`jobsched-scheduler certs DIR` makes them) or "
            "SCHEDULER_BIND=127.0.0.1:50051"
        )
    try:
        server_credentials(tls)  # unreadable files stop the start here, not later
    except ValueError as exc:
        raise SystemExit(f"TLS: {exc}") from exc
    if not (settings.RUNNER_TOKENS or settings.RUNNER_TOKENS_FILE or tls.ca_file):
        log.warning("No RUNNER_TOKENS, RUNNER_TOKENS_FILE or TLS_CA_FILE: no runner can connect")


def main() -> None:
    if sys.argv[1:2] == ["certs"]:
        certs.main(sys.argv[2:])
        return
    settings = Settings()
    setup_logging("scheduler", settings.LOG_LEVEL, settings.LOG_FORMAT)
    command = sys.argv[1:] or ["serve"]
    if command == ["serve"]:
        check_safe(settings)
    if command == ["migrate"]:
        asyncio.run(run_migrations(settings))
    elif command == ["serve"]:
        serve_metrics(settings.METRICS_BIND)
        run_service(serve(settings))
    else:
        sys.exit("usage: jobsched-scheduler [serve|migrate|certs DIR]")
