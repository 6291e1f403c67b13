"""Concurrent single creates of one caller share one call to the scheduler. A gRPC call
costs the scheduler several times what inserting the job does, so under load a call per
create, not the database, caps how many creates a second the front door takes.

A lone create goes out at once as CreateJob: coalescing adds no wait. Creates that
arrive while a caller's calls are in flight go together in the next one, as CreateJobs
with `each_alone`: the scheduler creates each as by its own CreateJob (its log line,
its audit entry) and answers each in order, so every caller still gets its own job or
its own error."""

from __future__ import annotations

import asyncio
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any, Protocol

import grpc
from fastapi import Request
from jobsched.v1 import jobs_pb2 as pb
from jobsched_common.limits import MAX_JOBS_PER_BATCH

from .scheduler import status_code

# Calls in flight at once for one caller: one batch forms while another is answered.
FLIGHTS = 2
# A batch ends before this many bytes of requests (unless one alone is larger), far
# below the scheduler's message limit.
BATCH_BYTES = 1 << 20


class Caller(Protocol):
    """What a create needs of the request's scheduler client (or a test's fake)."""

    async def call(self, method: str, request: Any) -> Any: ...


Waiting = tuple[pb.CreateJobRequest, "asyncio.Future[pb.Job]"]


@dataclass
class _Queue:
    client: Caller
    waiting: list[Waiting] = field(default_factory=list)
    flying: int = 0


class CreateCoalescer:
    """One queue per caller (their metadata: the token and the address the scheduler
    records), so that a batch is authorised and audited as each of its creates would be."""

    def __init__(self, flights: int = FLIGHTS, most: int = MAX_JOBS_PER_BATCH):
        self.flights = flights
        self.most = most
        self._queues: dict[Hashable, _Queue] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def create(self, client: Caller, request: pb.CreateJobRequest) -> pb.Job:
        key = getattr(client, "metadata", ())
        queue = self._queues.setdefault(key, _Queue(client))
        future: asyncio.Future[pb.Job] = asyncio.get_running_loop().create_future()
        queue.waiting.append((request, future))
        if queue.flying < self.flights:
            queue.flying += 1
            task = asyncio.create_task(self._fly(key, queue))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await future

    async def _fly(self, key: Hashable, queue: _Queue) -> None:
        try:
            while queue.waiting:
                batch = _take(queue.waiting, self.most)
                del queue.waiting[: len(batch)]
                await _send(queue.client, batch)
        finally:
            queue.flying -= 1
            if not queue.flying and not queue.waiting:
                del self._queues[key]


def _take(waiting: list[Waiting], most: int) -> list[Waiting]:
    """The next batch: up to `most` creates within BATCH_BYTES, and at least one."""
    size = 0
    for count, (request, _) in enumerate(waiting[:most]):
        size += request.ByteSize()
        if count and size > BATCH_BYTES:
            return waiting[:count]
    return waiting[:most]


async def _send(client: Caller, batch: list[Waiting]) -> None:
    try:
        if len(batch) == 1:
            outcomes: list[pb.Job | BaseException] = [await client.call("CreateJob", batch[0][0])]
        else:
            request = pb.CreateJobsRequest(jobs=[r for r, _ in batch], each_alone=True)
            reply = await client.call("CreateJobs", request)
            outcomes = [_outcome(result) for result in reply.results]
    except BaseException as exc:
        for _, future in batch:
            if not future.done():
                future.set_exception(exc)
        if not isinstance(exc, Exception):
            raise
        return
    for (_, future), outcome in zip(batch, outcomes, strict=True):
        if future.done():  # its caller went away; the job exists all the same
            continue
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)


def _outcome(result: pb.CreateJobResult) -> pb.Job | grpc.aio.AioRpcError:
    """One create's answer: its job, or the error its own CreateJob would have raised."""
    if result.WhichOneof("outcome") == "job":
        return result.job
    empty = grpc.aio.Metadata()
    code = status_code(result.refusal.code)
    return grpc.aio.AioRpcError(code, empty, empty, details=result.refusal.message)


async def coalescer(request: Request) -> CreateCoalescer:
    """The app's coalescer, as a route's dependency (async: FastAPI would run a plain
    function in a worker thread)."""
    creates: CreateCoalescer = request.app.state.creates
    return creates
