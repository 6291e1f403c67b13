"""The API's one authentication: a bearer token, when API_TOKEN is set; the event
stream also takes the dashboard's session cookie (`session.py`)."""

import hmac
from dataclasses import dataclass

from fastapi import HTTPException, Request

from . import session


@dataclass(frozen=True)
class Token:
    """API_TOKEN, as the session cookie names it."""

    name: str
    secret: str


class BearerToken:
    """A FastAPI dependency that lets a request through when API_TOKEN is unset or the
    request carries `Authorization: Bearer <API_TOKEN>`. With `session_cookie`, it also
    takes the dashboard's session cookie when the header has no token: the event
    stream's check does, since EventSource cannot send headers."""

    def __init__(self, token: str, session_cookie: bool = False):
        self.token = token
        self.session_cookie = session_cookie

    @property
    def credentials(self) -> list[Token]:
        return [Token("admin", self.token)] if self.token else []

    async def __call__(self, request: Request) -> None:
        """Async, so that FastAPI runs it on the loop, not in a worker thread."""
        if not self.token:
            return
        header = request.headers.get("authorization", "")
        given = header.removeprefix("Bearer ") if header.startswith("Bearer ") else ""
        if not given and self.session_cookie:
            cookie = request.cookies.get(session.COOKIE, "")
            if session.verify(cookie, self.credentials) is not None:
                return
        if not hmac.compare_digest(given.encode(), self.token.encode()):
            raise HTTPException(
                401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"}
            )

    def caller(self, request: Request) -> Token | None:
        """Who the request's bearer token is, once this check has let it through."""
        return self.credentials[0] if self.credentials else None
