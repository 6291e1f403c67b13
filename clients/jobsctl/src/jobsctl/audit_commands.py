"""`jobsctl audit`: who changed what, newest first (an admin token's view of `/api/audit`)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any

from . import output
from .client import Client, Json
from .output import note, say, shorten, table, when

CHANGE_WIDTH = 60


def change(entry: Json) -> str:
    """What the entry changed, in short: `before -> after`, or the one that is there."""
    before, after = entry.get("before"), entry.get("after")
    parts = [_compact(v) for v in (before, after) if v is not None]
    return shorten(" -> ".join(parts), CHANGE_WIDTH) if parts else "-"


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def audit_table(entries: Sequence[Json]) -> str:
    if not entries:
        return "no entries"
    rows = [
        [
            str(e["id"]),
            when(e.get("at")),
            shorten(e["actor"], 24),
            e["action"],
            shorten(e["target"]),
            output.cell(e.get("remote")),
            change(e),
        ]
        for e in entries
    ]
    return table(["id", "at", "actor", "action", "target", "remote", "change"], rows)


def cmd_audit(api: Client, args: argparse.Namespace) -> int:
    entries, page = api.list_audit(args.limit)
    while args.all and page:
        more, page = api.list_audit(page=page)
        entries += more
    if args.json:
        say(output.as_json(entries))
        return 0
    say(audit_table(entries))
    if page:
        note("(more entries: use --all, or a larger --limit)")
    return 0


def add_to(command: Any) -> None:
    """The `audit` command, made with main's `command`."""
    audit = command("audit", cmd_audit, "who changed what, newest first (admin tokens)")
    audit.add_argument("--limit", type=int, metavar="N", help="entries per page (API default 100)")
    audit.add_argument("--all", action="store_true", help="follow every page")
