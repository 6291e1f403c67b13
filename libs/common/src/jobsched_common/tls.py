"""TLS for the gRPC links, one way for every service: the scheduler's server credentials
and every client's channel, from the PEM files named by TLS_CERT_FILE, TLS_KEY_FILE and
TLS_CA_FILE."""

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

ChannelOptions = Sequence[tuple[str, Any]]


@dataclass(frozen=True)
class TlsFiles:
    """A service's certificate and key (both or neither), and the CA it trusts: a
    client verifies the scheduler with it, the scheduler verifies client certificates."""

    cert_file: str = ""
    key_file: str = ""
    ca_file: str = ""

    def __post_init__(self) -> None:
        if bool(self.cert_file) != bool(self.key_file):
            raise ValueError("TLS_CERT_FILE and TLS_KEY_FILE go together: set both or neither")

    @property
    def has_identity(self) -> bool:
        return bool(self.cert_file)


def _read(path: str) -> bytes:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror}") from exc
    if b"-----BEGIN " not in data:  # e.g. a placeholder left in a Secret
        raise ValueError(f"{path} holds no PEM certificate or key")
    return data


def server_credentials(files: TlsFiles) -> grpc.ServerCredentials | None:
    """None without a certificate (the listener is plaintext). With a CA, every client
    must show a certificate it signed (mutual TLS): grpcio offers no way to ask for a
    client certificate and verify it only when one is shown, so a CA on the server
    means mTLS for all, and runner tokens serve deployments without a CA."""
    if not files.has_identity:
        return None
    pair = (_read(files.key_file), _read(files.cert_file))
    root = _read(files.ca_file) if files.ca_file else None
    return grpc.ssl_server_credentials(
        [pair], root_certificates=root, require_client_auth=root is not None
    )


def channel_credentials(files: TlsFiles) -> grpc.ChannelCredentials | None:
    """None without a CA: the channel is plaintext (loopback). With one, the server must
    show a certificate signed by it, and ours (when we have one) is offered for mTLS."""
    if not files.ca_file:
        return None
    return grpc.ssl_channel_credentials(
        root_certificates=_read(files.ca_file),
        private_key=_read(files.key_file) if files.has_identity else None,
        certificate_chain=_read(files.cert_file) if files.has_identity else None,
    )


def aio_channel(addr: str, files: TlsFiles, options: ChannelOptions = ()) -> grpc.aio.Channel:
    """A channel to `addr`: over TLS when a CA is configured, else plaintext."""
    credentials = channel_credentials(files)
    if credentials is None:
        return grpc.aio.insecure_channel(addr, options=options)
    return grpc.aio.secure_channel(addr, credentials, options=options)


def sync_channel(addr: str, files: TlsFiles, options: ChannelOptions = ()) -> grpc.Channel:
    """`aio_channel` for blocking callers (the health probe)."""
    credentials = channel_credentials(files)
    if credentials is None:
        return grpc.insecure_channel(addr, options=options)
    return grpc.secure_channel(addr, credentials, options=options)


def add_port(server: grpc.aio.Server, bind: str, files: TlsFiles) -> int:
    """Listens on `bind`, over TLS when a certificate is configured. Refuses to listen
    in plaintext anywhere but loopback: whoever reaches the port could read the
    commands, the output and the credentials that pass over it."""
    credentials = server_credentials(files)
    if credentials is not None:
        return server.add_secure_port(bind, credentials)
    if not is_loopback_bind(bind):
        raise SystemExit(
            f"refusing to listen on {bind} without TLS; set TLS_CERT_FILE and TLS_KEY_FILE "
            "(`jobsched-scheduler certs DIR` makes them) or bind 127.0.0.1"
        )
    return server.add_insecure_port(bind)


def is_loopback_bind(bind: str) -> bool:
    """Whether a `host:port` (or `[v6]:port`) listens on loopback only; `0.0.0.0`,
    `[::]` and a bare port listen everywhere."""
    if bind.startswith("unix:"):
        return True
    host = bind.rsplit(":", 1)[0] if ":" in bind else ""
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def peer_common_name(auth_context: Mapping[str, Iterable[bytes]]) -> str | None:
    """The common name of the client certificate the handshake verified, if any (the
    server asks for one only with a CA, and refuses one that the CA did not sign)."""
    name = next(iter(auth_context.get("x509_common_name") or ()), None)
    return name.decode("utf-8", "replace") if name else None
