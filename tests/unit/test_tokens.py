"""API tokens and roles: how they are configured, found, and which role each gRPC method
and REST route needs (one table each, and nothing left out of it)."""

from pathlib import Path

import grpc
import pytest
from jobsched.v1 import jobs_pb2
from jobsched_common.tokens import ApiToken, Role, bearer_secret, find_token, load_api_tokens
from jobsched_gateway.app import create_app
from jobsched_gateway.auth import ROUTE_ROLES, needed_role
from jobsched_gateway.settings import Settings
from jobsched_scheduler.access import METHOD_ROLES, Refused, identify, is_loopback, peer_host

SECRET = "s" * 32


def test_tokens_come_from_all_three_settings(tmp_path: Path) -> None:
    file = tmp_path / "tokens"
    file.write_text("# name role secret\nboard read " + "b" * 20 + "  # the wallboard\n\n")
    tokens = load_api_tokens(
        SECRET, "ci:operate:" + "c" * 20 + ", ops:ADMIN:" + "o" * 20, str(file)
    )
    assert [(t.name, t.role) for t in tokens] == [
        ("admin", Role.ADMIN),
        ("ci", Role.OPERATE),
        ("ops", Role.ADMIN),
        ("board", Role.READ),
    ]
    assert "c" * 20 not in repr(tokens)  # a secret is never printed
    assert load_api_tokens() == ()


@pytest.mark.parametrize(
    ("tokens", "message"),
    [
        ("ci:root:" + "c" * 20, "unknown role 'root'"),
        ("ci:" + "c" * 20, "not name:role:secret"),
        ("ci:read:", "empty secret"),
        ("c i:read:" + "c" * 20, "is not 1-64 letters"),
        ("ci:read:changeme", "placeholder"),
        ("a:read:" + "c" * 20 + ",a:admin:" + "d" * 20, "'a' is given twice"),
        ("a:read:" + "c" * 20 + ",b:admin:" + "c" * 20, "has the secret of another"),
    ],
)
def test_a_malformed_token_is_refused_at_start(tokens: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_api_tokens(api_tokens=tokens)


def test_a_missing_tokens_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="API_TOKENS_FILE"):
        load_api_tokens(api_tokens_file=str(tmp_path / "none"))


def test_a_token_is_found_by_its_whole_secret_only() -> None:
    tokens = (ApiToken("a", Role.READ, "x" * 20), ApiToken("b", Role.ADMIN, "y" * 20))
    assert find_token(tokens, "y" * 20) == tokens[1]
    assert find_token(tokens, "y" * 19) is None
    assert find_token(tokens, "") is None
    assert find_token((), "") is None
    assert bearer_secret("Bearer abc") == "abc" == bearer_secret("bearer  abc ")
    assert bearer_secret("Basic abc") == "" == bearer_secret("")


def test_roles_are_ordered() -> None:
    assert Role.READ < Role.OPERATE < Role.ADMIN
    assert ApiToken("a", Role.ADMIN, SECRET).may(Role.OPERATE)
    assert not ApiToken("a", Role.READ, SECRET).may(Role.OPERATE)


def test_every_public_grpc_method_has_a_role_in_the_table() -> None:
    methods = {
        f"/{service.full_name}/{method.name}"
        for name in ("JobService", "ScheduleService", "LimitService")
        for service in [jobs_pb2.DESCRIPTOR.services_by_name[name]]
        for method in service.methods
    }
    assert methods == set(METHOD_ROLES)
    reads = {m.rsplit("/", 1)[1] for m, r in METHOD_ROLES.items() if r == Role.READ}
    assert all(name.startswith(("Get", "List", "Watch", "Explain")) for name in reads)
    assert METHOD_ROLES["/jobsched.v1.JobService/ListAudit"] == Role.ADMIN


def test_the_caller_of_a_grpc_call() -> None:
    tokens = (ApiToken("ci", Role.OPERATE, SECRET),)
    create = "/jobsched.v1.JobService/CreateJob"
    bearer = {"authorization": f"Bearer {SECRET}"}
    assert identify(tokens, create, bearer, "ipv4:10.0.0.5:4000") == ("ci", "10.0.0.5")
    forwarded = {**bearer, "x-jobsched-remote": "192.0.2.1"}
    assert identify(tokens, create, forwarded, "ipv4:127.0.0.1:1") == ("ci", "192.0.2.1")
    with pytest.raises(Refused) as denied:
        identify(tokens, "/jobsched.v1.JobService/UpdateConfig", bearer, "ipv4:127.0.0.1:1")
    assert denied.value.code == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(Refused) as unknown:
        identify(tokens, create, {}, "ipv4:127.0.0.1:1")
    assert unknown.value.code == grpc.StatusCode.UNAUTHENTICATED
    # Without tokens: loopback callers only, as `local`.
    assert identify((), create, {}, "ipv6:%5B::1%5D:4000") == ("local", "::1")
    with pytest.raises(Refused) as remote:
        identify((), create, {}, "ipv4:10.0.0.5:4000")
    assert remote.value.code == grpc.StatusCode.UNAUTHENTICATED


def test_peer_addresses() -> None:
    assert peer_host("ipv4:127.0.0.1:5000") == "127.0.0.1"
    assert peer_host("ipv6:%5B::1%5D:5000") == "::1"
    assert is_loopback("ipv4:127.0.0.2:1") and is_loopback("unix:/tmp/s")
    assert not is_loopback("ipv4:10.1.2.3:1") and not is_loopback("ipv6:%5B2001:db8::1%5D:1")


def test_every_rest_write_route_has_a_role_and_every_named_route_exists() -> None:
    app = create_app(Settings(API_TOKEN="", WEB_DIR="/nonexistent"))
    routes = {
        (method.upper(), path.replace("{key}", "{key:path}").replace("{name}", "{name:path}"))
        for path, operations in app.openapi()["paths"].items()
        for method in operations
    }
    writes = {route for route in routes if route[0] != "GET"}
    # Bulk cancel/retry and delete are named ahead of the routes that serve them.
    later = {
        ("POST", "/api/jobs/cancel"),
        ("POST", "/api/jobs/retry"),
        ("DELETE", "/api/jobs/{job_id}"),
    }
    assert writes <= set(ROUTE_ROLES) and set(ROUTE_ROLES) - later <= routes
    assert needed_role("GET", "/api/jobs") == Role.READ
    assert needed_role("POST", "/api/anything-new") == Role.ADMIN
