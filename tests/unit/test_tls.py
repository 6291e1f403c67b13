"""The TLS helpers: which binds are loopback, what `jobsched-scheduler certs` writes, and
the refusal to listen in plaintext beyond loopback."""

import ipaddress
import re
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID
from jobsched_common.tls import TlsFiles, channel_credentials, is_loopback_bind, server_credentials
from jobsched_runner.main import check_safe as check_runner
from jobsched_runner.settings import Settings as RunnerSettings
from jobsched_scheduler.certs import main as certs_main
from jobsched_scheduler.main import check_safe
from jobsched_scheduler.settings import Settings


@pytest.mark.parametrize(
    ("bind", "loopback"),
    [
        ("127.0.0.1:50051", True),
        ("127.0.0.2:1", True),
        ("localhost:50051", True),
        ("[::1]:50051", True),
        ("unix:/run/jobsched.sock", True),
        ("0.0.0.0:50051", False),
        ("[::]:50051", False),
        ("10.0.0.5:50051", False),
        ("scheduler:50051", False),
        (":50051", False),
    ],
)
def test_loopback_binds(bind: str, loopback: bool) -> None:
    assert is_loopback_bind(bind) is loopback


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _common_name(cert: x509.Certificate) -> str:
    return str(cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)


def test_certs_makes_a_ca_a_server_and_clients_and_keeps_the_ca(tmp_path: Path) -> None:
    certs_main([str(tmp_path), "--hosts", "scheduler,10.1.2.3", "--client", "runner-a"])
    ca = _cert(tmp_path / "ca.pem")
    server = _cert(tmp_path / "scheduler.pem")
    sans = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(sans.get_values_for_type(x509.DNSName)) == {"scheduler", "localhost"}
    assert set(sans.get_values_for_type(x509.IPAddress)) == {
        ipaddress.ip_address("10.1.2.3"),
        ipaddress.ip_address("127.0.0.1"),
    }
    assert _common_name(_cert(tmp_path / "runner-a.pem")) == "runner-a"
    for key in ("ca-key.pem", "scheduler-key.pem", "runner-a-key.pem"):
        assert stat.S_IMODE((tmp_path / key).stat().st_mode) == 0o600
    # More clients later: signed by the CA the scheduler already trusts.
    certs_main([str(tmp_path), "--client", "runner-b"])
    assert _cert(tmp_path / "ca.pem") == ca
    assert _cert(tmp_path / "runner-b.pem").issuer == ca.subject
    files = TlsFiles(
        str(tmp_path / "runner-b.pem"), str(tmp_path / "runner-b-key.pem"), str(tmp_path / "ca.pem")
    )
    assert channel_credentials(files) is not None
    assert server_credentials(files) is not None
    assert channel_credentials(TlsFiles()) is None and server_credentials(TlsFiles()) is None


def test_a_certificate_without_its_key_is_refused() -> None:
    with pytest.raises(ValueError, match="set both or neither"):
        TlsFiles(cert_file="server.pem")


def test_the_scheduler_refuses_plaintext_or_unreadable_tls_beyond_loopback(
    tmp_path: Path,
) -> None:
    with pytest.raises(
        SystemExit, match=re.escape("refusing to listen on 0.0.0.0:50051 without TLS")
    ):
        check_safe(Settings(SCHEDULER_BIND="0.0.0.0:50051"))
    missing = str(tmp_path / "missing.pem")
    with pytest.raises(SystemExit, match="cannot read"):
        check_safe(
            Settings(SCHEDULER_BIND="0.0.0.0:50051", TLS_CERT_FILE=missing, TLS_KEY_FILE=missing)
        )
    certs_main([str(tmp_path)])
    check_safe(
        Settings(
            SCHEDULER_BIND="0.0.0.0:50051",
            TLS_CERT_FILE=str(tmp_path / "scheduler.pem"),
            TLS_KEY_FILE=str(tmp_path / "scheduler-key.pem"),
        )
    )
    check_safe(Settings(SCHEDULER_BIND="127.0.0.1:50051"))


def test_a_runner_sends_its_token_over_no_network_in_plaintext(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match=re.escape("refusing to dial scheduler:50051")):
        check_runner(RunnerSettings(SCHEDULER_ADDR="127.0.0.1:50051,scheduler:50051"))
    with pytest.raises(SystemExit, match="cannot read"):
        check_runner(RunnerSettings(TLS_CA_FILE=str(tmp_path / "missing.pem")))
    certs_main([str(tmp_path)])
    check_runner(
        RunnerSettings(SCHEDULER_ADDR="scheduler:50051", TLS_CA_FILE=str(tmp_path / "ca.pem"))
    )
    check_runner(RunnerSettings(SCHEDULER_ADDR="localhost:50051,127.0.0.1:50052"))
