"""The LimitService: a limit and a pause per concurrency key, nested inside the global
limit (the claim keeps both)."""

import logging

from jobsched.v1 import jobs_pb2 as pb
from jobsched.v1 import jobs_pb2_grpc

from . import messages, validation
from .access import current_caller
from .errors import NotFound
from .ports import Store
from .rpc import Ctx, rpc

log = logging.getLogger(__name__)


class LimitApi(jobs_pb2_grpc.LimitServiceServicer):
    def __init__(self, store: Store):
        self.store = store

    @rpc
    async def ListLimits(
        self, request: pb.ListLimitsRequest, context: Ctx
    ) -> pb.ListLimitsResponse:
        limits = await self.store.list_limits()
        return pb.ListLimitsResponse(limits=[messages.limit_message(x) for x in limits])

    @rpc
    async def GetLimit(self, request: pb.LimitRef, context: Ctx) -> pb.KeyLimit:
        key = validation.concurrency_key(request.key)
        found = await self.store.get_limit(key)
        if found is None:
            raise NotFound(f"key '{key}' has no limit and no jobs")
        return messages.limit_message(found)

    @rpc
    async def SetLimit(self, request: pb.SetLimitRequest, context: Ctx) -> pb.KeyLimit:
        key, limit, paused = validation.key_limit(request)
        found = await self.store.set_limit(key, limit, paused, current_caller())
        log.info("Key %r: limit %s%s", key, limit or "none", ", paused" if paused else "")
        return messages.limit_message(found)

    @rpc
    async def DeleteLimit(self, request: pb.LimitRef, context: Ctx) -> pb.DeleteLimitResponse:
        key = validation.concurrency_key(request.key)
        if not await self.store.delete_limit(key, current_caller()):
            raise NotFound(f"key '{key}' has no limit")
        log.info("Key %r: limit removed", key)
        return pb.DeleteLimitResponse()
