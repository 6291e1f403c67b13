"""How a service's program runs: its event loop, and one shutdown event per process, set
by SIGINT or SIGTERM."""

import asyncio
import gc
import signal
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

# The collector looks at the youngest objects once this many more were allocated than
# freed. Python's 700 is reached by the objects of a few requests in flight at once,
# freed soon after: at 700 the gateway spent a tenth of its CPU in the collector during
# a REST-fed drain (docs/performance.md), at 10,000 none.
YOUNG_OBJECTS_BEFORE_COLLECTION = 10_000


def shutdown_event() -> asyncio.Event:
    """Must be called from inside the running event loop."""
    event = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, event.set)
    return event


def settle_heap() -> None:
    """Called once started, before serving: what was built so far (modules, the app)
    lives as long as the process, so no collection looks at it again (gc.freeze), and
    the youngest objects are collected less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_OBJECTS_BEFORE_COLLECTION, *gc.get_threshold()[1:])


def run_service(main: Coroutine[Any, Any, T]) -> T:
    """Runs a service's program on uvloop where it is installed (every service depends
    on it): the scheduler and the runners spend a tenth less CPU a job on it than on
    asyncio's own loop. grpc.aio and psycopg take any asyncio loop."""
    settle_heap()
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)
