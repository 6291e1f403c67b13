"""`jobsctl cancel`, `retry` and `delete`: one job, several by id, or every job matching
`--status` and `--search`."""

from __future__ import annotations

import argparse
from typing import Any

from . import output
from .client import ApiError, Client, Json
from .output import say

Command = Any  # main's `command(name, handler, text, under)`
STATUSES = ["queued", "scheduled", "running", "completed", "failed", "cancelled"]


def _target(args: argparse.Namespace) -> Json:
    """The bulk request's body: the ids, or the filter."""
    wants_filter = args.status is not None or args.search is not None
    if args.ids and wants_filter:
        raise ApiError("give job ids or --status/--search, not both")
    if not args.ids and not wants_filter:
        raise ApiError("give one or more job ids, or --status and/or --search")
    if args.ids:
        return {"ids": args.ids}
    where = {"status": args.status, "q": args.search}
    return {"filter": {key: value for key, value in where.items() if value is not None}}


def cmd_cancel(api: Client, args: argparse.Namespace) -> int:
    if len(args.ids) == 1 and args.status is None and args.search is None:
        job = api.cancel_job(args.ids[0])
        if args.json:
            say(output.as_json(job))
        elif job["status"] == "cancelled":
            say(f"job {job['id']} cancelled")
        else:
            say(f"job {job['id']} is {job['status']}: it is being stopped and will end cancelled")
        return 0
    result = api.bulk_action("cancel", _target(args))
    say(output.as_json(result) if args.json else f"cancelled {_jobs(result['changed'])}")
    return 0


def cmd_retry(api: Client, args: argparse.Namespace) -> int:
    if len(args.ids) == 1 and args.status is None and args.search is None:
        job = api.retry_job(args.ids[0])
        say(output.as_json(job) if args.json else f"job {job['id']} {job['status']} again")
        return 0
    result = api.bulk_action("retry", _target(args))
    say(output.as_json(result) if args.json else f"queued {_jobs(result['changed'])} again")
    return 0


def cmd_delete(api: Client, args: argparse.Namespace) -> int:
    api.delete_job(args.id)
    say(output.as_json({"deleted": args.id}) if args.json else f"job {args.id} deleted")
    return 0


def _jobs(count: int) -> str:
    return f"{count} job" if count == 1 else f"{count} jobs"


def add_to(commands: Any, command: Command) -> None:
    """`cancel`, `retry` and `delete`, made with main's `command`."""
    for name, handler, text in [
        ("cancel", cmd_cancel, "cancel queued or running jobs: by ids, or by --status/--search"),
        ("retry", cmd_retry, "queue finished jobs again: by ids, or by --status/--search"),
    ]:
        sub = command(name, handler, text, commands)
        sub.add_argument("ids", type=int, nargs="*", metavar="ID")
        sub.add_argument("--status", choices=STATUSES, help="every job in this status")
        sub.add_argument(
            "--search", metavar="TEXT", help="every job whose name or command contains TEXT"
        )
    delete = command(
        "delete", cmd_delete, "delete a finished job with its attempts and output", commands
    )
    delete.add_argument("id", type=int)
