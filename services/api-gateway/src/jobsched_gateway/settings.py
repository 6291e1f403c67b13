"""The gateway's settings, from the environment and `.env`."""

import ipaddress

from jobsched_common.settings import LogFormat, LogLevel, refuse_placeholder
from jobsched_common.tls import TlsFiles
from jobsched_common.tokens import ApiTokenSettings, weak_tokens
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


class Settings(BaseSettings, ApiTokenSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    SCHEDULER_ADDR: str = "127.0.0.1:50051"
    # TLS_CA_FILE: the CA the scheduler's certificate must be signed by (TLS on when
    # set); TLS_CERT_FILE/TLS_KEY_FILE: the gateway's own, where the scheduler asks for
    # client certificates (mTLS).
    TLS_CERT_FILE: str = ""
    TLS_KEY_FILE: str = ""
    TLS_CA_FILE: str = ""
    GATEWAY_HOST: str = "127.0.0.1"
    GATEWAY_PORT: int = Field(default=8080, ge=0, le=65535)
    # API_TOKEN, API_TOKENS, API_TOKENS_FILE (ApiTokenSettings): bearer tokens with
    # roles for every /api call; required when listening beyond loopback.

    # Comma-separated origins allowed to call the API from a browser.
    CORS_ORIGINS: str = ""
    # Comma-separated host names (any port) the gateway answers to, besides the loopback
    # names and GATEWAY_HOST; `*` answers to any. Another Host header is a 400.
    ALLOWED_HOSTS: str = ""
    # Event streams open at once; one more is a 503.
    MAX_EVENT_STREAMS: int = Field(default=100, ge=1)
    # An idle connection, or one that has not sent its whole request, closes after this.
    CLIENT_TIMEOUT_SECONDS: int = Field(default=10, ge=1)
    WEB_DIR: str = "web"
    REQUEST_TIMEOUT_SECONDS: float = Field(default=5.0, gt=0)
    MAX_BODY_BYTES: int = Field(default=256 * 1024, ge=1024)
    LOG_LEVEL: LogLevel = "INFO"
    LOG_FORMAT: LogFormat = "text"

    @field_validator("API_TOKEN")
    @classmethod
    def _no_placeholder_token(cls, token: str) -> str:
        refuse_placeholder("API_TOKEN", token)
        return token

    @property
    def tls(self) -> TlsFiles:
        return TlsFiles(self.TLS_CERT_FILE, self.TLS_KEY_FILE, self.TLS_CA_FILE)

    @property
    def cors_origins(self) -> list[str]:
        return [o.strip() for o in self.CORS_ORIGINS.split(",") if o.strip()]

    @property
    def allowed_hosts(self) -> list[str]:
        """The loopback names and the bind address always: no page can make a browser
        send one of them in a Host header without the browser talking to this host."""
        given = [h.strip() for h in self.ALLOWED_HOSTS.split(",") if h.strip()]
        return [*LOOPBACK_NAMES, self.GATEWAY_HOST, *given]

    @property
    def listens_on_loopback(self) -> bool:
        if self.GATEWAY_HOST == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.GATEWAY_HOST).is_loopback
        except ValueError:
            return False

    def check_safe(self) -> None:
        """Refuses to serve shell execution to a network without a token."""
        if self.listens_on_loopback:
            return
        if not self.api_tokens or weak_tokens(self.api_tokens):
            raise SystemExit(
                f"refusing to listen on {self.GATEWAY_HOST} without API_TOKEN "
                "(at least 16 characters); set API_TOKEN or GATEWAY_HOST=127.0.0.1"
                + _weak(weak_tokens(self.api_tokens))
            )


def _weak(names: list[str]) -> str:
    return f" (too short: {', '.join(names)})" if names else ""
