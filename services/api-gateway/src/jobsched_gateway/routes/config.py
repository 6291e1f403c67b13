"""`/api/config` (the global concurrency limit and pause) and `/api/stats` (the counts)."""

from fastapi import APIRouter
from jobsched.v1 import jobs_pb2 as pb

from ..scheduler import Scheduler
from ..schemas import Config, ConfigUpdate, Stats, config_json, stats_json

router = APIRouter()


@router.get("/api/config")
async def get_config(scheduler: Scheduler) -> Config:
    config = await scheduler.call("GetConfig", pb.GetConfigRequest())
    return Config.model_validate(config_json(config))


@router.put("/api/config")
async def put_config(scheduler: Scheduler, body: ConfigUpdate) -> Config:
    """Sets what the body gives, `max_concurrent_jobs`, `paused` or both; `{}` is a 422.
    Pausing holds new starts only: running jobs go on."""
    config = await scheduler.call("UpdateConfig", body.to_pb())
    return Config.model_validate(config_json(config))


@router.get("/api/stats")
async def get_stats(scheduler: Scheduler) -> Stats:
    stats = await scheduler.call("GetStats", pb.GetStatsRequest())
    return Stats.model_validate(stats_json(stats))
