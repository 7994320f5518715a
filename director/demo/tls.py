"""The demo's local certificate authority and server certificate (``serve --demo-tls``).

Generated once into a git-ignored folder (``demo-tls/``) with the ``cryptography``
package and reused on later starts: the CA for as long as it is valid, the server
certificate while it is valid for another ``RENEW_BEFORE``, names every host asked for
and was signed by that CA. Clients trust the demo by trusting ``ca.pem``
(``SSL_CERT_FILE`` for pelicanfs and Python's ``ssl``, ``REQUESTS_CA_BUNDLE`` for
requests, ``curl --cacert``). Private keys are written readable by their owner only.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_FILE = "ca.pem"
CA_KEY_FILE = "ca-key.pem"
CERT_FILE = "server.pem"
KEY_FILE = "server-key.pem"
CA_LIFETIME = dt.timedelta(days=3650)
CERT_LIFETIME = dt.timedelta(days=365)
RENEW_BEFORE = dt.timedelta(days=30)
# Names every local certificate carries; serve's --host is added when it is a real name.
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")
WILDCARD_ADDRESSES = ("", "0.0.0.0", "::")


@dataclass(frozen=True)
class DemoCertificates:
    ca: Path  # the CA certificate clients trust
    cert: Path  # the server certificate
    key: Path  # its private key


def ensure_certificates(folder: Path, hosts: tuple[str, ...] = ()) -> DemoCertificates:
    """The demo CA and a server certificate for ``LOCAL_HOSTS`` and ``hosts`` in
    ``folder``, made now only when missing, expiring or not covering every host."""
    folder.mkdir(parents=True, exist_ok=True)
    names = tuple(dict.fromkeys([*LOCAL_HOSTS, *(h for h in hosts if h not in WILDCARD_ADDRESSES)]))
    now = dt.datetime.now(dt.UTC)
    ca_path, ca_key_path = folder / CA_FILE, folder / CA_KEY_FILE
    ca_cert, ca_key = _load_ca(ca_path, ca_key_path, now)
    if ca_cert is None or ca_key is None:
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_cert = _make_ca(ca_key, now)
        _write_key(ca_key_path, ca_key)
        ca_path.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
        (folder / CERT_FILE).unlink(missing_ok=True)  # signed by the old CA
    cert_path, key_path = folder / CERT_FILE, folder / KEY_FILE
    if not _server_cert_usable(cert_path, key_path, ca_cert, names, now):
        key = ec.generate_private_key(ec.SECP256R1())
        _write_key(key_path, key)
        cert_path.write_bytes(
            _make_server_cert(key, ca_cert, ca_key, names, now).public_bytes(
                serialization.Encoding.PEM
            )
        )
    return DemoCertificates(ca_path, cert_path, key_path)


def _load_ca(
    cert_path: Path, key_path: Path, now: dt.datetime
) -> tuple[x509.Certificate | None, ec.EllipticCurvePrivateKey | None]:
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError):
        return None, None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or cert.not_valid_after_utc < now:
        return None, None
    return cert, key


def _server_cert_usable(
    cert_path: Path,
    key_path: Path,
    ca_cert: x509.Certificate,
    names: tuple[str, ...],
    now: dt.datetime,
) -> bool:
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        cert.verify_directly_issued_by(ca_cert)
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (OSError, ValueError, TypeError, x509.ExtensionNotFound, InvalidSignature):
        return False
    if key.public_key() != cert.public_key():
        return False
    covered = {str(n) for n in san.get_values_for_type(x509.DNSName)} | {
        str(a) for a in san.get_values_for_type(x509.IPAddress)
    }
    wanted = {str(_san_entry(name).value) for name in names}
    return wanted <= covered and cert.not_valid_after_utc - RENEW_BEFORE > now


def _san_entry(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _make_ca(key: ec.EllipticCurvePrivateKey, now: dt.datetime) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "director demo local CA")])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + CA_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )


def _make_server_cert(
    key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    names: tuple[str, ...],
    now: dt.datetime,
) -> x509.Certificate:
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + CERT_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName([_san_entry(name) for name in names]), critical=False
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    """PEM, unencrypted, created with mode 0600 (never world-readable, not even briefly)."""
    data = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.unlink(missing_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(data)
