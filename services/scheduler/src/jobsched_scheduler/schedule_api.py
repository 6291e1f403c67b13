"""The ScheduleService: recurring schedules over gRPC, and a schedule as a message."""

import logging
from datetime import UTC, datetime

from jobsched.v1 import jobs_pb2 as pb
from jobsched.v1 import jobs_pb2_grpc
from jobsched_common.timestamps import set_timestamp

from . import messages, metrics, schedule_validation
from .access import current_caller
from .errors import NotFound
from .rpc import Ctx, rpc
from .schedule_model import ScheduleRow, ScheduleSpec
from .schedule_store import PgSchedules
from .schedules import trigger_job_name

log = logging.getLogger(__name__)

OVERLAP_TO_PB = {"skip": pb.OVERLAP_SKIP, "allow": pb.OVERLAP_ALLOW}


def schedule_message(row: ScheduleRow) -> pb.Schedule:
    message = pb.Schedule(
        name=row.name,
        command=row.command,
        cron=row.cron or "",
        every_seconds=row.every_seconds or 0,
        timezone=row.timezone,
        overlap=OVERLAP_TO_PB.get(row.overlap, pb.OVERLAP_UNSPECIFIED),
        catchup_window_seconds=row.catchup_window_seconds,
        paused=row.paused,
        priority=row.priority,
        concurrency_key=row.concurrency_key or "",
        max_attempts=row.max_attempts,
        last_job_id=row.last_job_id or 0,
        skipped_count=row.skipped_count,
    )
    if row.timeout_seconds is not None:
        message.timeout_seconds = row.timeout_seconds
    set_timestamp(message.next_run_at, row.next_run_at)
    set_timestamp(message.last_run_at, row.last_run_at)
    set_timestamp(message.created_at, row.created_at)
    set_timestamp(message.updated_at, row.updated_at)
    return message


def _found(row: ScheduleRow | None, name: str) -> ScheduleRow:
    if row is None:
        raise NotFound(f"schedule '{name}' not found")
    return row


def _first_run(spec: ScheduleSpec) -> datetime | None:
    """The next run of a schedule set now: none while paused."""
    return None if spec.paused else spec.rule.next_after(datetime.now(UTC))


def _resumed(row: ScheduleRow) -> datetime | None:
    return row.rule.next_after(datetime.now(UTC))


class ScheduleApi(jobs_pb2_grpc.ScheduleServiceServicer):
    def __init__(self, schedules: PgSchedules):
        self.schedules = schedules

    @rpc
    async def CreateSchedule(self, request: pb.CreateScheduleRequest, context: Ctx) -> pb.Schedule:
        spec = schedule_validation.new_schedule(request.schedule)
        row = await self.schedules.create(spec, _first_run(spec), current_caller())
        log.info("Created schedule %s (next run %s)", row.name, row.next_run_at)
        return schedule_message(row)

    @rpc
    async def ListSchedules(
        self, request: pb.ListSchedulesRequest, context: Ctx
    ) -> pb.ListSchedulesResponse:
        rows = await self.schedules.list_all()
        return pb.ListSchedulesResponse(schedules=[schedule_message(row) for row in rows])

    @rpc
    async def GetSchedule(self, request: pb.ScheduleRef, context: Ctx) -> pb.Schedule:
        name = schedule_validation.ref(request.name)
        return schedule_message(_found(await self.schedules.get(name), name))

    @rpc
    async def UpdateSchedule(self, request: pb.UpdateScheduleRequest, context: Ctx) -> pb.Schedule:
        spec = schedule_validation.new_schedule(request.schedule)
        row = _found(
            await self.schedules.update(spec, _first_run(spec), current_caller()), spec.name
        )
        log.info("Updated schedule %s (next run %s)", row.name, row.next_run_at)
        return schedule_message(row)

    @rpc
    async def DeleteSchedule(
        self, request: pb.ScheduleRef, context: Ctx
    ) -> pb.DeleteScheduleResponse:
        name = schedule_validation.ref(request.name)
        if not await self.schedules.delete(name, current_caller()):
            raise NotFound(f"schedule '{name}' not found")
        log.info("Deleted schedule %s", name)
        return pb.DeleteScheduleResponse()

    @rpc
    async def PauseSchedule(self, request: pb.ScheduleRef, context: Ctx) -> pb.Schedule:
        name = schedule_validation.ref(request.name)
        row = _found(
            await self.schedules.set_paused(name, True, lambda _: None, current_caller()), name
        )
        log.info("Paused schedule %s", name)
        return schedule_message(row)

    @rpc
    async def ResumeSchedule(self, request: pb.ScheduleRef, context: Ctx) -> pb.Schedule:
        name = schedule_validation.ref(request.name)
        row = _found(await self.schedules.set_paused(name, False, _resumed, current_caller()), name)
        log.info("Resumed schedule %s (next run %s)", name, row.next_run_at)
        return schedule_message(row)

    @rpc
    async def TriggerSchedule(self, request: pb.ScheduleRef, context: Ctx) -> pb.Job:
        name = schedule_validation.ref(request.name)
        job_name = trigger_job_name(name, datetime.now(UTC))
        job = await self.schedules.trigger(name, job_name, current_caller())
        if job is None:
            raise NotFound(f"schedule '{name}' not found")
        log.info("Triggered schedule %s: job %d", name, job.id, extra={"job_id": job.id})
        metrics.JOBS_CREATED.inc()
        return messages.job_message(job)
