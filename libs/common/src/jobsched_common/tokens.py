"""API tokens with roles, as the gateway and the scheduler both read them: `API_TOKEN`
(one admin token named `admin`), `API_TOKENS` (`name:role:secret,...`) and
`API_TOKENS_FILE` (`name role secret` a line)."""

from __future__ import annotations

import enum
import hmac
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

from pydantic import BaseModel, PrivateAttr, model_validator

from .settings import refuse_placeholder

# A secret shorter than this is refused where the API is served beyond loopback.
MIN_SECRET_CHARS = 16
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")


class Role(enum.IntEnum):
    """What a token may do; each role may do all that the ones below it may."""

    READ = 1  # every GET and the event stream
    OPERATE = 2  # and create, cancel, retry, trigger
    ADMIN = 3  # and config, limits, schedules, deletes, the audit log

    @classmethod
    def named(cls, name: str) -> Role:
        try:
            return cls[name.strip().upper()]
        except KeyError:
            roles = ", ".join(role.name.lower() for role in cls)
            raise ValueError(f"unknown role {name!r} (one of {roles})") from None

    def __str__(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class ApiToken:
    name: str
    role: Role
    secret: str = field(repr=False)

    def may(self, needed: Role) -> bool:
        return self.role >= needed


def load_api_tokens(
    api_token: str = "", api_tokens: str = "", api_tokens_file: str = ""
) -> tuple[ApiToken, ...]:
    """Every configured token; a malformed entry, a placeholder secret, or a name or
    secret given twice is a ValueError naming the entry (never the secret)."""
    found: list[ApiToken] = []
    if api_token:
        found.append(_token("admin", "admin", api_token, "API_TOKEN"))
    for n, entry in enumerate(e.strip() for e in api_tokens.split(",")):
        if entry:
            parts = entry.split(":", 2)
            if len(parts) != 3:
                raise ValueError(f"API_TOKENS entry {n + 1}: not name:role:secret")
            name, role, secret = parts
            found.append(_token(name, role, secret, f"API_TOKENS entry {n + 1}"))
    if api_tokens_file:
        found.extend(_file_tokens(Path(api_tokens_file)))
    _refuse_repeats(found)
    return tuple(found)


def _file_tokens(path: Path) -> list[ApiToken]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ValueError(f"API_TOKENS_FILE {path}: {exc.strerror}") from exc
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        where = f"API_TOKENS_FILE {path} line {number}"
        if len(words) != 3:
            raise ValueError(f"{where}: not `name role secret`")
        name, role, secret = words
        found.append(_token(name, role, secret, where))
    return found


def _token(name: str, role: str, secret: str, where: str) -> ApiToken:
    name, secret = name.strip(), secret.strip()
    if not _NAME.fullmatch(name):
        raise ValueError(f"{where}: name {name!r} is not 1-64 letters, digits or ._@-")
    if not secret:
        raise ValueError(f"{where}: empty secret")
    refuse_placeholder(f"the secret of token {name!r}", secret)
    try:
        return ApiToken(name, Role.named(role), secret)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None


def _refuse_repeats(tokens: list[ApiToken]) -> None:
    names: set[str] = set()
    secrets: set[str] = set()
    for token in tokens:
        if token.name in names:
            raise ValueError(f"API token name {token.name!r} is given twice")
        if token.secret in secrets:
            raise ValueError(f"API token {token.name!r} has the secret of another token")
        names.add(token.name)
        secrets.add(token.secret)


def find_token(tokens: tuple[ApiToken, ...] | list[ApiToken], secret: str) -> ApiToken | None:
    """The token whose secret this is, comparing each in constant time, so that the
    time taken tells nothing about which secret came close."""
    found = None
    given = secret.encode()
    for token in tokens:
        if hmac.compare_digest(given, token.secret.encode()):
            found = token
    return found if secret else None


def bearer_secret(authorization: str) -> str:
    """The secret of an `Authorization: Bearer <secret>` value; '' for anything else."""
    scheme, _, secret = authorization.strip().partition(" ")
    return secret.strip() if scheme.lower() == "bearer" else ""


def weak_tokens(tokens: tuple[ApiToken, ...]) -> list[str]:
    """The names of tokens too short to serve beyond loopback."""
    return [t.name for t in tokens if len(t.secret) < MIN_SECRET_CHARS]


class ApiTokenSettings(BaseModel):
    """The three token settings, checked when the settings are read; a service's
    Settings takes this as a base."""

    # One admin token named `admin` (the original single token).
    API_TOKEN: str = ""
    # Comma-separated `name:role:secret`, roles read, operate and admin.
    API_TOKENS: str = ""
    # A file of `name role secret` lines (`#` comments), e.g. a mounted secret.
    API_TOKENS_FILE: str = ""
    _api_tokens: tuple[ApiToken, ...] = PrivateAttr(default=())

    @model_validator(mode="after")
    def _load_api_tokens(self) -> Self:
        self._api_tokens = load_api_tokens(self.API_TOKEN, self.API_TOKENS, self.API_TOKENS_FILE)
        return self

    @property
    def api_tokens(self) -> tuple[ApiToken, ...]:
        return self._api_tokens
