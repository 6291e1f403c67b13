"""The runner's settings, from the environment and `.env`."""

import os
import socket
from typing import Any, Literal

from jobsched_common.settings import LogFormat, LogLevel, refuse_placeholder
from jobsched_common.tls import TlsFiles
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .environment import parse_names, secret_names


def _default_id(data: dict[str, Any]) -> str:
    """`<RUNNER_NAME>/<hostname>`: replicas sharing one credential (compose --scale)
    each get an id the scheduler accepts for it; without a name, `<hostname>-<pid>`."""
    name = data.get("RUNNER_NAME") or ""
    return f"{name}/{socket.gethostname()}" if name else f"{socket.gethostname()}-{os.getpid()}"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    # host:port of the scheduler; several, comma-separated, are tried in turn.
    SCHEDULER_ADDR: str = "127.0.0.1:50051"
    # The name of this runner's credential (a runner token's name, or its client
    # certificate's common name): the scheduler accepts the id `<name>` or `<name>/...`.
    RUNNER_NAME: str = ""
    RUNNER_ID: str = Field(default_factory=_default_id, min_length=1, max_length=200)
    # Sent as `authorization: Bearer <token>`; one of the scheduler's RUNNER_TOKENS.
    RUNNER_TOKEN: str = Field(default="", repr=False)
    # TLS_CA_FILE: the CA the scheduler's certificate must be signed by (TLS on when
    # set); TLS_CERT_FILE/TLS_KEY_FILE: this runner's client certificate, for mTLS.
    TLS_CERT_FILE: str = ""
    TLS_KEY_FILE: str = ""
    TLS_CA_FILE: str = ""
    RUNNER_CAPACITY: int = Field(default=8, ge=1, le=10_000)
    # host:port of a gRPC health server for probes; empty for none.
    RUNNER_HEALTH_BIND: str = ""
    # How long a draining runner lets its jobs finish before it stops them.
    RUNNER_DRAIN_SECONDS: float = Field(default=30.0, ge=0)
    # SIGTERM to a job's process group, then SIGKILL after this many seconds.
    KILL_GRACE_SECONDS: float = Field(default=5.0, ge=0)
    # Address space each job process may use (MiB); 0 for no limit.
    JOB_MEMORY_LIMIT_MB: int = Field(default=4096, ge=0)
    # Processes one job may have at once before it is killed (stops fork bombs); 0: none.
    JOB_MAX_PROCESSES: int = Field(default=512, ge=0)
    # Names of the runner's environment that jobs also get, comma-separated (a job gets
    # only PATH, HOME, LANG, TZ and its own JOBSCHED_ names otherwise). Names of secrets
    # (DATABASE_URL, DB_*, PG*, *TOKEN*, *PASSWORD*, *SECRET*, TLS_*, *_KEY_FILE) are
    # refused at start.
    JOB_ENV_PASSTHROUGH: str = ""
    # Where the runner runs as root: the unprivileged user jobs run as. Empty: as the
    # runner's own user.
    JOB_USER: str = ""
    # What ends every process of a job with its attempt: a cgroup v2 per job, or the
    # runner as child subreaper; `auto` takes a cgroup where the runner can make one.
    JOB_CONTAINMENT: Literal["auto", "cgroup", "subreaper"] = "auto"
    # gRPC keepalive on the link: a ping this often, and a link whose ping goes
    # unanswered this long is dead (the runner reconnects, to another scheduler if any).
    KEEPALIVE_SECONDS: float = Field(default=2.0, gt=0)
    KEEPALIVE_TIMEOUT_SECONDS: float = Field(default=2.0, gt=0)
    # host:port for Prometheus /metrics; empty for none (several runners share a host).
    METRICS_BIND: str = ""
    LOG_LEVEL: LogLevel = "INFO"
    LOG_FORMAT: LogFormat = "text"

    @field_validator("RUNNER_TOKEN")
    @classmethod
    def _no_placeholder_token(cls, token: str) -> str:
        refuse_placeholder("RUNNER_TOKEN", token)
        return token

    @property
    def tls(self) -> TlsFiles:
        return TlsFiles(self.TLS_CERT_FILE, self.TLS_KEY_FILE, self.TLS_CA_FILE)

    @field_validator("JOB_ENV_PASSTHROUGH")
    @classmethod
    def _no_secrets_passed(cls, listed: str) -> str:
        refused = secret_names(parse_names(listed))
        if refused:
            names = ", ".join(refused)
            raise ValueError(f"names secrets a job must never see: {names}")
        return listed

    @property
    def job_env_passthrough(self) -> list[str]:
        return parse_names(self.JOB_ENV_PASSTHROUGH)

    @property
    def scheduler_addrs(self) -> list[str]:
        return [a.strip() for a in self.SCHEDULER_ADDR.split(",") if a.strip()]
