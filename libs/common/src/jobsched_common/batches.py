"""Concurrent callers' items sent together, each caller still answered alone.

Whoever calls while no batch is free to start waits for the next one, which takes
everyone waiting (up to `most`, or fewer if `take` says so). An idle sender sends a lone
item at once: batching costs no wait, it only forms under load."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

# Sends a batch; answers each item in order with its result, or the exception its
# caller gets. Raising fails every item of the batch.
Send = Callable[[list[T]], Awaitable[Sequence["R | BaseException"]]]
# Batches in flight at once. One: the next batch forms while one is answered. With two,
# the same load went out in more, smaller batches, and the REST-fed drain was 9% slower
# (docs/performance.md, "The front door, fourth pass").
FLIGHTS = 1


class Batcher(Generic[T, R]):
    def __init__(
        self,
        send: Send[T, R],
        most: int,
        flights: int = FLIGHTS,
        take: Callable[[list[T]], int] = len,
        on_idle: Callable[[], object] | None = None,
    ):
        """`take` says how many of the next items (at most `most`) go in a batch, at
        least one; `on_idle` is called when nothing is waiting or in flight."""
        self.send = send
        self.most = most
        self.flights = flights
        self.take = take
        self.on_idle = on_idle
        self._waiting: list[tuple[T, asyncio.Future[R]]] = []
        self._flying = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, item: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        if self._flying < self.flights:
            self._flying += 1
            task = asyncio.create_task(self._fly())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await future

    async def _fly(self) -> None:
        try:
            while self._waiting:
                count = max(1, self.take([item for item, _ in self._waiting[: self.most]]))
                batch, self._waiting = self._waiting[:count], self._waiting[count:]
                await self._send(batch)
        finally:
            self._flying -= 1
            if not self._flying and not self._waiting and self.on_idle is not None:
                self.on_idle()

    async def _send(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        try:
            outcomes = await self.send([item for item, _ in batch])
        except BaseException as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            if future.done():  # its caller went away; the item was sent all the same
                continue
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)
