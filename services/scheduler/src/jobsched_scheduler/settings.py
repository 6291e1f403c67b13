"""The scheduler's settings, from the environment and `.env`."""

from urllib.parse import quote

from jobsched_common.limits import MAX_OUTPUT_BYTES
from jobsched_common.settings import LogFormat, LogLevel, refuse_placeholder
from jobsched_common.tls import TlsFiles
from jobsched_common.tokens import ApiTokenSettings
from psycopg import ProgrammingError
from psycopg.conninfo import conninfo_to_dict
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .retention import AUDIT
from .runner_auth import RunnerToken, parse_tokens


class Settings(BaseSettings, ApiTokenSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    DATABASE_URL: str | None = None
    DB_HOST: str = "localhost"
    DB_PORT: int = 5432
    DB_NAME: str = "jobscheduler"
    DB_USER: str = "postgres"
    DB_PASSWORD: str = ""

    SCHEDULER_BIND: str = "127.0.0.1:50051"
    # host:port of a plaintext server of the health service alone, for probes that
    # cannot speak TLS; empty for none.
    SCHEDULER_HEALTH_BIND: str = ""
    # The listener's certificate and key (PEM); required to bind beyond loopback. With
    # TLS_CA_FILE, clients may authenticate with a certificate it signed (runners: mTLS).
    TLS_CERT_FILE: str = ""
    TLS_KEY_FILE: str = ""
    TLS_CA_FILE: str = ""
    # Who may connect as a runner: `name:secret,...`, and/or a file of `name secret`
    # lines, read again at every runner connect (so tokens rotate without a restart).
    RUNNER_TOKENS: str = Field(default="", repr=False)
    RUNNER_TOKENS_FILE: str = ""
    # API_TOKEN, API_TOKENS, API_TOKENS_FILE (ApiTokenSettings): the API tokens with
    # roles the public services take; without any, they answer loopback callers only.
    # Seconds between safety-net dispatch cycles; events trigger dispatch at once.
    CHECK_INTERVAL: float = Field(default=10.0, gt=0)
    LEASE_TTL_SECONDS: float = Field(default=10.0, gt=0)
    # gRPC keepalive: every client connection is pinged this often, and one whose ping
    # goes unanswered this long is closed (a runner cut off or frozen is let go).
    KEEPALIVE_SECONDS: float = Field(default=2.0, gt=0)
    KEEPALIVE_TIMEOUT_SECONDS: float = Field(default=2.0, gt=0)
    # An assignment its runner has not acknowledged after this many seconds ends as
    # "not acknowledged" and is retried by the normal rule.
    ASSIGN_ACK_TIMEOUT: float = Field(default=5.0, gt=0)
    OUTPUT_LIMIT_BYTES: int = Field(default=1024 * 1024, ge=1024, le=MAX_OUTPUT_BYTES)
    # Applied to jobs created without timeout_seconds; 0 means no timeout.
    DEFAULT_TIMEOUT_SECONDS: int = Field(default=0, ge=0)
    DB_POOL_SIZE: int = Field(default=10, ge=2)
    # host:port for Prometheus /metrics; empty for none.
    METRICS_BIND: str = "127.0.0.1:9464"
    # Days a finished job is kept, by its status; unset: kept for good.
    RETENTION_COMPLETED_DAYS: float | None = Field(default=None, gt=0)
    RETENTION_FAILED_DAYS: float | None = Field(default=None, gt=0)
    RETENTION_CANCELLED_DAYS: float | None = Field(default=None, gt=0)
    # Days an entry of the audit log is kept; unset: kept for good.
    RETENTION_AUDIT_DAYS: float | None = Field(default=None, gt=0)
    # Seconds between runs of the retention sweep (it also runs at start).
    RETENTION_INTERVAL_SECONDS: float = Field(default=600.0, gt=0)
    LOG_LEVEL: LogLevel = "INFO"
    LOG_FORMAT: LogFormat = "text"

    @field_validator("DB_PASSWORD")
    @classmethod
    def _no_placeholder_password(cls, password: str) -> str:
        refuse_placeholder("DB_PASSWORD", password)
        return password

    @field_validator("RUNNER_TOKENS")
    @classmethod
    def _valid_runner_tokens(cls, tokens: str) -> str:
        parse_tokens(tokens, "RUNNER_TOKENS")
        return tokens

    @property
    def runner_tokens(self) -> list[RunnerToken]:
        return parse_tokens(self.RUNNER_TOKENS, "RUNNER_TOKENS")

    @property
    def tls(self) -> TlsFiles:
        return TlsFiles(self.TLS_CERT_FILE, self.TLS_KEY_FILE, self.TLS_CA_FILE)

    @field_validator("DATABASE_URL")
    @classmethod
    def _no_placeholder_in_url(cls, url: str | None) -> str | None:
        try:
            password = conninfo_to_dict(url or "").get("password")
        except ProgrammingError:
            return url  # not ours to judge: connecting will say what is wrong with it
        refuse_placeholder("the password in DATABASE_URL", str(password or ""))
        return url

    @property
    def database_url(self) -> str:
        if self.DATABASE_URL:
            return self.DATABASE_URL
        user = quote(self.DB_USER, safe="")
        password = quote(self.DB_PASSWORD, safe="")
        auth = f"{user}:{password}" if password else user
        return f"postgresql://{auth}@{self.DB_HOST}:{self.DB_PORT}/{self.DB_NAME}"

    @property
    def retention_days(self) -> dict[str, float]:
        """Days kept by status (and of the audit log, as `audit`), of those not kept
        for good."""
        days = {
            "completed": self.RETENTION_COMPLETED_DAYS,
            "failed": self.RETENTION_FAILED_DAYS,
            "cancelled": self.RETENTION_CANCELLED_DAYS,
            AUDIT: self.RETENTION_AUDIT_DAYS,
        }
        return {status: value for status, value in days.items() if value is not None}

    @property
    def heartbeat_interval(self) -> float:
        """Runners renew leases three times per TTL, so one lost heartbeat is harmless."""
        return self.LEASE_TTL_SECONDS / 3

    @property
    def silence_limit(self) -> float:
        """A runner unheard for two heartbeats (one lost is harmless) gets no new work."""
        return 2 * self.heartbeat_interval

    @property
    def sweep_interval(self) -> float:
        """A lost runner's jobs are freed within TTL + sweep interval."""
        return min(self.LEASE_TTL_SECONDS / 2, self.CHECK_INTERVAL)
