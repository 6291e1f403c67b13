"""Concurrent single creates of one caller share one call to the scheduler. A gRPC call
costs the scheduler several times what inserting the job does, so under load a call per
create, not the database, caps how many creates a second the front door takes.

A lone create goes out at once as CreateJob: coalescing adds no wait. Creates that
arrive while a caller's calls are in flight go together in the next one, as CreateJobs
with `each_alone`: the scheduler creates each as by its own CreateJob (its log line,
its audit entry) and answers each in order, so every caller still gets its own job or
its own error."""

from __future__ import annotations

from collections.abc import Hashable
from functools import partial
from typing import Any, Protocol

import grpc
from fastapi import Request
from jobsched.v1 import jobs_pb2 as pb
from jobsched_common.batches import FLIGHTS, Batcher
from jobsched_common.limits import MAX_JOBS_PER_BATCH

from .scheduler import status_code

# A batch ends before this many bytes of requests (unless one alone is larger), far
# below the scheduler's message limit.
BATCH_BYTES = 1 << 20


class Caller(Protocol):
    """What a create needs of the request's scheduler client (or a test's fake)."""

    async def call(self, method: str, request: Any) -> Any: ...


class CreateCoalescer:
    """One batcher per caller (their metadata: the token and the address the scheduler
    records), so that a batch is authorised and audited as each of its creates would be."""

    def __init__(self, flights: int = FLIGHTS, most: int = MAX_JOBS_PER_BATCH):
        self.flights = flights
        self.most = most
        self._batchers: dict[Hashable, Batcher[pb.CreateJobRequest, pb.Job]] = {}

    async def create(self, client: Caller, request: pb.CreateJobRequest) -> pb.Job:
        key = getattr(client, "metadata", ())
        batcher = self._batchers.get(key)
        if batcher is None:
            batcher = self._batchers[key] = Batcher(
                partial(_send, client),
                self.most,
                self.flights,
                take=_within_budget,
                on_idle=lambda: self._batchers.pop(key, None),
            )
        return await batcher.submit(request)


def _within_budget(requests: list[pb.CreateJobRequest]) -> int:
    """How many of the next creates fit in BATCH_BYTES (at least one)."""
    size = 0
    for count, request in enumerate(requests):
        size += request.ByteSize()
        if count and size > BATCH_BYTES:
            return count
    return len(requests)


async def _send(
    client: Caller, requests: list[pb.CreateJobRequest]
) -> list[pb.Job | grpc.aio.AioRpcError]:
    if len(requests) == 1:
        return [await client.call("CreateJob", requests[0])]
    reply = await client.call("CreateJobs", pb.CreateJobsRequest(jobs=requests, each_alone=True))
    return [_outcome(result) for result in reply.results]


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
