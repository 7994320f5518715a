"""The federation issuer's private keys at rest (``IssuerKey.private_pem``).

Without a passphrase a key is stored as a plain PKCS#8 PEM, and a database backup holds
key material that signs for the whole federation. With one
(``DIRECTOR_ISSUER_KEY_PASSPHRASE``, or the file ``DIRECTOR_ISSUER_KEY_PASSPHRASE_FILE``)
new keys are stored as an encrypted PKCS#8 PEM (cryptography's ``BestAvailableEncryption``:
PBES2, AES-256-CBC; ``openssl pkcs8`` reads it with the passphrase). The PEM's own label
says which a row holds, so plaintext keys keep working beside encrypted ones until
``manage.py encryptkeys`` (or ``rotatekey``) encrypts them.

A key that cannot be read (encrypted, and the passphrase missing or wrong) is reported by
the system check (``problems``) and, where a key is used, refused as a ``KeyStoreError``:
503 with what to fix, never a traceback.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.conf import settings
from django.db import transaction

from director.models import IssuerKey
from director.trust import keys
from director.wire.errors import Refusal

logger = logging.getLogger(__name__)

ENCRYPTED_LABEL = "-----BEGIN ENCRYPTED PRIVATE KEY-----"
SETTING = "DIRECTOR_ISSUER_KEY_PASSPHRASE"
FILE_SETTING = "DIRECTOR_ISSUER_KEY_PASSPHRASE_FILE"
# PBKDF2 in PKCS#8 runs 2,048 rounds: a passphrase shorter than this is guessable from a
# stolen backup (the system check warns).
SHORT_PASSPHRASE = 20


class KeyStoreError(Refusal):
    """An issuer key that cannot be stored or read: the director's configuration, not
    the caller, is at fault (503)."""

    def __init__(self, problem: str) -> None:
        super().__init__(503, f"The federation issuer's signing keys are unusable: {problem}")
        self.problem = problem


def passphrase() -> bytes | None:
    """The configured passphrase (the file's content without its final line break), or
    None when neither setting is given. Raises KeyStoreError for a bad configuration."""
    value: str = settings.DIRECTOR_ISSUER_KEY_PASSPHRASE
    path: str = settings.DIRECTOR_ISSUER_KEY_PASSPHRASE_FILE
    if value and path:
        raise KeyStoreError(f"{SETTING} and {FILE_SETTING} are both set; set one")
    if path:
        try:
            value = Path(path).read_text(encoding="utf-8").rstrip("\r\n")
        except (OSError, UnicodeError) as error:
            raise KeyStoreError(f"{FILE_SETTING}={path!r} cannot be read ({error})") from None
        if not value:
            raise KeyStoreError(f"{FILE_SETTING}={path!r} is empty")
    return value.encode() if value else None


def is_encrypted(pem: str) -> bool:
    return pem.lstrip().startswith(ENCRYPTED_LABEL)


def seal(key: ec.EllipticCurvePrivateKey, secret: bytes | None = None) -> str:
    """``key`` as stored: encrypted with the passphrase when one is configured."""
    secret = secret if secret is not None else passphrase()
    if secret is None:
        return keys.private_key_pem(key)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(secret),
    ).decode()


def unseal(pem: str, kid: str, secret: bytes | None = None) -> ec.EllipticCurvePrivateKey:
    """The stored key ``pem`` (of ``kid``), decrypted with ``secret`` or else the
    configured passphrase when it is encrypted. Raises KeyStoreError."""
    if not is_encrypted(pem):
        return keys.load_private_key(pem)
    secret = secret if secret is not None else passphrase()
    if secret is None:
        raise KeyStoreError(
            f"key {kid} is encrypted and neither {SETTING} nor {FILE_SETTING} is set"
        )
    try:
        key = serialization.load_pem_private_key(pem.encode(), password=secret)
    except (ValueError, TypeError):
        raise KeyStoreError(f"the configured passphrase does not decrypt key {kid}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise KeyStoreError(f"key {kid} is not an EC key")
    return key


def problems() -> list[str]:
    """What keeps a stored key from being read (the system check): the configuration,
    then each key the passphrase does not open."""
    try:
        secret = passphrase()
    except KeyStoreError as error:
        return [error.problem]
    found = []
    for row in IssuerKey.objects.order_by("activates_at", "pk"):
        if not is_encrypted(row.private_pem):
            continue
        try:
            unseal(row.private_pem, row.kid, secret)
        except KeyStoreError as error:
            found.append(error.problem)
    return found


@dataclass(frozen=True)
class Resealed:
    encrypted: list[str]  # kids stored in plaintext until now
    rekeyed: list[str]  # kids encrypted with the old passphrase until now


def encrypt_stored(old: bytes | None = None) -> Resealed:
    """Encrypt with the configured passphrase every key stored in plaintext and, given
    the ``old`` passphrase, every key encrypted with it. All or nothing: a key that
    neither passphrase opens raises KeyStoreError and changes no row."""
    secret = passphrase()
    if secret is None:
        raise KeyStoreError(f"set {SETTING} or {FILE_SETTING} to encrypt the keys with")
    encrypted: list[str] = []
    rekeyed: list[str] = []
    with transaction.atomic():
        for row in IssuerKey.objects.select_for_update().order_by("activates_at", "pk"):
            if not is_encrypted(row.private_pem):
                key, done = keys.load_private_key(row.private_pem), encrypted
            else:
                try:
                    unseal(row.private_pem, row.kid, secret)
                    continue  # already under this passphrase
                except KeyStoreError:
                    if old is None:
                        raise
                key, done = unseal(row.private_pem, row.kid, old), rekeyed
            row.private_pem = seal(key, secret)
            row.save(update_fields=["private_pem"])
            done.append(row.kid)
    if encrypted or rekeyed:
        logger.info(
            "federation issuer: keys encrypted at rest (%d were plaintext, %d re-encrypted)",
            len(encrypted),
            len(rekeyed),
        )
    return Resealed(encrypted, rekeyed)
