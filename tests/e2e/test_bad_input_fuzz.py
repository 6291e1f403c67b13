"""Invariant 4 under generated input: whatever a client sends, the gateway answers with
a 2xx or a 4xx carrying a message, never a 5xx, a hang or a crash."""

from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import LiveSystem

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=300),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=20), children, max_size=4)
    ),
    max_leaves=12,
)
job_bodies = st.fixed_dictionaries(
    {},
    optional={
        "name": json_values | st.text(max_size=300),
        "command": json_values | st.text(max_size=300),
        "max_attempts": json_values,
        "timeout_seconds": json_values,
    },
)
times = st.datetimes(timezones=st.none() | st.timezones()).map(lambda t: t.isoformat())
timed_job_bodies = st.fixed_dictionaries(
    {"name": st.text(min_size=1, max_size=50), "command": st.just("true")},
    optional={
        "priority": json_values,
        "run_at": json_values | times,
        "delay_seconds": json_values,
        "depends_on": json_values | st.lists(st.integers(-(2**70), 2**70), max_size=3),
    },
)
# A schedule's command is fixed and it is created paused: generated schedules make no
# jobs, so that the system under test stays idle.
schedule_bodies = st.fixed_dictionaries(
    {"command": st.just("true")},
    optional={
        "name": json_values | st.text(max_size=300),
        "cron": json_values | st.sampled_from(["@daily", "0 3 * * *", "61 * * * *", "* * *"]),
        "every_seconds": json_values,
        "timezone": json_values | st.sampled_from(["Europe/Berlin", "UTC", "../etc/passwd"]),
        "overlap": json_values | st.sampled_from(["skip", "allow"]),
        "catchup_window_seconds": json_values,
        "priority": json_values,
        "max_attempts": json_values,
        "timeout_seconds": json_values,
    },
).map(lambda body: {**body, "paused": True})
schedule_names = st.text(max_size=30).map(lambda name: quote(name, safe=""))
path_ids = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.text(alphabet="abc%-_.~0123456789", min_size=1, max_size=30),
)
queries = st.dictionaries(
    st.sampled_from(["status", "limit", "before", "attempt", "x"]),
    st.text(max_size=30) | st.integers(min_value=-(2**70), max_value=2**70).map(str),
    max_size=3,
)

SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def check(reply: httpx.Response) -> None:
    assert reply.status_code < 500, (reply.request.method, reply.request.url, reply.text)
    if reply.status_code >= 400:
        assert reply.json()["detail"], reply.text


@SETTINGS
@given(body=job_bodies | json_values)
def test_creating_jobs_from_any_json(live_system: LiveSystem, body: Any) -> None:
    check(live_system.api("POST", "/api/jobs/create", body))


@SETTINGS
@given(
    body=json_values
    | st.fixed_dictionaries({"jobs": json_values | st.lists(job_bodies | json_values, max_size=5)})
)
def test_creating_jobs_in_bulk_from_any_json(live_system: LiveSystem, body: Any) -> None:
    check(live_system.api("POST", "/api/jobs/bulk", body))


@SETTINGS
@given(body=json_values | st.fixed_dictionaries({"max_concurrent_jobs": json_values}))
def test_setting_the_config_from_any_json(live_system: LiveSystem, body: Any) -> None:
    reply = live_system.api("PUT", "/api/config", body)
    check(reply)
    if reply.status_code == 200:
        live_system.api("PUT", "/api/config", {"max_concurrent_jobs": 2})


@SETTINGS
@given(
    body=timed_job_bodies | st.fixed_dictionaries({"jobs": st.lists(timed_job_bodies, max_size=3)})
)
def test_creating_timed_and_dependent_jobs_from_any_json(
    live_system: LiveSystem, body: Any
) -> None:
    path = "/api/jobs/bulk" if "jobs" in body else "/api/jobs/create"
    check(live_system.api("POST", path, body))


@SETTINGS
@given(
    body=json_values
    | st.fixed_dictionaries(
        {}, optional={"max_concurrent_jobs": json_values, "paused": json_values}
    )
)
def test_pausing_from_any_json(live_system: LiveSystem, body: Any) -> None:
    check(live_system.api("PUT", "/api/config", body))


@SETTINGS
@given(body=schedule_bodies | json_values, name=schedule_names)
def test_schedules_from_any_json(live_system: LiveSystem, body: Any, name: str) -> None:
    check(live_system.api("POST", "/api/schedules", body))
    check(live_system.api("PUT", f"/api/schedules/{name}", body))


@SETTINGS
@given(
    name=schedule_names,
    action=st.sampled_from(["", "/pause", "/resume", "/trigger"]),
)
def test_schedule_paths(live_system: LiveSystem, name: str, action: str) -> None:
    method = "POST" if action else "GET"
    check(live_system.api(method, f"/api/schedules/{name}{action}"))
    check(live_system.api("DELETE", f"/api/schedules/{name}"))


@SETTINGS
@given(
    job_id=path_ids,
    action=st.sampled_from(["", "/output", "/attempts", "/cancel", "/retry"]),
    params=queries,
)
def test_job_paths_and_queries(
    live_system: LiveSystem, job_id: str, action: str, params: dict[str, str]
) -> None:
    method = "POST" if action in ("/cancel", "/retry") else "GET"
    check(live_system.api(method, f"/api/jobs/{job_id}{action}", params=params))
    check(live_system.api("GET", "/api/jobs", params=params))


@SETTINGS
@given(raw=st.binary(max_size=2000))
def test_raw_bytes_as_a_body(live_system: LiveSystem, raw: bytes) -> None:
    headers = {"content-type": "application/json"}
    check(live_system.api("POST", "/api/jobs/create", content=raw, headers=headers))
