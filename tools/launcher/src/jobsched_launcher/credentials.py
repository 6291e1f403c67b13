"""The credentials a local system makes for itself: a token for each runner, listed in a
file that the scheduler reads at every connect, and with JOBSCHED_TLS a CA and the
certificates of the scheduler and its clients."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import weakref
from collections.abc import Mapping
from pathlib import Path

BIN = Path(sys.executable).parent
TLS_MODES = ("", "tls", "mtls")


class Credentials:
    def __init__(self, env: Mapping[str, str]):
        # The system's own environment, read when asked: JOBSCHED_TLS may change between
        # two starts.
        self.env = env
        self.runner_tokens: dict[str, str] = {}
        self._dir: Path | None = None

    @property
    def dir(self) -> Path:
        """Readable by this user alone; removed when the system object goes."""
        if self._dir is None:
            self._dir = Path(tempfile.mkdtemp(prefix="jobsched-secrets-"))
            weakref.finalize(self, shutil.rmtree, self._dir, True)
        return self._dir

    @property
    def tokens_file(self) -> Path:
        """This run's runner tokens, after those of a RUNNER_TOKENS_FILE configured for
        runners elsewhere; written again whenever a runner gets one."""
        path = self.dir / "runner-tokens"
        if not path.exists():
            self._write_tokens(path)
        return path

    def _write_tokens(self, path: Path) -> None:
        configured = self.env.get("RUNNER_TOKENS_FILE")
        lines = [Path(configured).read_text()] if configured else []
        lines += [f"{name} {token}\n" for name, token in self.runner_tokens.items()]
        part = path.with_suffix(".new")
        fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write("".join(lines))
        part.replace(path)  # a reader sees the old file or the new one

    def runner_token(self, runner_id: str) -> str:
        """The token a runner registering as `runner_id` authenticates with."""
        token = self.runner_tokens.get(runner_id)
        if token is None:
            token = self.runner_tokens[runner_id] = secrets.token_urlsafe(24)
            self._write_tokens(self.tokens_file)
        return token

    @property
    def tls_mode(self) -> str:
        """JOBSCHED_TLS: "" (plaintext, loopback), "tls" or "mtls"."""
        mode = self.env.get("JOBSCHED_TLS", "").lower()
        if mode not in TLS_MODES:
            raise SystemExit(f"JOBSCHED_TLS={mode!r}: say tls, mtls, or nothing")
        return mode

    def tls_env(self, scheduler: bool, client: str) -> dict[str, str]:
        """The TLS files of one service: the scheduler's certificate (and the CA it
        checks clients against, under mTLS); for a client, the CA it checks the
        scheduler against (and its own certificate, named `client`, under mTLS)."""
        mode = self.tls_mode
        if not mode:
            return {}
        certs = self._certs(client)
        ca = {"TLS_CA_FILE": str(certs / "ca.pem")}
        if scheduler:
            server = {
                "TLS_CERT_FILE": str(certs / "scheduler.pem"),
                "TLS_KEY_FILE": str(certs / "scheduler-key.pem"),
            }
            return {**server, **(ca if mode == "mtls" else {})}
        if mode == "tls":
            return ca
        return {
            **ca,
            "TLS_CERT_FILE": str(certs / f"{client}.pem"),
            "TLS_KEY_FILE": str(certs / f"{client}-key.pem"),
        }

    def _certs(self, client: str) -> Path:
        """This run's CA and certificates, with a client certificate named `client`."""
        certs = self.dir / "tls"
        if not (certs / f"{client}.pem").exists():
            subprocess.run(
                [str(BIN / "jobsched-scheduler"), "certs", str(certs), "--client", client],
                check=True,
                stdout=subprocess.DEVNULL,
            )
        return certs
