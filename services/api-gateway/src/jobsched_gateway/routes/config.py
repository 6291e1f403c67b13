"""`/api/config` (the global concurrency limit) and `/api/stats` (the counts)."""

from fastapi import APIRouter
from jobsched.v1 import jobs_pb2 as pb

from ..scheduler import Scheduler
from ..schemas import Config, Stats, stats_json

router = APIRouter()


@router.get("/api/config")
async def get_config(scheduler: Scheduler) -> Config:
    config = await scheduler.call("GetConfig", pb.GetConfigRequest())
    return Config(max_concurrent_jobs=config.max_concurrent_jobs)


@router.put("/api/config")
async def put_config(scheduler: Scheduler, body: Config) -> Config:
    request = pb.UpdateConfigRequest(max_concurrent_jobs=body.max_concurrent_jobs)
    config = await scheduler.call("UpdateConfig", request)
    return Config(max_concurrent_jobs=config.max_concurrent_jobs)


@router.get("/api/stats")
async def get_stats(scheduler: Scheduler) -> Stats:
    return Stats(**stats_json(await scheduler.call("GetStats", pb.GetStatsRequest())))
