"""What the services' settings share: the log options and the refusal of placeholder
secrets."""

import re
from typing import Annotated, Literal

from pydantic import BeforeValidator


def _upper(value: object) -> object:
    return value.upper() if isinstance(value, str) else value


LogLevel = Annotated[
    Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], BeforeValidator(_upper)
]
LogFormat = Literal["text", "json"]

# Values that sample files and manifests ship, compared without case or punctuation:
# `CHANGE-ME`, `change_me` and `changeme` are one. A deployment that keeps one is
# refused at start rather than run with a secret that anyone can read.
PLACEHOLDERS = frozenset({"changeme", "changethis", "password", "secret"})


def is_placeholder(value: str) -> bool:
    return re.sub(r"[^a-z0-9]", "", value.lower()) in PLACEHOLDERS


def refuse_placeholder(name: str, value: str | None) -> None:
    if value and is_placeholder(value):
        raise ValueError(
            f"{name} is the placeholder {value!r}: set a secret of your own, "
            "e.g. $(openssl rand -hex 32)"
        )
