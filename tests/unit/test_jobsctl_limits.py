"""What `jobsctl limits` and `jobsctl why` send and print: pause and resume keep the
limit, set keeps the pause, and the why-answer reads as one line per blocker."""

from typing import Any, cast

import pytest
from jobsctl import limit_commands, output
from jobsctl.client import ApiError, Client
from jobsctl.main import parser
from jobsctl.schedule_commands import schedule_body

WAITING = {
    "job_id": 9,
    "status": "queued",
    "runnable": False,
    "position": 3,
    "message": "Job 9 waits for a slot of key migrations.",
    "blockers": [
        {"kind": "key_limit", "message": "Key migrations runs 2 of 2.", "key": "migrations"}
        | {"limit": 2, "running": 2, "holders": [4, 5]},
        {"kind": "behind", "message": "3 jobs are ahead of it.", "position": 3},
    ],
}


class FakeGateway:
    """The limits of the keys it knows, and every PUT and DELETE it was sent."""

    def __init__(self, **limits: dict[str, Any]) -> None:
        self.limits = limits
        self.sent: list[tuple[str, str, int | None, bool]] = []

    def get_limit(self, key: str) -> dict[str, Any] | None:
        return self.limits.get(key)

    def set_limit(self, key: str, bound: int | None, paused: bool) -> dict[str, Any]:
        self.sent.append(("PUT", key, bound, paused))
        limit = {"key": key, "max_concurrent_jobs": bound, "paused": paused}
        return limit | {"running": 0, "queued": 0}

    def delete_limit(self, key: str) -> None:
        self.sent.append(("DELETE", key, None, False))


def run(gateway: FakeGateway, *argv: str, capsys: pytest.CaptureFixture[str]) -> str:
    args = parser().parse_args(list(argv))
    args.json = getattr(args, "json", False)
    assert args.handler(cast(Client, gateway), args) == 0
    return capsys.readouterr().out


def limit(bound: int | None, paused: bool) -> dict[str, Any]:
    return {"max_concurrent_jobs": bound, "paused": paused, "running": 1, "queued": 2}


def test_pause_and_resume_keep_the_limit(capsys: pytest.CaptureFixture[str]) -> None:
    gateway = FakeGateway(**{"tenant/42": limit(3, False)})
    said = run(gateway, "limits", "pause", "tenant/42", capsys=capsys)
    assert said == "key tenant/42: limit 3, paused\n"
    gateway.limits["tenant/42"] = limit(3, True)
    assert (
        run(gateway, "limits", "resume", "tenant/42", capsys=capsys) == "key tenant/42: limit 3\n"
    )
    assert gateway.sent == [("PUT", "tenant/42", 3, True), ("PUT", "tenant/42", 3, False)]


def test_a_key_never_seen_can_be_paused_but_not_resumed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    gateway = FakeGateway()
    assert run(gateway, "limits", "pause", "new", capsys=capsys) == "key new: no limit, paused\n"
    args = parser().parse_args(["limits", "resume", "new"])
    with pytest.raises(ApiError, match="nothing to resume"):
        limit_commands.cmd_resume(cast(Client, gateway), args)
    assert gateway.sent == [("PUT", "new", None, True)]


def test_set_keeps_the_pause(capsys: pytest.CaptureFixture[str]) -> None:
    gateway = FakeGateway(paused=limit(None, True))
    assert run(gateway, "limits", "set", "paused", "5", capsys=capsys).endswith("paused\n")
    assert run(gateway, "limits", "set", "fresh", "2", capsys=capsys) == "key fresh: limit 2\n"
    run(gateway, "limits", "rm", "fresh", capsys=capsys)
    assert gateway.sent == [
        ("PUT", "paused", 5, True),
        ("PUT", "fresh", 2, False),
        ("DELETE", "fresh", None, False),
    ]


def test_the_limits_table() -> None:
    rows = [{"key": "migrations"} | limit(2, False), {"key": "tenant/42"} | limit(None, True)]
    lines = output.limits_table(rows).splitlines()
    assert [line.split() for line in lines] == [
        ["KEY", "RUNNING/LIMIT", "QUEUED", "STATE"],
        ["migrations", "1/2", "2"],
        ["tenant/42", "1/-", "2", "paused"],
    ]
    assert output.limits_table([]) == "no keys with a limit or with jobs"


def test_why_reads_as_one_line_per_blocker() -> None:
    assert output.explanation(WAITING).splitlines() == [
        "job 9: queued, not runnable, 3 ahead of it",
        "Job 9 waits for a slot of key migrations.",
        "  key_limit: Key migrations runs 2 of 2. (held by jobs 4, 5)",
        "  behind: 3 jobs are ahead of it.",
    ]
    done = {"job_id": 9, "status": "completed", "runnable": False, "position": None}
    done |= {"message": "Job 9 completed.", "blockers": []}
    assert output.explanation(done) == "job 9: completed, not runnable\nJob 9 completed."


def test_submit_and_schedule_create_take_a_key() -> None:
    args = parser().parse_args(["submit", "m", "true", "--key", "migrations"])
    assert args.key == "migrations"
    assert parser().parse_args(["submit", "m", "true"]).key is None
    argv = ["schedule", "create", "r", "true", "--every", "60", "--key", "reports"]
    assert schedule_body(parser().parse_args(argv))["concurrency_key"] == "reports"
