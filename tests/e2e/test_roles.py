"""Tokens with roles and the audit log, through the real gateway and scheduler: each
write route refuses a role too low (403) and answers one high enough, and leaves an
audit entry naming the token and the caller's address; /api/audit pages by keyset;
`jobsctl audit` prints it; the scheduler itself refuses a gRPC caller with a low role."""

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from jobsched.v1 import jobs_pb2 as pb
from jobsched.v1 import jobs_pb2_grpc
from jobsctl.main import main as jobsctl

from tests.conftest import LiveSystem, start_live_system

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

SECRETS = {role: f"{role}-{uuid.uuid4().hex}" for role in ("read", "operate", "admin")}
NAMES = {"read": "wallboard", "operate": "ci", "admin": "ops"}
API_TOKENS = ",".join(f"{NAMES[role]}:{role}:{secret}" for role, secret in SECRETS.items())
ORDER = ["read", "operate", "admin"]


@pytest.fixture
def system(database_url: str, tmp_path: Path) -> Iterator[LiveSystem]:
    system = start_live_system(database_url, tmp_path, runners=1, API_TOKENS=API_TOKENS)
    try:
        yield system
    finally:
        system.stop_all()


def call(
    system: LiveSystem, role: str | None, method: str, path: str, body: Any = None
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {SECRETS[role]}"} if role else {}
    with httpx.Client(base_url=system.gateway_url, timeout=10, headers=headers) as client:
        return client.request(method, path, json=body)


LATE = {"name": "late", "command": "true", "delay_seconds": 3600}
BULK = {"jobs": [{"name": "b1", "command": "true"}, {"name": "b2", "command": "true"}]}
HOURLY = {"name": "hourly", "command": "true", "every_seconds": 3600}
HOURLY_DATE = {"command": "date", "every_seconds": 3600}
TWO = {"max_concurrent_jobs": 2}
KEY, SCHEDULE = "limit/tenant/a", "schedule/hourly"

# Each write route, the least role it needs, and a body that succeeds once the routes
# before it have run, in this order.
WRITES: list[tuple[str, str, str, Any, str, str]] = [
    ("operate", "POST", "/api/jobs/create", LATE, "job.create", "job/1"),
    ("operate", "POST", "/api/jobs/bulk", BULK, "jobs.create", "jobs/2-3"),
    ("operate", "POST", "/api/jobs/1/cancel", None, "job.cancel", "job/1"),
    ("operate", "POST", "/api/jobs/1/retry", None, "job.retry", "job/1"),
    ("admin", "PUT", "/api/config", {"max_concurrent_jobs": 3}, "config.update", "config"),
    ("admin", "PUT", "/api/limits/tenant%2Fa", TWO, "limit.set", KEY),
    ("admin", "DELETE", "/api/limits/tenant%2Fa", None, "limit.delete", KEY),
    ("admin", "POST", "/api/schedules", HOURLY, "schedule.create", SCHEDULE),
    ("admin", "PUT", "/api/schedules/hourly", HOURLY_DATE, "schedule.update", SCHEDULE),
    ("admin", "POST", "/api/schedules/hourly/pause", None, "schedule.pause", SCHEDULE),
    ("admin", "POST", "/api/schedules/hourly/resume", None, "schedule.resume", SCHEDULE),
    ("operate", "POST", "/api/schedules/hourly/trigger", None, "schedule.trigger", SCHEDULE),
    ("admin", "DELETE", "/api/schedules/hourly", None, "schedule.delete", SCHEDULE),
]


def test_each_write_route_takes_its_role_and_is_audited(system: LiveSystem) -> None:
    for needed, method, path, body, _, _ in WRITES:
        assert call(system, None, method, path, body).status_code == 401, path
        for role in ORDER[: ORDER.index(needed)]:
            refused = call(system, role, method, path, body)
            assert refused.status_code == 403, (role, path, refused.text)
        reply = call(system, needed, method, path, body)
        assert reply.status_code in (200, 201, 204), (needed, path, reply.text)
    # A role above the one needed may as well: admin creates and cancels.
    made = call(
        system, "admin", "POST", "/api/jobs/create", {"name": "by-admin", "command": "true"}
    )
    assert made.status_code == 201
    for role in ("read", "operate"):
        assert call(system, role, "GET", "/api/audit").status_code == 403
    reply = call(system, "admin", "GET", "/api/audit?limit=1000")
    assert reply.status_code == 200
    entries = list(reversed(reply.json()))
    expected = [(NAMES[needed], action, target) for needed, *_, action, target in WRITES]
    expected.append(("ops", "job.create", f"job/{made.json()['id']}"))
    assert [(e["actor"], e["action"], e["target"]) for e in entries] == expected
    assert {e["remote"] for e in entries} == {"127.0.0.1"}
    assert entries[0]["after"] == {"name": "late", "command": "true"}
    assert entries[4]["before"] == {"max_concurrent_jobs": 2}
    assert entries[4]["after"] == {"max_concurrent_jobs": 3}
    # Refused calls changed nothing and recorded nothing.
    jobs = call(system, "read", "GET", "/api/jobs").json()
    assert sorted(j["name"] for j in jobs if not j["name"].startswith("hourly@")) == [
        "b1",
        "b2",
        "by-admin",
        "late",
    ]


def test_the_audit_log_pages_and_jobsctl_prints_it(
    system: LiveSystem, capsys: pytest.CaptureFixture[str]
) -> None:
    for n in range(5):
        body = {"name": f"j{n}", "command": "true"}
        assert call(system, "operate", "POST", "/api/jobs/create", body).status_code == 201
    first = call(system, "admin", "GET", "/api/audit?limit=2")
    ids = [e["id"] for e in first.json()]
    assert len(ids) == 2 and ids[0] > ids[1]
    following = first.links["next"]["url"]
    assert following == f"/api/audit?limit=2&before={ids[1]}"
    second = call(system, "admin", "GET", following).json()
    assert [e["id"] for e in second] == [ids[1] - 1, ids[1] - 2]
    last = call(system, "admin", "GET", f"/api/audit?before={ids[1] - 2}")
    assert len(last.json()) == 1 and "next" not in last.links
    assert call(system, "admin", "GET", "/api/audit?limit=0").status_code == 422

    base = ["--url", system.gateway_url]
    assert jobsctl(["audit", "--limit", "2", "--token", SECRETS["admin"], *base]) == 0
    printed = capsys.readouterr()
    lines = printed.out.splitlines()
    assert lines[0].split() == ["ID", "AT", "ACTOR", "ACTION", "TARGET", "REMOTE", "CHANGE"]
    assert len(lines) == 3 and "ci" in lines[1] and "job.create" in lines[1]
    assert '{"name":"j4","command":"true"}' in lines[1] and "more entries" in printed.err
    assert jobsctl(["audit", "--all", "--json", "--token", SECRETS["admin"], *base]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 5
    assert jobsctl(["audit", "--token", SECRETS["operate"], *base]) == 2
    assert "needs admin" in capsys.readouterr().err


def test_the_scheduler_checks_the_role_of_a_grpc_caller(system: LiveSystem) -> None:
    with grpc.insecure_channel(system.scheduler_addr) as channel:
        jobs = jobs_pb2_grpc.JobServiceStub(channel)
        create = pb.CreateJobRequest(name="direct", command="true")
        with pytest.raises(grpc.RpcError) as anonymous:
            jobs.CreateJob(create, timeout=10)
        assert anonymous.value.code() == grpc.StatusCode.UNAUTHENTICATED
        as_reader = (("authorization", f"Bearer {SECRETS['read']}"),)
        with pytest.raises(grpc.RpcError) as denied:
            jobs.CreateJob(create, metadata=as_reader, timeout=10)
        assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert jobs.GetStats(pb.GetStatsRequest(), metadata=as_reader, timeout=10).total == 0
        as_ci = (("authorization", f"Bearer {SECRETS['operate']}"),)
        assert jobs.CreateJob(create, metadata=as_ci, timeout=10).name == "direct"
        as_ops = (("authorization", f"Bearer {SECRETS['admin']}"),)
        (entry,) = jobs.ListAudit(pb.ListAuditRequest(), metadata=as_ops, timeout=10).entries
        assert (entry.actor, entry.action, entry.remote) == ("ci", "job.create", "127.0.0.1")
