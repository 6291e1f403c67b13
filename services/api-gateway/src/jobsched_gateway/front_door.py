"""What a browser may send: a Host the gateway answers to (no DNS rebinding), and a
write only from the gateway's own origin or one in CORS_ORIGINS (no cross-site forms)."""

import ipaddress
from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Probes and scrapers name the pod or container by its address, which no allow-list
# knows in advance; both answer without a token and change nothing.
PROBES = frozenset({"/healthz", "/metrics"})
DEFAULT_PORTS = {"http": 80, "https": 443}


def host_name(host: str) -> str:
    """The name of a Host header without its port: `[::1]:8080` -> `::1`."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else ""
    name, _, _ = host.partition(":")
    return name.rstrip(".")


def _plain_name(name: str) -> str:
    """An allow-list entry as `host_name` gives it: IPv6 without brackets."""
    name = name.strip().lower()
    try:
        return str(ipaddress.ip_address(name.strip("[]")))
    except ValueError:
        return name.rstrip(".")


def origin_of(url: str) -> tuple[str, str, int] | None:
    """Scheme, host and port of an origin, the port made explicit; None when not a URL."""
    try:
        parts = urlsplit(url.strip().lower())
        port = parts.port or DEFAULT_PORTS.get(parts.scheme)
    except ValueError:
        return None
    if not parts.scheme or not parts.hostname or port is None:
        return None
    return parts.scheme, parts.hostname, port


class FrontDoor:
    """A 400 for a Host header not allowed, a 403 for a cross-site write."""

    def __init__(self, app: ASGIApp, allowed_hosts: Iterable[str], cors_origins: Iterable[str]):
        self.app = app
        self.allowed_hosts = {_plain_name(h) for h in allowed_hosts}
        self.any_host = "*" in self.allowed_hosts
        self.cors_origins = {o for o in map(origin_of, cors_origins) if o is not None}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        host = headers.get("host", "")
        if scope["path"] not in PROBES and not self._host_allowed(host):
            detail = f"this server does not answer to the host {host!r} (ALLOWED_HOSTS)"
            await JSONResponse({"detail": detail}, 400)(scope, receive, send)
            return
        if scope["method"] in WRITES:
            refusal = self._cross_site(scope["scheme"], host, headers)
            if refusal:
                await JSONResponse({"detail": refusal}, 403)(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _host_allowed(self, host: str) -> bool:
        return self.any_host or host_name(host) in self.allowed_hosts

    def _cross_site(self, scheme: str, host: str, headers: Headers) -> str | None:
        """Why a write is refused, or None. No Origin: not a browser (curl, jobsctl)."""
        given = headers.get("origin")
        origin = origin_of(given) if given is not None else None
        if origin is not None and origin in self.cors_origins:
            return None
        if headers.get("sec-fetch-site") == "cross-site":
            return "a write from another site is refused (Sec-Fetch-Site: cross-site)"
        if given is not None and origin != origin_of(f"{scheme}://{host}"):
            return f"a write from {given!r} is refused (not this server, not in CORS_ORIGINS)"
        return None
