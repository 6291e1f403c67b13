"""One shutdown event per process, set by SIGINT or SIGTERM."""

import asyncio
import signal


def shutdown_event() -> asyncio.Event:
    """Must be called from inside the running event loop."""
    event = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, event.set)
    return event
