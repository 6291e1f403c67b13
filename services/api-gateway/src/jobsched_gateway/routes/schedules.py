"""`/api/schedules`: recurring schedules, each making a job at its fire times."""

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Response
from jobsched.v1 import jobs_pb2 as pb

from ..schedule_schemas import Schedule, ScheduleBody, ScheduleCreate, Schedules, schedule_json
from ..scheduler import Scheduler
from ..schemas import Job, JsonBody, Text, job_json

# A name may hold "/", which reaches the routes decoded (a client sends %2F): each
# route takes the rest of the path up to its own ending as the name.
Name = Annotated[Text, Path(description="The schedule's name, URL-encoded.")]

router = APIRouter()


@router.post("/api/schedules", status_code=201, response_model=Schedule)
async def create_schedule(scheduler: Scheduler, body: ScheduleCreate) -> JsonBody:
    """A new schedule: 409 when the name is taken; 422 for neither or both of `cron` and
    `every_seconds`, a cron that does not parse, or an unknown time zone."""
    request = pb.CreateScheduleRequest(schedule=body.to_pb(body.name))
    schedule = await scheduler.call_schedules("CreateSchedule", request)
    return JsonBody(schedule_json(schedule), status_code=201)


@router.get("/api/schedules", response_model=Schedules)
async def list_schedules(scheduler: Scheduler) -> JsonBody:
    """Every schedule, by name."""
    reply = await scheduler.call_schedules("ListSchedules", pb.ListSchedulesRequest())
    return JsonBody({"schedules": [schedule_json(s) for s in reply.schedules]})


@router.get("/api/schedules/{name:path}", response_model=Schedule)
async def get_schedule(scheduler: Scheduler, name: Name) -> JsonBody:
    schedule = await scheduler.call_schedules("GetSchedule", pb.ScheduleRef(name=name))
    return JsonBody(schedule_json(schedule))


@router.put("/api/schedules/{name:path}", response_model=Schedule)
async def put_schedule(scheduler: Scheduler, name: Name, body: ScheduleBody) -> JsonBody:
    """Replaces the schedule's settings (what the body omits takes its default) and
    computes its next fire time again. A schedule cannot be renamed."""
    if body.name is not None and body.name != name:
        raise HTTPException(422, f"name: {body.name!r} is not the path's {name!r}")
    request = pb.UpdateScheduleRequest(schedule=body.to_pb(name))
    return JsonBody(schedule_json(await scheduler.call_schedules("UpdateSchedule", request)))


@router.delete("/api/schedules/{name:path}", status_code=204, response_class=Response)
async def delete_schedule(scheduler: Scheduler, name: Name) -> Response:
    """The jobs it made stay."""
    await scheduler.call_schedules("DeleteSchedule", pb.ScheduleRef(name=name))
    return Response(status_code=204)


@router.post("/api/schedules/{name:path}/pause", response_model=Schedule)
async def pause_schedule(scheduler: Scheduler, name: Name) -> JsonBody:
    """It makes no jobs until resumed; `trigger` still makes one."""
    schedule = await scheduler.call_schedules("PauseSchedule", pb.ScheduleRef(name=name))
    return JsonBody(schedule_json(schedule))


@router.post("/api/schedules/{name:path}/resume", response_model=Schedule)
async def resume_schedule(scheduler: Scheduler, name: Name) -> JsonBody:
    schedule = await scheduler.call_schedules("ResumeSchedule", pb.ScheduleRef(name=name))
    return JsonBody(schedule_json(schedule))


@router.post("/api/schedules/{name:path}/trigger", status_code=201, response_model=Job)
async def trigger_schedule(scheduler: Scheduler, name: Name) -> JsonBody:
    """Makes a job now, paused or not, named `{name}@{UTC now to the microsecond}Z`."""
    job = await scheduler.call_schedules("TriggerSchedule", pb.ScheduleRef(name=name))
    return JsonBody(job_json(job), status_code=201)
