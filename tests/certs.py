"""TLS material for the tests: a certificate authority made by each test (trustme) and a
server certificate it issued for loopback, written to files as servers and clients
read them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import trustme

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class Certificates:
    ca: Path  # what clients trust (REQUESTS_CA_BUNDLE, SSL_CERT_FILE, verify=)
    cert: Path  # the server's certificate chain
    key: Path  # its private key


def make_certificates(folder: Path) -> Certificates:
    folder.mkdir(parents=True, exist_ok=True)
    authority = trustme.CA()
    issued = authority.issue_cert(*LOOPBACK_NAMES)
    files = Certificates(folder / "ca.pem", folder / "server.pem", folder / "server-key.pem")
    authority.cert_pem.write_to_path(str(files.ca))
    issued.cert_chain_pems[0].write_to_path(str(files.cert))
    for extra in issued.cert_chain_pems[1:]:
        extra.write_to_path(str(files.cert), append=True)
    issued.private_key_pem.write_to_path(str(files.key))
    return files
