"""Issuer keys and their JSON form (reference pelican-trust 0.1), and the hex DER
signatures of the registry's key-possession challenge (1.3).

A public JWK carries ``kid`` (the RFC 7638 thumbprint) and ``alg`` as Pelican's do. Key
sets arrive from servers as JSON; ``parse_key_set`` checks them once and ``KeySet``
holds the parsed keys (PyJWK) by ``kid``, the form verification uses.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm

# What Pelican's verification accepts (ES256 for every key Pelican generates; RSA keys
# as RS256). EdDSA is not accepted: Pelican's challenge signatures are ECDSA only.
ALG_BY_CURVE = {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}
ACCEPTED_ALGORITHMS = frozenset({*ALG_BY_CURVE.values(), "RS256"})
# The members of each key type that its thumbprint covers (RFC 7638 section 3.2).
THUMBPRINT_MEMBERS = {"EC": ("crv", "kty", "x", "y"), "RSA": ("e", "kty", "n")}
MAX_KEYS_PER_SET = 20
PUBLIC_MEMBERS = ("alg", "crv", "e", "kid", "kty", "n", "use", "x", "y")
# An issuer key file as Pelican writes it (IssuerKeysDirectory): one EC P-256 private key,
# PKCS#8 ("PRIVATE KEY", what Pelican generates) or SEC1 ("EC PRIVATE KEY", what
# ``openssl ecparam -genkey`` writes, possibly after an "EC PARAMETERS" block).
MAX_KEY_FILE_BYTES = 64 * 1024
PRIVATE_KEY_LABELS = frozenset({"PRIVATE KEY", "EC PRIVATE KEY"})
_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----.*?-----END \1-----", re.DOTALL)


class KeySetError(ValueError):
    """A key or key set that cannot be used; the message says why."""


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def thumbprint(jwk: Mapping[str, Any]) -> str:
    """RFC 7638 thumbprint: SHA-256 of the required members, sorted, without spaces."""
    members = THUMBPRINT_MEMBERS.get(str(jwk.get("kty")))
    if members is None or any(not isinstance(jwk.get(name), str) for name in members):
        raise KeySetError(f"a key of type {jwk.get('kty')!r} has no thumbprint")
    canonical = json.dumps({name: jwk[name] for name in members}, separators=(",", ":"))
    return _b64url(hashlib.sha256(canonical.encode()).digest())


def generate_private_key() -> ec.EllipticCurvePrivateKey:
    """A new EC P-256 key, as Pelican generates its issuer keys."""
    return ec.generate_private_key(ec.SECP256R1())


def private_key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def load_private_key(pem: str) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise KeySetError("an issuer key must be an EC key")
    return key


def load_issuer_key_file(data: bytes) -> ec.EllipticCurvePrivateKey:
    """The EC P-256 private key of an issuer key file (PEM, PKCS#8 or SEC1, unencrypted).
    Raises KeySetError saying what the file holds instead: nothing PEM, a public key or
    certificate, an encrypted, RSA or other-curve key, several keys."""
    if len(data) > MAX_KEY_FILE_BYTES:
        raise KeySetError(f"is over {MAX_KEY_FILE_BYTES // 1024} KiB: not a key file")
    blocks = [(match.group(1).decode(), match.group(0)) for match in _PEM_BLOCK.finditer(data)]
    labels = [label for label, _ in blocks]
    private = [block for label, block in blocks if label in PRIVATE_KEY_LABELS]
    if not blocks:
        raise KeySetError("holds no PEM block: not a PEM key file")
    if not private:
        if "ENCRYPTED PRIVATE KEY" in labels:
            problem = "holds an encrypted private key; give it decrypted, as Pelican stores it"
        elif "RSA PRIVATE KEY" in labels:
            problem = "holds an RSA key; the federation's issuer keys are EC P-256"
        elif any("PUBLIC KEY" in label or "CERTIFICATE" in label for label in labels):
            problem = "holds a public key or certificate, not a private key"
        else:
            problem = "holds no private key"
        raise KeySetError(f"{problem} (PEM blocks: {', '.join(labels)})")
    if len(private) > 1:
        raise KeySetError(f"holds {len(private)} private keys; give each in a file of its own")
    try:
        key = serialization.load_pem_private_key(private[0], password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise KeySetError("holds a private key block that is not a valid key") from None
    if isinstance(key, rsa.RSAPrivateKey):
        raise KeySetError("holds an RSA key; the federation's issuer keys are EC P-256")
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise KeySetError(f"holds a {type(key).__name__}; the issuer keys are EC P-256")
    if not isinstance(key.curve, ec.SECP256R1):
        raise KeySetError(f"holds an EC key on {key.curve.name}; the issuer keys are EC P-256")
    return key


def public_jwk(key: ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) -> dict[str, str]:
    """The public JWK of ``key`` with ``kid`` and ``alg``, members sorted as jwx writes
    them: ``{"alg","crv","kid","kty","x","y"}``."""
    public = key.public_key() if isinstance(key, ec.EllipticCurvePrivateKey) else key
    members: dict[str, Any] = ECAlgorithm.to_jwk(public, as_dict=True)
    jwk = {name: str(members[name]) for name in ("crv", "kty", "x", "y")}
    jwk["kid"] = thumbprint(jwk)
    jwk["alg"] = ALG_BY_CURVE[jwk["crv"]]
    return dict(sorted(jwk.items()))


@dataclass(frozen=True)
class KeySet:
    """A checked key set: the JWKs as sent (in order) and the parsed keys by ``kid``."""

    jwks: tuple[dict[str, Any], ...]
    keys: Mapping[str, jwt.PyJWK]
    prints: Mapping[str, str]  # kid -> thumbprint

    def first(self) -> dict[str, Any]:
        return self.jwks[0]

    def thumbprints(self) -> frozenset[str]:
        return frozenset(self.prints.values())

    def has_key(self, jwk: Mapping[str, Any]) -> bool:
        """True when a key of this set is ``jwk`` (compared by thumbprint, not by kid)."""
        return thumbprint(jwk) in self.thumbprints()

    def as_json(self) -> dict[str, list[dict[str, Any]]]:
        return {"keys": [dict(jwk) for jwk in self.jwks]}


def parse_jwk(value: object) -> tuple[dict[str, Any], jwt.PyJWK]:
    """One public JWK (a mapping); its ``alg`` is given or follows from its curve."""
    if not isinstance(value, dict):
        raise KeySetError("a key must be a JSON object")
    if "d" in value or "p" in value:
        raise KeySetError("a key set must hold public keys only")
    # Only the string members of a public EC or RSA key are kept (and stored).
    jwk = {name: value[name] for name in PUBLIC_MEMBERS if name in value}
    if any(not isinstance(member, str) for member in jwk.values()):
        raise KeySetError(f"the members {', '.join(PUBLIC_MEMBERS)} of a key must be strings")
    if jwk.get("kty") == "EC" and "alg" not in jwk:
        jwk["alg"] = ALG_BY_CURVE.get(str(jwk.get("crv")), "")
    if jwk.get("alg") not in ACCEPTED_ALGORITHMS:
        accepted = ", ".join(sorted(ACCEPTED_ALGORITHMS))
        raise KeySetError(f"key algorithm {jwk.get('alg')!r} is not one of {accepted}")
    try:
        parsed = jwt.PyJWK(jwk)
    except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError) as error:
        raise KeySetError(f"not a usable key: {error}") from None
    if not isinstance(parsed.key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
        raise KeySetError("a key set must hold public keys only")
    jwk.setdefault("kid", thumbprint(jwk))
    if not isinstance(jwk["kid"], str) or not jwk["kid"]:
        raise KeySetError("a key's kid must be a non-empty string")
    return jwk, parsed


def parse_key_set(value: object) -> KeySet:
    """``{"keys":[...]}`` (a mapping or its JSON text) checked: at least one key, each
    usable, no two with one ``kid``. Raises KeySetError."""
    if isinstance(value, str | bytes):
        try:
            value = json.loads(value)
        except ValueError:
            raise KeySetError("the key set is not JSON") from None
    keys = value.get("keys") if isinstance(value, dict) else None
    if not isinstance(keys, list) or not keys:
        raise KeySetError('a key set must be {"keys":[<at least one key>]}')
    if len(keys) > MAX_KEYS_PER_SET:
        raise KeySetError(f"a key set may hold at most {MAX_KEYS_PER_SET} keys")
    jwks: list[dict[str, Any]] = []
    parsed: dict[str, jwt.PyJWK] = {}
    for item in keys:
        jwk, key = parse_jwk(item)
        if jwk["kid"] in parsed:
            raise KeySetError(f"two keys have the kid {jwk['kid']!r}")
        jwks.append(jwk)
        parsed[jwk["kid"]] = key
    return KeySet(tuple(jwks), parsed, {jwk["kid"]: thumbprint(jwk) for jwk in jwks})


def sign_payload(key: ec.EllipticCurvePrivateKey, payload: bytes) -> str:
    """ECDSA over SHA-256 of ``payload``, ASN.1 DER, hex (Pelican's challenge signature)."""
    return key.sign(payload, ec.ECDSA(hashes.SHA256())).hex()


def verify_payload(key: jwt.PyJWK, payload: bytes, signature_hex: str) -> bool:
    """True when ``signature_hex`` is ``sign_payload(<the private key>, payload)``."""
    public = key.key
    if not isinstance(public, ec.EllipticCurvePublicKey):
        return False  # Pelican's challenge is ECDSA only
    try:
        public.verify(bytes.fromhex(signature_hex), payload, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError):
        return False
    return True
