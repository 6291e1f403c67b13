"""What the commands print: JSON for scripts, aligned tables and fields for people."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

NAME_WIDTH = 40


def say(text: str) -> None:
    print(text, flush=True)


def note(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def as_json(data: Any) -> str:
    return json.dumps(data, indent=2)


def cell(value: Any) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def when(value: str | None) -> str:
    """An API timestamp (ISO 8601, UTC) in local time, to the second."""
    return _time(value, lambda moment: moment.astimezone().strftime("%Y-%m-%d %H:%M:%S"))


def own_offset(value: str | None) -> str:
    """An API timestamp kept in its own offset (a schedule's time zone), to the second."""
    return _time(value, lambda moment: moment.replace(microsecond=0).isoformat(sep=" "))


def _time(value: str | None, show: Callable[[datetime], str]) -> str:
    """A timestamp as `show` writes it; "-" when there is none, as it came when unreadable."""
    if not value:
        return "-"
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value
    return show(moment)


def shorten(text: str, width: int = NAME_WIDTH) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    head = "  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=True))
    return "\n".join(line.rstrip() for line in [head, *lines])


def jobs_table(jobs: Sequence[dict[str, Any]]) -> str:
    if not jobs:
        return "no jobs"
    rows = [
        [
            str(j["id"]),
            shorten(j["name"]),
            j["status"],
            cell(j.get("exit_code")),
            when(j.get("created_at")),
        ]
        for j in jobs
    ]
    return table(["id", "name", "status", "exit", "created"], rows)


def fields(data: dict[str, Any], own_offsets: tuple[str, ...] = ()) -> str:
    """`key: value` lines in the API's order, timestamps in local time except those
    named in `own_offsets`, kept in the offset the API wrote."""
    width = max((len(k) for k in data), default=0) + 1
    lines = []
    for key, value in data.items():
        if key in own_offsets:
            shown = own_offset(value)
        elif key.endswith(("_at", "last_run")):
            shown = when(value)
        else:
            shown = cell(value)
        lines.append(f"{key + ':':<{width}} {shown}")
    return "\n".join(lines)


def attempts_table(attempts: Sequence[dict[str, Any]]) -> str:
    if not attempts:
        return "attempts: none yet"
    rows = [
        [
            str(a["attempt"]),
            cell(a.get("runner_id")),
            when(a.get("started_at")),
            when(a.get("finished_at")),
            cell(a.get("exit_code")),
            cell(a.get("reason")),
            f"{a.get('output_length', 0)}{' (truncated)' if a.get('output_truncated') else ''}",
        ]
        for a in attempts
    ]
    headers = ["attempt", "runner", "started", "finished", "exit", "reason", "output bytes"]
    return "attempts:\n" + table(headers, rows)


def finished(job: dict[str, Any]) -> str:
    """One line on how a job ended, e.g. `job 7 failed: exit code 3`."""
    line = f"job {job['id']} {job['status']}"
    if job.get("reason"):
        line += f": {job['reason']}"
    elif job.get("exit_code") is not None:
        line += f" (exit code {job['exit_code']})"
    return line


def submitted(job: dict[str, Any]) -> str:
    """One line on a job just created, with why it waits or has ended already."""
    line = f"submitted job {job['id']} ({job['name']})"
    if job["status"] == "scheduled":
        line += f", scheduled for {when(job.get('run_at'))}"
    elif job["status"] == "cancelled":
        line += f", cancelled: {job.get('reason') or 'no reason given'}"
    elif job.get("depends_on"):
        ids = [str(i) for i in job["depends_on"]]
        line += f", after job{'s' if len(ids) > 1 else ''} {', '.join(ids)}"
    return line


def cadence(schedule: dict[str, Any]) -> str:
    """When a schedule fires: its cron, or `every 60s`."""
    if schedule.get("cron"):
        return str(schedule["cron"])
    return f"every {schedule.get('every_seconds')}s"


def schedules_table(schedules: Sequence[dict[str, Any]]) -> str:
    """Next runs in each schedule's own time zone, as the API writes them."""
    if not schedules:
        return "no schedules"
    rows = [
        [
            shorten(s["name"]),
            cadence(s),
            s["timezone"],
            "paused" if s["paused"] else own_offset(s.get("next_run_at")),
            cell(s.get("last_job_id")),
            str(s.get("skipped_count", 0)),
            shorten(s["command"]),
        ]
        for s in schedules
    ]
    headers = ["name", "when", "timezone", "next run", "last job", "skipped", "command"]
    return table(headers, rows)


def limits_table(limits: Sequence[dict[str, Any]]) -> str:
    """Each key's running jobs against its limit (`-`: none of its own)."""
    if not limits:
        return "no keys with a limit or with jobs"
    rows = [
        [
            shorten(limit["key"]),
            f"{limit['running']}/{cell(limit.get('max_concurrent_jobs'))}",
            str(limit["queued"]),
            "paused" if limit["paused"] else "",
        ]
        for limit in limits
    ]
    return table(["key", "running/limit", "queued", "state"], rows)


def limit_line(limit: dict[str, Any]) -> str:
    """One key's state in a sentence, e.g. `key migrations: limit 2, paused`."""
    bound = limit.get("max_concurrent_jobs")
    line = f"key {limit['key']}: " + (f"limit {bound}" if bound is not None else "no limit")
    return line + (", paused" if limit["paused"] else "")


def explanation(answer: dict[str, Any]) -> str:
    """The why-answer: where the job is, then one line per blocker."""
    position = answer.get("position")
    head = [
        f"job {answer['job_id']}: {answer['status']}",
        "runnable" if answer["runnable"] else "not runnable",
    ]
    if position is not None:
        head.append(f"{position} ahead of it")
    lines = [", ".join(head), answer["message"]]
    lines += [blocker_line(blocker) for blocker in answer["blockers"]]
    return "\n".join(line for line in lines if line)


def blocker_line(blocker: dict[str, Any]) -> str:
    line = f"  {blocker['kind']}: {blocker['message']}"
    if blocker.get("holders"):
        line += f" (held by jobs {', '.join(str(i) for i in blocker['holders'])})"
    return line
