"""Fixtures of the multi-host bed: the network and PostgreSQL once per session, a fresh
database and a fresh system per test, every cut healed and every host removed after."""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import TEMPLATE, _migrate, _print_logs

from .bed import HOSTS, HostSystem, host_system, make_certs
from .database import HostedPostgres, hosted_postgres
from .network import Network, network

_counter = itertools.count()


@pytest.fixture(scope="session")
def hosts_net() -> Iterator[Network]:
    if os.geteuid() != 0:
        pytest.fail("tests/hosts need root (network namespaces), as CI runs them")
    with network(*HOSTS) as net:
        yield net


@pytest.fixture(scope="session")
def hosts_postgres(hosts_net: Network) -> Iterator[HostedPostgres]:
    with hosts_net.temporary_directory("pglog") as logs:
        log = Path(logs) / "postgres.log"
        try:
            with hosted_postgres(hosts_net, "postgres", log) as postgres:
                with postgres.admin() as conn:
                    conn.execute(f"CREATE DATABASE {TEMPLATE}")
                asyncio.run(_migrate(postgres.admin_url(TEMPLATE)))
                yield postgres
        finally:
            print(f"----- postgres.log -----\n{log.read_text(errors='replace')[-4000:]}")


@pytest.fixture(scope="session")
def hosts_certs(hosts_net: Network) -> Iterator[Path]:
    with hosts_net.temporary_directory("certs") as directory:
        yield make_certs(hosts_net, Path(directory))


@pytest.fixture
def hosts_db(hosts_postgres: HostedPostgres) -> Iterator[str]:
    name = f"jobsched_hosts_{next(_counter)}"
    with hosts_postgres.admin() as conn:
        conn.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
    try:
        yield name
    finally:
        with hosts_postgres.admin() as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def hosts(
    hosts_net: Network,
    hosts_postgres: HostedPostgres,
    hosts_certs: Path,
    hosts_db: str,
    tmp_path: Path,
) -> Iterator[HostSystem]:
    """The system on its hosts; whatever a test cut is healed before it stops."""
    system = host_system(hosts_net, hosts_postgres, hosts_certs, hosts_db, tmp_path / "logs")
    try:
        system.start()
        yield system
    finally:
        hosts_net.heal_all()
        system.stop_all()
        _print_logs(tmp_path / "logs")
