"""The messages of ExplainJob and GetSeries made from their answers."""

from jobsched.v1 import jobs_pb2 as pb
from jobsched_common.timestamps import set_timestamp

from .explain import Blocker, Explanation
from .messages import STATUS_TO_PB
from .series import SeriesPoint


def _blocker_message(blocker: Blocker) -> pb.Blocker:
    message = pb.Blocker(
        kind=blocker.kind,
        message=blocker.message,
        limit=blocker.limit,
        running=blocker.running,
        holders=blocker.holders,
        key=blocker.key,
        waiting_on=blocker.waiting_on,
        position=blocker.position,
    )
    set_timestamp(message.run_at, blocker.run_at)
    return message


def explanation_message(answer: Explanation) -> pb.JobExplanation:
    return pb.JobExplanation(
        job_id=answer.job_id,
        status=STATUS_TO_PB.get(answer.status, pb.JOB_STATUS_UNSPECIFIED),
        runnable=answer.runnable,
        position=answer.position,
        blockers=[_blocker_message(b) for b in answer.blockers],
        message=answer.message,
    )


def _point_message(point: SeriesPoint) -> pb.SeriesPoint:
    message = pb.SeriesPoint(
        running=point.running,
        limit=point.limit,
        key_running=point.key_running,
        key_limit=point.key_limit or 0,
        completed=point.completed,
        failed=point.failed,
        cancelled=point.cancelled,
        wait_p50_seconds=point.wait_p50_seconds,
        wait_p95_seconds=point.wait_p95_seconds,
    )
    set_timestamp(message.at, point.at)
    return message


def series_message(points: list[SeriesPoint]) -> pb.Series:
    return pb.Series(points=[_point_message(p) for p in points])
