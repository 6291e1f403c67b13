"""`/api/login` and `/api/logout`: the dashboard's session cookie for the event stream."""

from fastapi import APIRouter, Request, Response

from .. import session
from ..auth import caller

router = APIRouter()


@router.post("/api/login", status_code=204, response_class=Response)
async def login(request: Request) -> Response:
    """Sets a session cookie for this request's bearer token: HttpOnly, SameSite=Strict,
    sent only to `/api/events`, good for 12 hours. The dashboard's EventSource, which
    cannot send headers, opens the event stream with it instead of a token in the URL.
    A `read` token may log in. Without API tokens configured there is nothing to
    remember, and no cookie."""
    reply = Response(status_code=204)
    credential = caller(request)
    if credential is not None:
        reply.set_cookie(
            session.COOKIE,
            session.issue(credential),
            max_age=session.SESSION_SECONDS,
            path=session.COOKIE_PATH,
            secure=request.url.scheme == "https",
            httponly=True,
            samesite="strict",
        )
    return reply


@router.post("/api/logout", status_code=204, response_class=Response)
async def logout() -> Response:
    """Ends this browser's session cookie."""
    reply = Response(status_code=204)
    reply.delete_cookie(session.COOKIE, path=session.COOKIE_PATH, httponly=True, samesite="strict")
    return reply
