"""Who may connect as a runner: a runner token (`authorization: Bearer <secret>`) from
RUNNER_TOKENS or RUNNER_TOKENS_FILE, or a client certificate the TLS handshake verified
against TLS_CA_FILE. Either gives a name, and the runner's id must be that name or
`<name>/<anything>`: no runner can register, report or heartbeat under another's id.
API tokens never authenticate a runner."""

import hmac
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from jobsched_common.settings import refuse_placeholder
from jobsched_common.tls import peer_common_name

from .errors import DomainError

log = logging.getLogger(__name__)

MIN_SECRET_CHARS = 16


class Unauthenticated(DomainError):
    """No credential, or one that matches no runner."""


class NotThisRunner(DomainError):
    """A valid credential, but for another runner id."""


@dataclass(frozen=True)
class RunnerToken:
    name: str
    secret: str = ""

    def __repr__(self) -> str:  # never the secret, in a log or a traceback
        return f"RunnerToken({self.name!r})"


def parse_token(entry: str, where: str) -> RunnerToken:
    name, sep, secret = entry.strip().partition(":")
    name, secret = name.strip(), secret.strip()
    if not sep or not name or "/" in name:
        raise ValueError(f"{where}: a runner token is name:secret, with no '/' in the name")
    refuse_placeholder(f"{where}: the secret of runner token {name!r}", secret)
    if len(secret) < MIN_SECRET_CHARS:
        raise ValueError(f"{where}: runner token {name!r} needs {MIN_SECRET_CHARS}+ characters")
    return RunnerToken(name, secret)


def parse_tokens(text: str, where: str) -> list[RunnerToken]:
    """`name:secret,name:secret` (RUNNER_TOKENS)."""
    return [parse_token(entry, where) for entry in text.split(",") if entry.strip()]


def read_tokens_file(path: str) -> list[RunnerToken]:
    """One `name secret` or `name:secret` a line; `#` starts a comment."""
    tokens = []
    for number, line in enumerate(Path(path).read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if line:
            entry = ":".join(line.split(None, 1)) if ":" not in line else line
            tokens.append(parse_token(entry, f"{path}:{number}"))
    return tokens


class RunnerAuth:
    """Checks a runner's credential. The file is read again at every check (runners
    connect seldom), so that a token added or removed there counts at once: tokens
    rotate without a restart."""

    def __init__(self, tokens: Sequence[RunnerToken], tokens_file: str = ""):
        self.tokens = list(tokens)
        self.tokens_file = tokens_file
        if tokens_file:
            read_tokens_file(tokens_file)  # a broken file stops the start, not a runner

    def _all_tokens(self) -> list[RunnerToken]:
        if not self.tokens_file:
            return self.tokens
        try:
            return [*self.tokens, *read_tokens_file(self.tokens_file)]
        except (OSError, ValueError) as exc:
            log.error("Runner tokens file unusable, only RUNNER_TOKENS count: %s", exc)
            return self.tokens

    def identify(
        self,
        metadata: Iterable[tuple[str, str | bytes]],
        auth_context: Mapping[str, Iterable[bytes]],
    ) -> str:
        """The name the credential proves: a verified certificate's, else a token's."""
        cert_name = peer_common_name(auth_context)
        if cert_name:
            return cert_name
        secret = _bearer(metadata)
        if secret is None:
            raise Unauthenticated("a runner needs a client certificate or a runner token")
        token = find_token(self._all_tokens(), secret)
        if token is None:
            raise Unauthenticated("unknown runner token")
        return token.name


def permit(name: str, runner_id: str) -> None:
    """Refuses a runner id that is not the credential's name or `<name>/...`."""
    if not may_act_as(name, runner_id):
        raise NotThisRunner(f"credential {name!r} may not act as runner {runner_id!r}")


def may_act_as(name: str, runner_id: str) -> bool:
    return runner_id == name or runner_id.startswith(f"{name}/")


def find_token(tokens: Iterable[RunnerToken], secret: str) -> RunnerToken | None:
    """Compares with every token, in constant time each, so that the time taken tells
    nothing of which one (if any) nearly matched."""
    found = None
    given = secret.encode()
    for token in tokens:
        if hmac.compare_digest(token.secret.encode(), given):
            found = token
    return found


def _bearer(metadata: Iterable[tuple[str, str | bytes]]) -> str | None:
    for key, value in metadata:
        if key == "authorization":
            text = value.decode() if isinstance(value, bytes) else value
            scheme, _, secret = text.partition(" ")
            if scheme.lower() == "bearer" and secret.strip():
                return secret.strip()
    return None
