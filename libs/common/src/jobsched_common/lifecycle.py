"""How a service's program runs: its event loop, and one shutdown event per process, set
by SIGINT or SIGTERM."""

import asyncio
import signal
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def shutdown_event() -> asyncio.Event:
    """Must be called from inside the running event loop."""
    event = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, event.set)
    return event


def run_service(main: Coroutine[Any, Any, T]) -> T:
    """Runs a service's program on uvloop where it is installed (every service depends
    on it): the scheduler and the runners spend a tenth less CPU a job on it than on
    asyncio's own loop. grpc.aio and psycopg take any asyncio loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)
