"""The HTTPS settings and listener: what goes together, the URL a TLS worker advertises, a reload that fails."""

from __future__ import annotations

import datetime
import logging
import socket
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from conf.settings import ConfigError, load_settings
from proxy.cli.tls import TlsListener
from proxy.stack import advertised_url


def self_signed(directory: Path, name: str) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    cert_file, key_file = directory / f"{name}.crt", directory / f"{name}.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


@pytest.mark.parametrize("server", [
    {"tls_cert_file": "/x.crt"},  # a certificate without its key
    {"tls_key_file": "/x.key"},
    {"https_only": True},  # HTTPS only, with no HTTPS
])
def test_incomplete_tls_settings_are_refused(server: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        load_settings(None, {}, {"server": server})


def test_a_tls_worker_advertises_https_on_its_tls_port() -> None:
    plain = load_settings(None, {}, {})
    assert advertised_url(plain) == "http://127.0.0.1:29998"
    tls = load_settings(None, {}, {"server": {"host": "0.0.0.0", "tls_cert_file": "/c", "tls_key_file": "/k"}})
    assert tls.server.tls_port == 29996 and advertised_url(tls) == "https://127.0.0.1:29996"
    named = load_settings(None, {}, {"server": {"tls_cert_file": "/c", "tls_key_file": "/k"},
                                     "cluster": {"advertise_url": "https://w0.example:29996"}})
    assert advertised_url(named) == "https://w0.example:29996"


def test_tls_with_several_processes_is_refused() -> None:
    with pytest.raises(ConfigError, match="one process"):
        load_settings(None, {}, {"server": {"processes": 2, "tls_cert_file": "/c", "tls_key_file": "/k"}})


def test_a_reload_that_does_not_load_is_logged_and_the_next_good_one_loads(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="s3cache")
    first_cert, first_key = self_signed(tmp_path, "first")
    second_cert, second_key = self_signed(tmp_path, "second")
    with socket.socket() as sock:
        listener = TlsListener(sock, first_cert, first_key)
        context = listener.context
        first_key.write_bytes(second_key.read_bytes())  # the key of another certificate: the pair does not load
        listener.reload()
        assert "not reloaded" in caplog.text
        assert listener.context is context
        first_cert.write_bytes(second_cert.read_bytes())  # now a matching pair
        listener.reload()
        assert "reloaded from" in caplog.text and listener.context is context
