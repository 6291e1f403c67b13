"""The API's one authentication: a bearer token, when API_TOKEN is set."""

import hmac

from fastapi import HTTPException, Request


class BearerToken:
    """A FastAPI dependency that lets a request through when API_TOKEN is unset or the
    request carries `Authorization: Bearer <API_TOKEN>`. Given `query`, it also takes
    the token as that query parameter when the header has none: the event stream's
    check does, since EventSource cannot send headers."""

    def __init__(self, token: str, query: str | None = None):
        self.token = token
        self.query = query

    async def __call__(self, request: Request) -> None:
        """Async, so that FastAPI runs it on the loop, not in a worker thread."""
        if not self.token:
            return
        header = request.headers.get("authorization", "")
        given = header.removeprefix("Bearer ") if header.startswith("Bearer ") else ""
        if not given and self.query:
            given = request.query_params.get(self.query, "")
        if not hmac.compare_digest(given.encode(), self.token.encode()):
            raise HTTPException(
                401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"}
            )
