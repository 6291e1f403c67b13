"""The REST shapes of search and of actions on many jobs: which jobs (ids or a filter),
how many changed, and the answer to each job of a bulk create with `each_alone`."""

from typing import Annotated, Any, Self

from jobsched.v1 import jobs_pb2 as pb
from jobsched_common.limits import MAX_JOBS_PER_BATCH, Status
from pydantic import BaseModel, Field, model_validator

from .scheduler import http_status, status_code
from .schemas import STATUS_TO_PB, Int64, Job, Text, job_json, schema_only

MAX_SEARCH_CHARS = 255
SearchText = Annotated[
    Text,
    schema_only(maxLength=MAX_SEARCH_CHARS),
    Field(description="A piece of the name or the command, in any case."),
]


class JobFilter(BaseModel):
    status: Status | None = Field(None, description="Jobs in this status; null: any.")
    q: SearchText | None = None


class BulkJobs(BaseModel):
    """The jobs an action applies to: the listed ids, or every job matching the filter
    (exactly one of the two). Jobs the action does not apply to are passed over."""

    ids: (
        Annotated[
            list[Annotated[Int64, schema_only(minimum=1)]], schema_only(maxItems=MAX_JOBS_PER_BATCH)
        ]
        | None
    ) = Field(None, description=f"At most {MAX_JOBS_PER_BATCH}.", examples=[[7, 8]])
    filter: JobFilter | None = Field(None, examples=[{"status": "failed", "q": "backup"}])

    @model_validator(mode="after")
    def _one_of_the_two(self) -> Self:
        if (self.ids is None) == (self.filter is None):
            raise ValueError("give ids or a filter (exactly one of the two)")
        return self

    def to_pb(self) -> pb.BulkJobsRequest:
        """Sends what the client gave: the scheduler judges it."""
        if self.filter is None:
            return pb.BulkJobsRequest(ids=self.ids or [])
        where = pb.JobFilter(q=self.filter.q or "")
        if self.filter.status is not None:
            where.status = STATUS_TO_PB[self.filter.status]
        return pb.BulkJobsRequest(filter=where)


class BulkResult(BaseModel):
    changed: int = Field(description="How many jobs the action changed.")


class CreateRefusal(BaseModel):
    status: int = Field(description="The HTTP status the job's own create would have had.")
    detail: str


class CreateOutcome(BaseModel):
    """One job of a bulk create with `each_alone`: the job, or why it was refused."""

    job: Job | None = None
    error: CreateRefusal | None = None


def outcome_json(result: pb.CreateJobResult) -> dict[str, Any]:
    if result.WhichOneof("outcome") == "job":
        return {"job": job_json(result.job)}
    status = http_status(status_code(result.refusal.code))
    return {"error": {"status": status, "detail": result.refusal.message}}
