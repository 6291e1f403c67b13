"""The audit log: who changed what through the API, and from where. Each write of the
store records its entry with `record_audit`, in the write's own transaction, so that
no change is made without its record, nor recorded without being made."""

import json
from datetime import datetime
from typing import Any, NamedTuple

import psycopg

from .queries import q

# The longest remote address kept: it is what a caller says of itself (via the gateway).
MAX_REMOTE_CHARS = 200


class Caller(NamedTuple):
    """Who makes a call: the API token's name (or `local`) and the caller's address."""

    actor: str
    remote: str = ""


# A call on a tokenless loopback scheduler, and what the store records when no caller
# is given (the tests' and tools' direct writes).
LOCAL = Caller("local")


class AuditRow(NamedTuple):
    id: int
    at: datetime
    actor: str
    action: str
    target: str
    before: str | None  # JSON text
    after: str | None
    remote: str


def audit_json(value: Any) -> str | None:
    """A before or after value as JSON text (None stays SQL NULL); times as ISO text."""
    return None if value is None else json.dumps(value, default=_plain, ensure_ascii=False)


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, tuple | set | frozenset):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


def audit_params(
    caller: Caller, action: str, target: str, before: Any = None, after: Any = None
) -> dict[str, Any]:
    """The parameters of `record_audit`, for a statement that writes its entry itself."""
    return {
        "actor": caller.actor,
        "action": action,
        "target": target,
        "before": audit_json(before),
        "after": audit_json(after),
        "remote": caller.remote[:MAX_REMOTE_CHARS],
    }


async def record_audit(
    conn: psycopg.AsyncConnection[Any],
    caller: Caller,
    action: str,
    target: str,
    before: Any = None,
    after: Any = None,
) -> None:
    """Writes one entry on `conn`: call it inside the write's transaction. `before` and
    `after` are JSON values (dicts, lists, text, numbers; datetimes as ISO text)."""
    await conn.execute(q("record_audit"), audit_params(caller, action, target, before, after))
