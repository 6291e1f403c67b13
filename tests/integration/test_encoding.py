"""The scheduler's connections speak UTF8 and run without JIT, whatever the database:
a SQL_ASCII database (initdb without a locale) once made psycopg return text as bytes."""

import asyncio
from collections.abc import Iterator

import psycopg
import pytest
from jobsched_scheduler.errors import InvalidValue
from jobsched_scheduler.main import warn_unless_utf8
from jobsched_scheduler.migrations import migrate
from jobsched_scheduler.model import NewJob
from jobsched_scheduler.store import PgStore, new_pool, server_encoding

from tests.postgres import admin, with_database

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def sql_ascii_url(pg_server: str) -> Iterator[str]:
    name = "jobsched_test_sql_ascii"
    with admin(pg_server) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(
            f"CREATE DATABASE {name} ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C' "
            "TEMPLATE template0"
        )
    try:
        yield with_database(pg_server, name)
    finally:
        with admin(pg_server) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def test_a_sql_ascii_database_gives_text_back_as_text(
    sql_ascii_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> None:
        pool = new_pool(sql_ascii_url, max_size=2)
        await pool.open(wait=True)
        try:
            async with pool.connection() as conn:
                await migrate(conn)
                assert await server_encoding(conn) == "SQL_ASCII"
                cursor = await conn.execute("SHOW client_encoding")
                assert await cursor.fetchone() == ("UTF8",)
                cursor = await conn.execute("SHOW jit")
                assert await cursor.fetchone() == ("off",)
                await warn_unless_utf8(conn)
            assert "encoding is SQL_ASCII, not UTF8" in caplog.text
            store = PgStore(pool, lease_seconds=10, output_limit=1000)
            created = await store.create_job(NewJob("plain", "echo hi", 1, None))
            job = await store.get_job(created.id)
            assert job is not None
            assert (job.name, job.command, job.status) == ("plain", "echo hi", "queued")
            assert (await store.count_by_status())["queued"] == 1
            # What SQL_ASCII cannot hold is refused as a bad value, not stored as bytes.
            with pytest.raises(InvalidValue, match="server's encoding SQL_ASCII"):
                await store.create_job(NewJob("café", "echo é", 1, None))
        finally:
            await pool.close()

    asyncio.run(scenario())


def test_without_the_setting_psycopg_returns_bytes(sql_ascii_url: str) -> None:
    """What the setting guards against: the same query on a plain connection."""
    with psycopg.connect(sql_ascii_url) as conn:
        assert conn.execute("SELECT 'x'::text").fetchone() == (b"x",)
