"""Applies the numbered migrations once each, safely from several processes at once."""

import logging

import psycopg

from .queries import migrations

log = logging.getLogger(__name__)

_CREATE_LEDGER = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
)"""


async def migrate(conn: psycopg.AsyncConnection[object]) -> list[str]:
    """Returns the names of the migrations it applied."""
    applied: list[str] = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('jobsched.migrate'))")
        await conn.execute(_CREATE_LEDGER)
        cur = await conn.execute("SELECT version FROM schema_migrations")
        done = {row[0] for row in await cur.fetchall()}  # type: ignore[index]
        for version, name, sql in migrations():
            if version in done:
                continue
            await conn.execute(sql.encode())  # several statements: no parameters
            await conn.execute(
                "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)", (version, name)
            )
            log.info("Applied migration %s", name)
            applied.append(name)
    return applied
