"""`jobsctl limits ...` (per-key limits over `/api/limits`) and `jobsctl why ID`."""

from __future__ import annotations

import argparse
from typing import Any

from . import output
from .client import ApiError, Client, Json
from .output import say

Command = Any  # main's `command(name, handler, text, under)`


def cmd_list(api: Client, args: argparse.Namespace) -> int:
    limits = api.list_limits()
    say(output.as_json(limits) if args.json else output.limits_table(limits))
    return 0


def cmd_set(api: Client, args: argparse.Namespace) -> int:
    """Changes the limit and keeps the pause as it is."""
    current = api.get_limit(args.key)
    paused = bool(current and current["paused"])
    return _show(args, api.set_limit(args.key, args.max_concurrent_jobs, paused))


def cmd_pause(api: Client, args: argparse.Namespace) -> int:
    return _set_paused(api, args, True)


def cmd_resume(api: Client, args: argparse.Namespace) -> int:
    return _set_paused(api, args, False)


def _set_paused(api: Client, args: argparse.Namespace, paused: bool) -> int:
    """Read, then PUT: the key keeps its limit."""
    current = api.get_limit(args.key)
    if current is None and not paused:
        raise ApiError(f"key {args.key} has no limit and no jobs: nothing to resume", 404)
    bound = current.get("max_concurrent_jobs") if current else None
    return _show(args, api.set_limit(args.key, bound, paused))


def _show(args: argparse.Namespace, limit: Json) -> int:
    say(output.as_json(limit) if args.json else output.limit_line(limit))
    return 0


def cmd_rm(api: Client, args: argparse.Namespace) -> int:
    api.delete_limit(args.key)
    if args.json:
        say(output.as_json({"deleted": args.key}))
    else:
        say(f"key {args.key}: limit removed (the global limit still applies)")
    return 0


def cmd_why(api: Client, args: argparse.Namespace) -> int:
    answer = api.explain_job(args.id)
    say(output.as_json(answer) if args.json else output.explanation(answer))
    return 0


def add_to(actions: Any, command: Command) -> None:
    """The `limits` subcommands, made with main's `command` under `actions`."""
    command("list", cmd_list, "every key with a limit or with jobs: running/limit", actions)
    setter = command("set", cmd_set, "set a key's limit (its pause stays)", actions)
    setter.add_argument("key")
    setter.add_argument("max_concurrent_jobs", type=int, metavar="N", help="1..10000")
    for name, handler, text in [
        ("pause", cmd_pause, "start no job of the key (its limit stays)"),
        ("resume", cmd_resume, "start the key's jobs again"),
        ("rm", cmd_rm, "remove the key's limit: the global limit only"),
    ]:
        command(name, handler, text, actions).add_argument("key")
