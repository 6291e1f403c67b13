"""A job's environment: a few harmless names from the runner's own, the attempt it runs,
and what the operator passes through; never a secret of the system."""

import fnmatch
import os
from collections.abc import Iterable, Mapping

# What every command expects to find; the rest of the runner's environment stays out.
BASE_NAMES = ("PATH", "HOME", "LANG", "TZ")
DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"
# Names that hold, or point at, the system's secrets: refused even when passed through.
SECRET_PATTERNS = (
    "DATABASE_URL",
    "*_DATABASE_URL",
    "DB_*",
    "PG*",
    "*TOKEN*",
    "*PASSWORD*",
    "*SECRET*",
    "TLS_*",
    "*_KEY_FILE",
)


def parse_names(listed: str) -> list[str]:
    return [name.strip() for name in listed.split(",") if name.strip()]


def secret_names(names: Iterable[str]) -> list[str]:
    """Those of `names` a job must never see."""
    return [
        name
        for name in names
        if any(fnmatch.fnmatchcase(name.upper(), pattern) for pattern in SECRET_PATTERNS)
    ]


def job_environment(
    passthrough: Iterable[str],
    source: Mapping[str, str] = os.environ,
    home: str | None = None,
) -> dict[bytes, bytes]:
    """The environment every job starts from (the attempt's own names come on top).
    `home` overrides HOME: a job run as another user gets that user's."""
    names = [*BASE_NAMES, *(n for n in passthrough if n not in BASE_NAMES)]
    refused = secret_names(names)
    if refused:
        raise ValueError(f"JOB_ENV_PASSTHROUGH names secrets: {', '.join(refused)}")
    env = {name: source[name] for name in names if name in source}
    env.setdefault("PATH", DEFAULT_PATH)
    if home is not None:
        env["HOME"] = home
    return {os.fsencode(k): os.fsencode(v) for k, v in env.items()}
