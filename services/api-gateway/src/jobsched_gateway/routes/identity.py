"""`/api/me`: the caller's token name and role, so that a client (the dashboard) offers
only what the role allows."""

from typing import Literal, cast

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from ..auth import caller

RoleName = Literal["read", "operate", "admin"]

router = APIRouter()


class Me(BaseModel):
    name: str = Field(description="The token's name; `local` on a gateway without tokens.")
    role: RoleName


@router.get("/api/me")
async def me(request: Request) -> Me:
    """Who the bearer token is. Without API tokens the gateway serves loopback only, and
    every caller may do everything, as `local`."""
    token = caller(request)
    if token is None:  # Authorize let it through: the gateway has no tokens
        return Me(name="local", role="admin")
    return Me(name=token.name, role=cast(RoleName, str(token.role)))
