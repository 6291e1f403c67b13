"""Shared fixtures: a real PostgreSQL with a migrated template database, a fresh
database per test, and the whole system started as real processes."""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from jobsched_launcher import LocalSystem, clean_env, free_port, wait_for
from jobsched_scheduler.migrations import migrate

from tests.postgres import admin, postgres_server, with_database


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """`make test` runs two workers (pytest-xdist, `--dist loadgroup`): most tests wait on
    processes, not the CPU. A module's tests stay on one worker, so that its module-scoped
    system starts once; the multi-host bed (tests/hosts) is one group, one bed at a time."""
    for item in items:
        module = item.nodeid.split("::")[0]
        group = "hosts" if module.startswith("tests/hosts/") else module
        item.add_marker(pytest.mark.xdist_group(group))


TEMPLATE = "jobsched_template"
_counter = itertools.count()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    with postgres_server() as url:
        with admin(url) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {TEMPLATE} WITH (FORCE)")
            conn.execute(f"CREATE DATABASE {TEMPLATE}")
        asyncio.run(_migrate(with_database(url, TEMPLATE)))
        yield url


async def _migrate(url: str) -> None:
    async with await psycopg.AsyncConnection.connect(url) as conn:
        await migrate(conn)


@pytest.fixture
def database_url(pg_server: str) -> Iterator[str]:
    """A fresh, migrated database for one test, dropped afterwards."""
    name = f"jobsched_test_{os.getpid()}_{next(_counter)}"
    with admin(pg_server) as conn:
        conn.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
    try:
        yield with_database(pg_server, name)
    finally:
        with admin(pg_server) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


class LiveSystem(LocalSystem):
    """A LocalSystem with helpers for tests."""

    token: str = ""

    def api(self, method: str, path: str, json: Any = None, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        with httpx.Client(base_url=self.gateway_url, timeout=10, headers=headers) as client:
            return client.request(method, path, json=json, **kwargs)

    def sql(self, query: str, params: Any = None) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.env["DATABASE_URL"], autocommit=True) as conn:
            cur = conn.execute(query.encode(), params)
            return cur.fetchall() if cur.description else []

    def wait_for_job(self, job_id: int, statuses: set[str], timeout: float = 20) -> dict[str, Any]:
        seen: dict[str, Any] = {}

        def reached() -> bool:
            seen.update(self.api("GET", f"/api/jobs/{job_id}").json())
            return seen.get("status") in statuses

        wait_for(reached, timeout, f"job {job_id} in {statuses} (last seen {seen})")
        return seen

    def wait_for_job_sql(self, job_id: int, timeout: float = 20) -> str:
        """Waits for a terminal status, reading the table (the gateway may be away)."""
        seen = [""]

        def finished() -> bool:
            rows = self.sql("SELECT status FROM jobs WHERE id = %s", (job_id,))
            seen[0] = rows[0][0] if rows else ""
            return seen[0] in {"completed", "failed", "cancelled"}

        wait_for(finished, timeout, f"job {job_id} to finish (last seen {seen[0]!r})")
        return seen[0]


def start_live_system(
    database_url: str, tmp_path: Path, runners: int = 2, **env: str
) -> LiveSystem:
    system = LiveSystem(
        env=clean_env(
            **{
                "DATABASE_URL": database_url,
                "CHECK_INTERVAL": "10",
                "RUNNER_DRAIN_SECONDS": "5",
                **env,
            }
        ),
        runners=runners,
        gateway_port=free_port(),
        scheduler_port=free_port(),
        metrics_port=free_port(),
        log_dir=tmp_path / "logs",
    )
    system.token = env.get("API_TOKEN", "")
    system.start()
    return system


@pytest.fixture
def live_system(database_url: str, tmp_path: Path) -> Iterator[LiveSystem]:
    system = start_live_system(database_url, tmp_path)
    try:
        yield system
    finally:
        system.stop_all()
        _print_logs(tmp_path / "logs")


def _print_logs(log_dir: Path) -> None:
    """Shown by pytest only when the test failed."""
    for log in sorted(log_dir.glob("*.log")):
        print(f"----- {log.name} -----\n{log.read_text(errors='replace')[-4000:]}")
