"""`jobsched-scheduler certs DIR`: a development CA, the scheduler's server certificate
and runners' client certificates, for compose, Kubernetes and the tests. A production
deployment should use its own CA; these files are what TLS_CERT_FILE, TLS_KEY_FILE and
TLS_CA_FILE point at."""

import argparse
import datetime
import ipaddress
import os
from collections.abc import Iterable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALID_DAYS = 365
CA_NAME = "jobsched development CA"
SERVER_NAME = "scheduler"
ALWAYS_HOSTS = ("localhost", "127.0.0.1")

Key = ec.EllipticCurvePrivateKey


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _builder(subject: str, issuer: x509.Name, key: Key) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
    )


def make_ca() -> tuple[Key, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        _builder(CA_NAME, _name(CA_NAME), key)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _san(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def make_leaf(
    ca_key: Key, ca: x509.Certificate, name: str, hosts: Iterable[str] = (), server: bool = False
) -> tuple[Key, x509.Certificate]:
    """A certificate signed by the CA: a server's (its hosts as SANs) or a client's,
    whose common name is the name it authenticates as."""
    key = ec.generate_private_key(ec.SECP256R1())
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (
        _builder(name, ca.subject, key)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    )
    sans = [_san(h) for h in dict.fromkeys(hosts)]
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return key, builder.sign(ca_key, hashes.SHA256())


def _write(path: Path, data: bytes, private: bool = False) -> None:
    """Readers (a service starting meanwhile) see the old file or the new one, never
    half of one; a key is readable by its owner alone from the start."""
    part = path.with_name(f".{path.name}.part")
    fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    part.replace(path)


def _save(directory: Path, stem: str, key: Key, cert: x509.Certificate) -> None:
    _write(directory / f"{stem}.pem", cert.public_bytes(serialization.Encoding.PEM))
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    _write(directory / f"{stem}-key.pem", pem, private=True)


def _load_ca(directory: Path) -> tuple[Key, x509.Certificate] | None:
    """The CA already in `directory`, so that more client certificates can be made
    later, signed by the CA the scheduler already trusts."""
    cert_path, key_path = directory / "ca.pem", directory / "ca-key.pem"
    if not (cert_path.exists() and key_path.exists()):
        return None
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise SystemExit(f"{key_path}: not a key this command made")
    return key, x509.load_pem_x509_certificate(cert_path.read_bytes())


def write_certs(directory: Path, hosts: Iterable[str] = (), clients: Iterable[str] = ()) -> None:
    """Writes ca.pem/ca-key.pem (kept when present), scheduler.pem/scheduler-key.pem
    and <client>.pem/<client>-key.pem for each client name."""
    directory.mkdir(parents=True, exist_ok=True)
    loaded = _load_ca(directory)
    ca_key, ca = loaded or make_ca()
    if loaded is None:
        _save(directory, "ca", ca_key, ca)
    server_hosts = [*hosts, *ALWAYS_HOSTS]
    _save(directory, SERVER_NAME, *make_leaf(ca_key, ca, SERVER_NAME, server_hosts, server=True))
    for client in clients:
        _save(directory, _file_stem(client), *make_leaf(ca_key, ca, client))


def _file_stem(client: str) -> str:
    if not client or "/" in client or client.startswith(".") or client in {"ca", SERVER_NAME}:
        raise SystemExit(f"{client!r} cannot name a client certificate file")
    return client


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(
        prog="jobsched-scheduler certs",
        description="Make a development CA and certificates for the scheduler and runners.",
    )
    parser.add_argument("dir", type=Path, help="where to write the PEM files")
    parser.add_argument(
        "--hosts",
        default="",
        help="comma-separated names and addresses the scheduler is reached at "
        "(localhost and 127.0.0.1 are always included)",
    )
    parser.add_argument(
        "--public",
        type=Path,
        metavar="DIR",
        help="also copy the CA's certificate (not its key) to DIR, for the clients",
    )
    parser.add_argument(
        "--client",
        action="append",
        default=[],
        metavar="NAME",
        help="make a client certificate whose common name is NAME (a runner's name); "
        "may be repeated",
    )
    args = parser.parse_args(argv)
    hosts = [h.strip() for h in args.hosts.split(",") if h.strip()]
    write_certs(args.dir, hosts, args.client)
    if args.public is not None:
        args.public.mkdir(parents=True, exist_ok=True)
        _write(args.public / "ca.pem", (args.dir / "ca.pem").read_bytes())
    made = ", ".join(["ca", SERVER_NAME, *args.client])
    print(f"Wrote the certificates of {made} to {args.dir}")
