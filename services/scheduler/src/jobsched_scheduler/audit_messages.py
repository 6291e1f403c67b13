"""The audit log over gRPC (JobService.ListAudit): a page asked for, and a page sent."""

from typing import NamedTuple

from jobsched.v1 import jobs_pb2 as pb
from jobsched_common.limits import DEFAULT_PAGE_SIZE, MAX_PAGE_BYTES, MAX_PAGE_SIZE
from jobsched_common.timestamps import set_timestamp

from .audit import AuditRow
from .errors import InvalidValue
from .messages import within_bytes


class AuditPage(NamedTuple):
    limit: int
    before_id: int  # 0: from the newest entry


def audit_request(request: pb.ListAuditRequest) -> AuditPage:
    limit = request.limit if request.HasField("limit") else DEFAULT_PAGE_SIZE
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise InvalidValue(f"limit: Input should be between 1 and {MAX_PAGE_SIZE}")
    before_id = request.before_id if request.HasField("before_id") else 0
    if request.HasField("before_id") and before_id < 1:
        raise InvalidValue("before_id: Input should be greater than or equal to 1")
    return AuditPage(limit, before_id)


def audit_message(row: AuditRow) -> pb.AuditEntry:
    entry = pb.AuditEntry(
        id=row.id,
        actor=row.actor,
        action=row.action,
        target=row.target,
        before=row.before or "",
        after=row.after or "",
        remote=row.remote,
    )
    set_timestamp(entry.at, row.at)
    return entry


def audit_page(rows: list[AuditRow], limit: int) -> pb.ListAuditResponse:
    """The entries of a page, cut short before MAX_PAGE_BYTES (but never empty), and
    the cursor of the next page when there may be one."""
    entries = next(within_bytes(map(audit_message, rows), MAX_PAGE_BYTES), [])
    more = len(entries) < len(rows) or len(rows) == limit
    return pb.ListAuditResponse(entries=entries, next_before_id=entries[-1].id if more else 0)
