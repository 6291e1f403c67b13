"""The dashboard's session cookie: what lets the browser's EventSource, which cannot send
headers, open the event stream without a token in its URL.

The value names a token and an expiry, signed with that token's secret: any gateway
with the same tokens can check it, and changing the token ends its sessions."""

import hashlib
import hmac
import time
from collections.abc import Iterable
from typing import Protocol, TypeVar

COOKIE = "jobsched_session"
COOKIE_PATH = "/api/events"  # sent with the stream's requests only
SESSION_SECONDS = 12 * 3600


class Credential(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def secret(self) -> str: ...


C = TypeVar("C", bound=Credential)


def _mac(secret: str, name: str, expires: int) -> str:
    message = f"jobsched-session\n{name}\n{expires}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def issue(credential: Credential, now: float | None = None) -> str:
    """A cookie value for this credential, good for SESSION_SECONDS."""
    expires = int(now if now is not None else time.time()) + SESSION_SECONDS
    return f"{credential.name}.{expires}.{_mac(credential.secret, credential.name, expires)}"


def verify(value: str, credentials: Iterable[C], now: float | None = None) -> C | None:
    """The credential a cookie value stands for, or None when it is forged or expired."""
    name, _, rest = value.rpartition(".")
    name, _, expires_text = name.rpartition(".")
    if not expires_text.isdigit():
        return None
    expires = int(expires_text)
    if expires < (now if now is not None else time.time()):
        return None
    for credential in credentials:
        if credential.name == name and hmac.compare_digest(
            rest.encode(), _mac(credential.secret, name, expires).encode()
        ):
            return credential
    return None
