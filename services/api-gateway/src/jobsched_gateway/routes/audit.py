"""`/api/audit`: the record of who changed what, newest first (admin tokens only)."""

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query
from jobsched.v1 import jobs_pb2 as pb
from jobsched_common.limits import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE

from ..audit_schemas import AuditEntry, audit_json
from ..scheduler import Scheduler
from ..schemas import Int32, Int64, JsonBody, schema_only

PageSize = Annotated[
    Annotated[Int32, schema_only(minimum=1, maximum=MAX_PAGE_SIZE)] | None,
    Query(description=f"entries on a page; {DEFAULT_PAGE_SIZE} when not given"),
]
Cursor = Annotated[
    Annotated[Int64, schema_only(minimum=1)] | None,
    Query(description="keyset cursor: ids below"),
]

router = APIRouter()


@router.get("/api/audit", response_model=list[AuditEntry])
async def list_audit(
    scheduler: Scheduler, limit: PageSize = None, before: Cursor = None
) -> JsonBody:
    """Every write through the API, newest first: creates, cancels, retries, config,
    limits, schedules, deletes. Follow the `Link: rel="next"` header for the next page."""
    request = pb.ListAuditRequest()
    if limit is not None:  # only what the client gave: the scheduler judges it
        request.limit = limit
    if before is not None:
        request.before_id = before
    reply: pb.ListAuditResponse = await scheduler.call("ListAudit", request)
    headers = {}
    if reply.next_before_id:
        query: dict[str, int] = {} if limit is None else {"limit": limit}
        query["before"] = reply.next_before_id
        headers["Link"] = f'</api/audit?{urlencode(query)}>; rel="next"'
    return JsonBody([audit_json(e) for e in reply.entries], headers=headers)
