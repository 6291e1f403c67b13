"""jobsctl: the command line, wired to the gateway's REST API.

Exit status: 0 on success; 2 when the API refused or could not be reached (or the
command line was wrong); `submit --wait` exits with the job's own exit code;
`submit-many --each-alone` exits 1 when some of its jobs were refused.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

from . import audit_commands, bulk_commands, limit_commands, output, schedule_commands
from .client import DEFAULT_URL, TERMINAL, ApiError, Client, Json
from .output import note, say

POLL_SECONDS = 0.5
BULK_LIMIT = 1000  # jobs in one request of the API's bulk create
STATUSES = ["queued", "scheduled", "running", "completed", "failed", "cancelled"]

Handler = Callable[[Client, argparse.Namespace], int]


def follow(api: Client, job_id: int, attempt: int, write: Callable[[str], Any] | None) -> Json:
    """Polls until the job is terminal, passing each new part of its output to `write`.

    The job is read before its output, so the last output read is complete.
    """
    shown_attempt, shown = 0, 0
    while True:
        job = api.get_job(job_id)
        if write is not None:
            out = api.get_output(job_id, attempt)
            if out["attempt"] != shown_attempt:  # a new attempt's output starts afresh
                if shown_attempt:
                    note(f"--- attempt {out['attempt']} ---")
                shown_attempt, shown = out["attempt"], 0
            if len(out["output"]) > shown:
                write(out["output"][shown:])
                sys.stdout.flush()
                shown = len(out["output"])
        if job["status"] in TERMINAL:
            return job
        time.sleep(POLL_SECONDS)


def job_exit_status(job: Json) -> int:
    if job["status"] == "completed":
        return 0
    code = job.get("exit_code")
    return code if isinstance(code, int) and 0 < code < 256 else 1


def cmd_submit(api: Client, args: argparse.Namespace) -> int:
    job = api.create_job(
        args.name,
        args.command,
        args.max_attempts,
        args.timeout,
        priority=args.priority,
        run_at=args.at,
        delay_seconds=args.delay,
        depends_on=args.after,
        concurrency_key=args.key,
    )
    if not args.wait:
        say(output.as_json(job) if args.json else output.submitted(job))
        return 0
    if args.json:
        job = follow(api, job["id"], 0, None)
        say(output.as_json(job))
    else:
        note(f"submitted job {job['id']} ({job['name']}), waiting for it to finish")
        job = follow(api, job["id"], 0, sys.stdout.write)
        note(output.finished(job))
    return job_exit_status(job)


def read_jobs(lines: Iterable[str]) -> list[Json]:
    """JSON Lines of jobs, as the API takes them; blank lines are skipped."""
    jobs = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            job = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ApiError(f"line {number}: not JSON ({exc.msg})") from None
        if not isinstance(job, dict):
            raise ApiError(f"line {number}: a job is a JSON object")
        jobs.append(job)
    return jobs


def cmd_submit_many(api: Client, args: argparse.Namespace) -> int:
    try:
        with open(args.file, encoding="utf-8") if args.file != "-" else sys.stdin as source:
            jobs = read_jobs(source)
    except OSError as exc:
        raise ApiError(f"cannot read {args.file}: {exc.strerror}") from None
    if args.each_alone:
        return submit_each_alone(api, jobs, args.json)
    created: list[Json] = []
    for start in range(0, len(jobs), BULK_LIMIT):
        try:
            created += api.create_jobs(jobs[start : start + BULK_LIMIT])
        except ApiError as exc:
            done = f"; the {len(created)} before line {start + 1} were submitted" if created else ""
            raise ApiError(f"{exc} (jobs from line {start + 1}{done})") from None
    if args.json:
        say(output.as_json(created))
    elif created:
        say(f"submitted {len(created)} jobs (ids {created[0]['id']} to {created[-1]['id']})")
    else:
        say("no jobs to submit")
    return 0


def submit_each_alone(api: Client, jobs: list[Json], as_json: bool) -> int:
    """Each job created or refused on its own; exit 1 if any was refused."""
    results: list[Json] = []
    for start in range(0, len(jobs), BULK_LIMIT):
        results += api.create_jobs(jobs[start : start + BULK_LIMIT], each_alone=True)
    if as_json:
        say(output.as_json(results))
    created = [r["job"] for r in results if "job" in r]
    for number, result in enumerate(results, 1):
        if "error" in result:
            error = result["error"]
            note(f"job {number} ({jobs[number - 1].get('name')!r}): {error['detail']}")
    if not as_json:
        say(f"submitted {len(created)} jobs, {len(results) - len(created)} refused")
    return 0 if len(created) == len(results) else 1


def cmd_list(api: Client, args: argparse.Namespace) -> int:
    jobs, page = api.list_jobs(args.status, args.limit, search=args.search)
    while args.all and page:
        more, page = api.list_jobs(page=page)
        jobs += more
    if args.json:
        say(output.as_json(jobs))
        return 0
    say(output.jobs_table(jobs))
    if page:
        note("(more jobs: use --all, or a larger --limit)")
    return 0


def cmd_show(api: Client, args: argparse.Namespace) -> int:
    job = api.get_job(args.id)
    attempts = api.list_attempts(args.id)
    if args.json:
        say(output.as_json({**job, "attempts": attempts}))
    else:
        say(output.fields(job) + "\n\n" + output.attempts_table(attempts))
    return 0


def cmd_output(api: Client, args: argparse.Namespace) -> int:
    if args.follow:
        follow(api, args.id, args.attempt, None if args.json else sys.stdout.write)
    out = api.get_output(args.id, args.attempt)
    if args.json:
        say(output.as_json(out))
        return 0
    if not args.follow:
        sys.stdout.write(out["output"])
    if out["truncated"]:
        note("jobsctl: the output was truncated (the scheduler keeps OUTPUT_LIMIT_BYTES)")
    return 0


def cmd_config_get(api: Client, args: argparse.Namespace) -> int:
    config = api.get_config()
    say(output.as_json(config) if args.json else output.fields(config))
    return 0


def cmd_config_set(api: Client, args: argparse.Namespace) -> int:
    config = api.set_config(args.max_concurrent_jobs)
    say(output.as_json(config) if args.json else output.fields(config))
    return 0


def cmd_stats(api: Client, args: argparse.Namespace) -> int:
    stats = api.get_stats()
    say(output.as_json(stats) if args.json else output.fields(stats))
    return 0


def cmd_pause(api: Client, args: argparse.Namespace) -> int:
    config = api.set_config(paused=True)
    say(output.as_json(config) if args.json else "paused: nothing new starts; running jobs go on")
    return 0


def cmd_resume(api: Client, args: argparse.Namespace) -> int:
    config = api.set_config(paused=False)
    say(output.as_json(config) if args.json else "resumed: jobs start again")
    return 0


def parser() -> argparse.ArgumentParser:
    # The common options work before or after the command; SUPPRESS keeps a
    # subcommand's absent option from hiding the same option given before it.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--url",
        default=argparse.SUPPRESS,
        help=f"the gateway (env JOBSCHED_URL, default {DEFAULT_URL})",
    )
    common.add_argument(
        "--token", default=argparse.SUPPRESS, help="the API token (env JOBSCHED_TOKEN)"
    )
    common.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="print the API's JSON"
    )
    top = argparse.ArgumentParser(
        prog="jobsctl",
        description="Submit and watch jobsched jobs over the gateway's REST API.",
        parents=[common],
    )
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, handler: Handler, text: str, under: Any = commands) -> Any:
        sub = under.add_parser(name, parents=[common], help=text, description=text)
        sub.set_defaults(handler=handler)
        return sub

    submit = command("submit", cmd_submit, "create a job")
    submit.add_argument("name", help="a unique name")
    submit.add_argument("command", help="the shell command")
    submit.add_argument("--max-attempts", type=int, metavar="N", help="attempts allowed")
    submit.add_argument("--timeout", type=int, metavar="S", help="seconds before it is killed")
    submit.add_argument("--priority", type=int, metavar="N", help="-100..100, higher first")
    when = submit.add_mutually_exclusive_group()
    when.add_argument(
        "--at", metavar="TIME", help="not before this RFC 3339 time, e.g. 2026-11-29T03:00:00Z"
    )
    when.add_argument("--delay", type=float, metavar="S", help="not before S seconds from now")
    submit.add_argument(
        "--after",
        type=int,
        action="append",
        metavar="ID",
        help="start once job ID has completed (repeatable)",
    )
    submit.add_argument("--key", metavar="KEY", help="its concurrency key (see `jobsctl limits`)")
    submit.add_argument(
        "--wait", action="store_true", help="print its output; exit with its exit code"
    )

    many = command(
        "submit-many",
        cmd_submit_many,
        "create jobs from JSON Lines, 1000 to a request, each request all or none",
    )
    many.add_argument(
        "file", help='one job a line: {"name": ..., "command": ...}; - reads standard input'
    )
    many.add_argument(
        "--each-alone",
        action="store_true",
        help="create or refuse each job on its own (a taken name fails only its job); "
        "exit 1 if any was refused",
    )

    listing = command("list", cmd_list, "list jobs, newest first")
    listing.add_argument("--status", choices=STATUSES)
    listing.add_argument(
        "--search", metavar="TEXT", help="jobs whose name or command contains TEXT"
    )
    listing.add_argument("--limit", type=int, metavar="N", help="jobs per page (API default 100)")
    listing.add_argument("--all", action="store_true", help="follow every page")

    show = command("show", cmd_show, "one job's fields and attempts")
    show.add_argument("id", type=int)

    out = command("output", cmd_output, "a job's output (the latest attempt's by default)")
    out.add_argument("id", type=int)
    out.add_argument("--attempt", type=int, default=0, metavar="N")
    out.add_argument("--follow", "-f", action="store_true", help="print new output until done")

    bulk_commands.add_to(commands, command)
    command("why", limit_commands.cmd_why, "why a job is not running (yet)").add_argument(
        "id", type=int
    )

    config = commands.add_parser(
        "config", parents=[common], help="the concurrency limit and the pause"
    )
    actions = config.add_subparsers(dest="action", required=True, metavar="ACTION")
    command("get", cmd_config_get, "show max_concurrent_jobs", actions)
    setter = command("set", cmd_config_set, "change max_concurrent_jobs at once", actions)
    setter.add_argument("max_concurrent_jobs", type=int, metavar="N")

    command("pause", cmd_pause, "start nothing new (running jobs go on)")
    command("resume", cmd_resume, "start jobs again after a pause")
    command("stats", cmd_stats, "job counts, the limit and connected runners")
    schedule = commands.add_parser("schedule", parents=[common], help="recurring schedules")
    schedule_actions = schedule.add_subparsers(dest="action", required=True, metavar="ACTION")
    schedule_commands.add_to(schedule_actions, command)
    limits = commands.add_parser("limits", parents=[common], help="limits per concurrency key")
    limit_actions = limits.add_subparsers(dest="action", required=True, metavar="ACTION")
    limit_commands.add_to(limit_actions, command)
    audit_commands.add_to(command)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    args.json = getattr(args, "json", False)
    url = getattr(args, "url", None) or os.environ.get("JOBSCHED_URL") or DEFAULT_URL
    token = getattr(args, "token", None) or os.environ.get("JOBSCHED_TOKEN", "")
    handler: Handler = args.handler
    try:
        with Client(url, token) as api:
            return handler(api, args)
    except ApiError as exc:
        note(f"jobsctl: {exc}")
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): stop quietly.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
