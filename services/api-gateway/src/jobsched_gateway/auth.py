"""Who a request comes from and what it may do: an API token with a role (read, operate,
admin), checked against the role each route needs, in one table."""

from fastapi import HTTPException, Request
from jobsched_common.tokens import ApiToken, Role, bearer_secret, find_token

from . import session

# The role each route needs beyond `read`; a GET needs `read`, any other write that is
# not named here needs `admin`, so that a new route is never open by mistake.
ROUTE_ROLES: dict[tuple[str, str], Role] = {
    ("POST", "/api/jobs/create"): Role.OPERATE,
    ("POST", "/api/jobs/bulk"): Role.OPERATE,
    ("POST", "/api/jobs/{job_id}/cancel"): Role.OPERATE,
    ("POST", "/api/jobs/{job_id}/retry"): Role.OPERATE,
    ("POST", "/api/jobs/cancel"): Role.OPERATE,
    ("POST", "/api/jobs/retry"): Role.OPERATE,
    ("POST", "/api/schedules/{name:path}/trigger"): Role.OPERATE,
    ("DELETE", "/api/jobs/{job_id}"): Role.ADMIN,
    ("PUT", "/api/config"): Role.ADMIN,
    ("PUT", "/api/limits/{key:path}"): Role.ADMIN,
    ("DELETE", "/api/limits/{key:path}"): Role.ADMIN,
    ("POST", "/api/schedules"): Role.ADMIN,
    ("PUT", "/api/schedules/{name:path}"): Role.ADMIN,
    ("DELETE", "/api/schedules/{name:path}"): Role.ADMIN,
    ("POST", "/api/schedules/{name:path}/pause"): Role.ADMIN,
    ("POST", "/api/schedules/{name:path}/resume"): Role.ADMIN,
    ("GET", "/api/audit"): Role.ADMIN,
    # The session cookie opens the event stream only, which `read` may.
    ("POST", "/api/login"): Role.READ,
    ("POST", "/api/logout"): Role.READ,
}
READ_METHODS = frozenset({"GET", "HEAD"})
# The caller's address as the scheduler records it in the audit log.
REMOTE_HEADER = "x-jobsched-remote"


def needed_role(method: str, route_path: str) -> Role:
    default = Role.READ if method in READ_METHODS else Role.ADMIN
    return ROUTE_ROLES.get((method, route_path), default)


def presented_secret(request: Request) -> str:
    """The secret the request presents: `Authorization: Bearer`, or on the event stream
    (EventSource cannot send headers) the secret of the token its session cookie names.
    Never a token in the URL: URLs end up in logs and histories."""
    secret = bearer_secret(request.headers.get("authorization", ""))
    if not secret and request.scope["path"] == session.COOKIE_PATH:
        tokens: tuple[ApiToken, ...] = request.app.state.api_tokens
        cookie = request.cookies.get(session.COOKIE, "")
        named = session.verify(cookie, tokens) if cookie else None
        secret = named.secret if named is not None else ""
    return secret


def caller(request: Request) -> ApiToken | None:
    """The configured token the request presents; None without one (or a wrong one)."""
    tokens: tuple[ApiToken, ...] = request.app.state.api_tokens
    return find_token(tokens, presented_secret(request))


def _route_path(request: Request) -> str:
    route = request.scope.get("route")
    return str(getattr(route, "path", request.scope["path"]))


class Authorize:
    """The one FastAPI dependency of every /api route and the event stream: with API
    tokens configured, 401 without a valid one and 403 for a role below the route's.
    Without tokens (a loopback gateway) every request passes, as before."""

    async def __call__(self, request: Request) -> None:
        """Async, so that FastAPI runs it on the loop, not in a worker thread."""
        if not request.app.state.api_tokens:
            return
        token = caller(request)
        if token is None:
            raise HTTPException(
                401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"}
            )
        needed = needed_role(request.method, _route_path(request))
        if not token.may(needed):
            raise HTTPException(403, f"token {token.name!r} is {token.role}: this needs {needed}")


def forwarded_metadata(request: Request) -> tuple[tuple[str, str], ...]:
    """What the gateway passes on to the scheduler, which checks the role again and
    records the caller: the caller's bearer secret and address."""
    metadata: list[tuple[str, str]] = []
    secret = presented_secret(request)
    # gRPC metadata carries printable ASCII only; any other secret is no token's.
    if secret.isascii() and secret.isprintable() and secret:
        metadata.append(("authorization", f"Bearer {secret}"))
    if request.client is not None:
        metadata.append((REMOTE_HEADER, request.client.host))
    return tuple(metadata)
