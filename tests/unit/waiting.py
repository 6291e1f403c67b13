"""Waiting for a condition with a deadline, for unit tests that drive asyncio tasks."""

import asyncio
from collections.abc import Callable

DEADLINE_SECONDS = 5.0


async def until(condition: Callable[[], object], what: str) -> None:
    """Yields to the other tasks until the condition holds; fails after the deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_SECONDS
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.001)
