"""`/api/jobs/{id}/why` (why a job is not running) and `/api/series` (the last minutes
in numbers), both answered from the scheduler's own records."""

from typing import Annotated

from fastapi import APIRouter, Query
from jobsched.v1 import jobs_pb2 as pb
from jobsched_common.limits import (
    DEFAULT_SERIES_WINDOW_SECONDS,
    MAX_KEY_CHARS,
    MAX_SERIES_WINDOW_SECONDS,
)

from ..insight_schemas import Explanation, Series, explanation_json, series_json
from ..scheduler import Scheduler
from ..schemas import Int32, Int64, JsonBody, Text, schema_only

JobId = Annotated[Int64, schema_only(minimum=1)]
Window = Annotated[
    Annotated[Int32, schema_only(minimum=1, maximum=MAX_SERIES_WINDOW_SECONDS)],
    Query(description="Seconds back from now."),
]
SeriesKey = Annotated[
    Annotated[Text, schema_only(minLength=1, maxLength=MAX_KEY_CHARS)] | None,
    Query(description="A concurrency key: its running jobs and its limit as well."),
]

router = APIRouter()


@router.get("/api/jobs/{job_id}/why", response_model=Explanation)
async def explain_job(scheduler: Scheduler, job_id: JobId) -> JsonBody:
    """Why the job is not running (yet), by the rules the claim uses: each blocker with
    its `kind` and a sentence. A running or finished job has none."""
    explanation = await scheduler.call("ExplainJob", pb.ExplainJobRequest(id=job_id))
    return JsonBody(explanation_json(explanation))


@router.get("/api/series", response_model=Series)
async def get_series(
    scheduler: Scheduler, window: Window = DEFAULT_SERIES_WINDOW_SECONDS, key: SeriesKey = None
) -> JsonBody:
    """One point a minute over the window, oldest first: running jobs against the
    limits, jobs finished by status, and queue waits."""
    request = pb.GetSeriesRequest(window_seconds=window, key=key or "")
    return JsonBody(series_json(await scheduler.call("GetSeries", request)))
