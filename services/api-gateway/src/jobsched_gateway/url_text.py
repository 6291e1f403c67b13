"""A 422 for a URL whose percent-escapes are not UTF-8 text (a lone surrogate's bytes,
a stray `%FF`): decoded as the server would, each bad byte would become U+FFFD, and a
key or name the client never wrote would be read or written. A control character in
the path is refused too: no name or key holds one, and routes do not match across a
newline (a 404 that would not say why)."""

import re
from urllib.parse import unquote, unquote_to_bytes

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _is_text(escaped: bytes) -> bool:
    try:
        unquote_to_bytes(escaped).decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


class UrlText:
    """Refuses a path or query string that is not UTF-8 once unescaped."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
            for part, escaped in (("path", raw_path), ("query", scope["query_string"])):
                if not _is_text(escaped):
                    detail = f"the URL's {part} is not UTF-8 text once unescaped (%XX)"
                    await JSONResponse({"detail": detail}, 422)(scope, receive, send)
                    return
            if CONTROL.search(unquote(raw_path.decode("latin-1"))):
                detail = "the URL's path holds a control character, which no name or key may"
                await JSONResponse({"detail": detail}, 422)(scope, receive, send)
                return
        await self.app(scope, receive, send)
