"""The REST shape of the audit log (`/api/audit`), from JobService.ListAudit."""

import json
from datetime import datetime
from typing import Any

from jobsched.v1 import jobs_pb2 as pb
from pydantic import BaseModel, Field

from .schemas import time_of


class AuditEntry(BaseModel):
    """One write through the API, recorded by the scheduler in the write's transaction."""

    id: int
    at: datetime | None
    actor: str = Field(description="The token's name, or `local` on a tokenless loopback.")
    action: str = Field(description="e.g. `job.create`, `config.update`, `limit.set`.")
    target: str = Field(description="e.g. `job/42`, `schedule/nightly`, `limit/tenant-a`.")
    before: Any = Field(None, description="What the target was (JSON); null: nothing.")
    after: Any = Field(None, description="What it became (JSON); null: nothing (deleted).")
    remote: str = Field(description="The caller's address, as the gateway or scheduler saw it.")


def _json(text: str) -> Any:
    return json.loads(text) if text else None


def audit_json(entry: pb.AuditEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "at": time_of(entry, "at"),
        "actor": entry.actor,
        "action": entry.action,
        "target": entry.target,
        "before": _json(entry.before),
        "after": _json(entry.after),
        "remote": entry.remote,
    }
