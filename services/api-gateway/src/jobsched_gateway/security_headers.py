"""The headers every answer carries, so that a browser runs only the gateway's own
code, in no other site's frame, and sends no URL of it elsewhere."""

from collections.abc import Iterable

from starlette.types import ASGIApp, Message, Receive, Scope, Send


def content_security_policy(script_hashes: tuple[str, ...] = ()) -> str:
    """The dashboard's policy: scripts, styles and connections from this origin only
    (no inline code: the page has none), images also as data: URLs (its icon). A page
    with inline scripts names each by its hash."""
    scripts = " ".join(["'self'", *(f"'sha256-{digest}'" for digest in script_hashes)])
    return "; ".join(
        [
            "default-src 'self'",
            f"script-src {scripts}",
            "style-src 'self'",
            "img-src 'self' data:",
            "connect-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


CSP = content_security_policy()
HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",  # frame-ancestors for browsers that predate it
    "cross-origin-opener-policy": "same-origin",
}


RAW_HEADERS = [(name.encode(), value.encode()) for name, value in HEADERS.items()]


def with_policy(headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The answer's raw headers and those of HEADERS it does not set itself."""
    headers = list(headers)
    own = {name.lower() for name, _ in headers}
    return headers + [header for header in RAW_HEADERS if header[0] not in own]


class SecurityHeaders:
    """Adds HEADERS to every answer; one that sets its own policy keeps it."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = with_policy(message.get("headers", ()))
            await send(message)

        await self.app(scope, receive, with_headers)
