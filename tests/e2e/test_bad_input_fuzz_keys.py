"""Invariant 4 for the endpoints of concurrency keys, the why-answer and the series:
whatever a client sends, a 2xx or a 4xx with a message, never a 5xx."""

from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import LiveSystem
from tests.e2e.test_bad_input_fuzz import SETTINGS, check, json_values, path_ids

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

keys = json_values | st.text(max_size=300)
key_paths = st.text(max_size=300).map(lambda key: quote(key, safe=""))
limit_bodies = json_values | st.fixed_dictionaries(
    {}, optional={"max_concurrent_jobs": json_values, "paused": json_values}
)
series_queries = st.dictionaries(
    st.sampled_from(["window", "key", "x"]),
    st.text(max_size=300) | st.integers(min_value=-(2**70), max_value=2**70).map(str),
    max_size=2,
)


@SETTINGS
@given(key=keys)
def test_jobs_and_schedules_with_any_key(live_system: LiveSystem, key: Any) -> None:
    job = {"name": "k", "command": "true", "concurrency_key": key}
    check(live_system.api("POST", "/api/jobs/create", job))
    check(live_system.api("POST", "/api/jobs/bulk", {"jobs": [job | {"name": "kb"}]}))
    schedule = {"name": "k", "command": "true", "every_seconds": 60, "paused": True}
    check(live_system.api("PUT", "/api/schedules/k", schedule | {"concurrency_key": key}))


@SETTINGS
@given(path=key_paths, body=limit_bodies)
def test_limits_from_any_json_under_any_key(live_system: LiveSystem, path: str, body: Any) -> None:
    check(live_system.api("PUT", f"/api/limits/{path}", body))
    check(live_system.api("GET", f"/api/limits/{path}"))
    check(live_system.api("DELETE", f"/api/limits/{path}"))
    check(live_system.api("GET", "/api/limits"))


@SETTINGS
@given(job_id=path_ids, params=series_queries)
def test_why_and_series_paths_and_queries(
    live_system: LiveSystem, job_id: str, params: dict[str, str]
) -> None:
    check(live_system.api("GET", f"/api/jobs/{job_id}/why"))
    check(live_system.api("GET", "/api/series", params=params))
