"""Invariant 4 for text: lone surrogates, NUL and other control characters, and URLs
that are not UTF-8, in every text field the REST API takes, are a 422 that names the
field, never a 5xx; and a page of the longest jobs lists through REST and jobsctl."""

import json
import subprocess
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from jobsched_common.limits import MAX_COMMAND_BYTES

from tests.conftest import LiveSystem
from tests.e2e.test_bad_input_fuzz import SETTINGS, check
from tests.e2e.test_cli import JOBSCTL, cli_env

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

SURROGATES = ["\ud800", "\udfff", "a\udbffb"]
CONTROLS = ["\x00", "a\nb", "a\rb", "\x1b[2J", "a\x7f", "a\x9bb", "a\tb"]
# Pieces of text PostgreSQL, JSON, UTF-8 or a terminal find hard, and plain ones.
PIECES = [*SURROGATES, *CONTROLS, "\u2028", "\ufeff", "\u202e", "\U0001f600", "é", "x", " "]
nasty_text = st.lists(st.sampled_from(PIECES) | st.text(max_size=5), max_size=8).map("".join)


def post(system: LiveSystem, method: str, path: str, body: Any) -> httpx.Response:
    """JSON with \\u escapes, as a client's JSON may carry a lone surrogate."""
    headers = {"content-type": "application/json"}
    return system.api(method, path, content=json.dumps(body), headers=headers)


def escaped(text: str) -> str:
    """Percent-escapes of the text's bytes, a lone surrogate's included."""
    return quote(text.encode("utf-8", "surrogatepass"), safe="")


def refused(reply: httpx.Response, field: str) -> None:
    assert reply.status_code == 422, (reply.request.url, reply.text)
    assert field in reply.text, reply.text


JOB = {"name": "j", "command": "true"}
SCHEDULE = {"name": "s", "command": "true", "cron": "@daily", "paused": True}


@pytest.mark.parametrize("bad", [*SURROGATES, "\x00"], ids=repr)
def test_no_text_field_holds_a_lone_surrogate_or_a_nul(live_system: LiveSystem, bad: str) -> None:
    for field in ["name", "command", "concurrency_key"]:
        refused(post(live_system, "POST", "/api/jobs/create", JOB | {field: bad}), field)
        bulk = {"jobs": [JOB | {field: bad}]}
        refused(post(live_system, "POST", "/api/jobs/bulk", bulk), field)
    for field in ["name", "command", "cron", "timezone", "concurrency_key"]:
        refused(post(live_system, "POST", "/api/schedules", SCHEDULE | {field: bad}), field)
    limit = {"max_concurrent_jobs": 1}
    assert post(live_system, "PUT", f"/api/limits/{escaped(bad)}", limit).status_code == 422
    assert live_system.api("GET", f"/api/schedules/{escaped(bad)}").status_code == 422
    assert live_system.api("GET", f"/api/jobs?q={escaped(bad)}").status_code in (200, 422)
    assert live_system.sql("SELECT count(*) FROM jobs") == [(0,)]
    assert live_system.sql("SELECT count(*) FROM schedules") == [(0,)]


@pytest.mark.parametrize("bad", [c for c in CONTROLS if c != "\x00"], ids=repr)
def test_names_and_keys_hold_no_control_characters(live_system: LiveSystem, bad: str) -> None:
    """They would forge log lines and terminal output; a command may hold them."""
    for field in ["name", "concurrency_key"]:
        reply = post(live_system, "POST", "/api/jobs/create", JOB | {field: bad})
        refused(reply, f"{field}: Input should not contain control characters")
        refused(post(live_system, "POST", "/api/schedules", SCHEDULE | {field: bad}), field)
    refused(live_system.api("GET", f"/api/limits/{escaped(bad)}"), "control character")
    command = post(live_system, "POST", "/api/jobs/create", JOB | {"command": f"echo '{bad}'"})
    assert command.status_code == 201, command.text


@SETTINGS
@given(
    job=st.fixed_dictionaries({}, optional=dict.fromkeys(JOB | {"concurrency_key": ""}, nasty_text))
)
def test_jobs_of_any_text(live_system: LiveSystem, job: dict[str, str]) -> None:
    check(post(live_system, "POST", "/api/jobs/create", job))
    check(post(live_system, "POST", "/api/jobs/bulk", {"jobs": [job]}))


@SETTINGS
@given(
    schedule=st.fixed_dictionaries(
        {"paused": st.just(True)},
        optional=dict.fromkeys(
            ["name", "command", "cron", "timezone", "overlap", "concurrency_key"], nasty_text
        ),
    ),
    name=nasty_text,
)
def test_schedules_of_any_text(
    live_system: LiveSystem, schedule: dict[str, Any], name: str
) -> None:
    check(post(live_system, "POST", "/api/schedules", schedule))
    check(post(live_system, "PUT", f"/api/schedules/{escaped(name)}", schedule))
    check(live_system.api("GET", f"/api/schedules/{escaped(name)}"))


@SETTINGS
@given(key=nasty_text, q=nasty_text, status=nasty_text)
def test_keys_and_queries_of_any_text(
    live_system: LiveSystem, key: str, q: str, status: str
) -> None:
    check(post(live_system, "PUT", f"/api/limits/{escaped(key)}", {"max_concurrent_jobs": 1}))
    check(live_system.api("GET", f"/api/limits/{escaped(key)}"))
    check(live_system.api("DELETE", f"/api/limits/{escaped(key)}"))
    check(live_system.api("GET", f"/api/jobs?q={escaped(q)}"))
    check(live_system.api("GET", f"/api/jobs?status={escaped(status)}&q={escaped(q)}"))
    check(live_system.api("GET", f"/api/series?key={escaped(key)}"))


@SETTINGS
@given(raw=st.binary(max_size=12))
def test_any_bytes_percent_escaped_in_a_path_or_query(live_system: LiveSystem, raw: bytes) -> None:
    text = quote(raw, safe="")
    for path in [f"/api/limits/{text}", f"/api/schedules/{text}", f"/api/jobs?q={text}"]:
        check(live_system.api("GET", path))


def test_seventy_of_the_longest_jobs_list_through_rest_and_jobsctl(
    live_system: LiveSystem,
) -> None:
    """The issue's example: 70 jobs of 64 KiB commands once made `GET /api/jobs` a 429
    for good. Dispatch is paused so that the jobs stay as they were made."""
    assert live_system.api("PUT", "/api/config", {"paused": True}).status_code == 200
    command = "true " + "#" * (MAX_COMMAND_BYTES - 5)
    for n in range(70):
        reply = live_system.api(
            "POST", "/api/jobs/create", {"name": f"long-{n}", "command": command}
        )
        assert reply.status_code == 201, reply.text[:200]
    first = live_system.api("GET", "/api/jobs")
    assert first.status_code == 200 and 0 < len(first.json()) < 70, first.text[:200]
    listed = subprocess.run(
        [str(JOBSCTL), "--json", "list", "--all"],
        env=cli_env(live_system.gateway_url),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert listed.returncode == 0, listed.stderr
    names = {job["name"] for job in json.loads(listed.stdout)}
    assert names == {f"long-{n}" for n in range(70)}
    page = subprocess.run(
        [str(JOBSCTL), "list"],
        env=cli_env(live_system.gateway_url),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert page.returncode == 0 and "long-69" in page.stdout, page.stderr
