"""`jobsctl schedule ...`: recurring schedules, over the gateway's `/api/schedules`."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from . import output
from .client import Client, Json
from .output import say

Command = Callable[..., Any]  # main's `command(name, handler, text, under)`


def schedule_body(args: argparse.Namespace) -> Json:
    """The API's fields from the flags; a flag not given leaves the API's default."""
    body: Json = {
        "name": args.name,
        "command": args.command,
        "cron": args.cron,
        "every_seconds": args.every,
        "timezone": args.tz,
        "overlap": args.overlap,
        "catchup_window_seconds": args.catchup,
        "priority": args.priority,
        "max_attempts": args.attempts,
        "timeout_seconds": args.timeout,
        "concurrency_key": args.key,
    }
    if args.paused:
        body["paused"] = True
    return {key: value for key, value in body.items() if value is not None}


def cmd_create(api: Client, args: argparse.Namespace) -> int:
    schedule = api.create_schedule(schedule_body(args))
    if args.json:
        say(output.as_json(schedule))
    else:
        say(f"created schedule {schedule['name']}; {next_run(schedule)}")
    return 0


def next_run(schedule: Json) -> str:
    if schedule["paused"]:
        return "paused"
    return f"next run {output.own_offset(schedule.get('next_run_at'))}"


def cmd_list(api: Client, args: argparse.Namespace) -> int:
    schedules = api.list_schedules()
    say(output.as_json(schedules) if args.json else output.schedules_table(schedules))
    return 0


def cmd_show(api: Client, args: argparse.Namespace) -> int:
    schedule = api.get_schedule(args.name)
    say(output.as_json(schedule) if args.json else output.fields(schedule, ("next_run_at",)))
    return 0


def cmd_pause(api: Client, args: argparse.Namespace) -> int:
    return _act(api, args, "pause")


def cmd_resume(api: Client, args: argparse.Namespace) -> int:
    return _act(api, args, "resume")


def _act(api: Client, args: argparse.Namespace, action: str) -> int:
    schedule = api.schedule_action(args.name, action)
    if args.json:
        say(output.as_json(schedule))
    elif schedule["paused"]:
        say(f"schedule {schedule['name']} paused")
    else:
        say(f"schedule {schedule['name']} active; {next_run(schedule)}")
    return 0


def cmd_trigger(api: Client, args: argparse.Namespace) -> int:
    job = api.schedule_action(args.name, "trigger")
    say(output.as_json(job) if args.json else f"schedule {args.name}: {output.submitted(job)}")
    return 0


def cmd_delete(api: Client, args: argparse.Namespace) -> int:
    api.delete_schedule(args.name)
    say(output.as_json({"deleted": args.name}) if args.json else f"schedule {args.name} deleted")
    return 0


def add_to(actions: Any, command: Command) -> None:
    """The `schedule` subcommands, made with main's `command` under `actions`."""
    create = command("create", cmd_create, "a schedule: a job at each fire time", actions)
    create.add_argument("name", help="a unique name; its jobs are named NAME@TIME")
    create.add_argument("command", help="the shell command of each job")
    when = create.add_mutually_exclusive_group(required=True)
    when.add_argument("--cron", metavar="EXPR", help="5 fields, or @hourly, @daily, ...")
    when.add_argument("--every", type=int, metavar="S", help="an interval in seconds")
    create.add_argument("--tz", metavar="ZONE", help="IANA time zone of the cron (default UTC)")
    create.add_argument(
        "--overlap",
        choices=["skip", "allow"],
        help="while the previous job runs: skip the fire time (default) or fire anyway",
    )
    create.add_argument(
        "--catchup", type=int, metavar="S", help="make up a missed fire time this young"
    )
    create.add_argument("--paused", action="store_true", help="create it paused")
    create.add_argument("--priority", type=int, metavar="N", help="of its jobs, -100..100")
    create.add_argument("--attempts", type=int, metavar="N", help="of its jobs")
    create.add_argument("--timeout", type=int, metavar="S", help="of its jobs, in seconds")
    create.add_argument("--key", metavar="KEY", help="the concurrency key of its jobs")

    command("list", cmd_list, "every schedule, with its next run", actions)
    for name, handler, text in [
        ("show", cmd_show, "one schedule's fields"),
        ("pause", cmd_pause, "make no jobs until resumed"),
        ("resume", cmd_resume, "make jobs again"),
        ("trigger", cmd_trigger, "make a job now, paused or not"),
        ("delete", cmd_delete, "delete it (the jobs it made stay)"),
    ]:
        command(name, handler, text, actions).add_argument("name")
