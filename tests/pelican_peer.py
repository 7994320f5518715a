"""A Pelican origin or cache as the tests' peer, written from the protocol description
(``shared/reference/pelican-trust.md`` sections 0-2), not from the director's code: it
imports nothing of ``director``. It holds EC P-256 issuer keys, registers its prefixes
with the registry (checkNamespaceExists, challenge init, commit), asks for its server
record, rotates its keys (updateNamespacesPubKey) and signs its advertisements.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import secrets
import string
import time
from dataclasses import dataclass, field
from typing import Any

import jwt
import requests
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

TIMEOUT = 10
CAPS = {
    "PublicRead": True,
    "Read": True,
    "Write": False,
    "Listing": True,
    "FallBackRead": True,
    "Copies": False,
}


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def public_jwk(key: ec.EllipticCurvePrivateKey) -> dict[str, str]:
    """The public JWK with ``kid`` = RFC 7638 thumbprint and ``alg`` = ES256 (0.1)."""
    numbers = key.public_key().public_numbers()
    jwk = {
        "crv": "P-256",
        "kty": "EC",
        "x": b64url(numbers.x.to_bytes(32, "big")),
        "y": b64url(numbers.y.to_bytes(32, "big")),
    }
    canonical = json.dumps(jwk, separators=(",", ":"), sort_keys=True)
    return {**jwk, "kid": b64url(hashlib.sha256(canonical.encode()).digest()), "alg": "ES256"}


def sign_hex(key: ec.EllipticCurvePrivateKey, payload: str) -> str:
    """ECDSA over SHA-256 of the payload bytes, ASN.1 DER, hex (the conventions)."""
    return key.sign(payload.encode(), ec.ECDSA(hashes.SHA256())).hex()


def nonce() -> str:
    return secrets.token_hex(32)


def server_id() -> str:
    return "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(7))


@dataclass
class PelicanPeer:
    """One Pelican server: its keys (the first is current), its registry and site name."""

    registry: str  # the namespace_registration_endpoint of discovery
    site_name: str
    keys: list[ec.EllipticCurvePrivateKey] = field(
        default_factory=lambda: [ec.generate_private_key(ec.SECP256R1())]
    )

    @property
    def current(self) -> ec.EllipticCurvePrivateKey:
        return self.keys[0]

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        """The signing key at index 0, then every other key held (1.3)."""
        return {"keys": [public_jwk(key) for key in self.keys]}

    def api(self, path: str = "") -> str:
        return f"{self.registry}/api/v1.0/registry{path}"

    # -- registration (1.2-1.5) ------------------------------------------------------------
    def check_exists(self, prefix: str, key: ec.EllipticCurvePrivateKey) -> requests.Response:
        return requests.post(
            self.api("/checkNamespaceExists"),
            json={"prefix": prefix, "pubkey": json.dumps(public_jwk(key))},
            timeout=TIMEOUT,
        )

    def challenge(self) -> tuple[str, dict[str, Any]]:
        client_nonce = nonce()
        answer = requests.post(
            self.api(), json={"client_nonce": client_nonce, "pubkey": self.jwks()}, timeout=TIMEOUT
        )
        assert answer.status_code == 200, answer.text
        return client_nonce, answer.json()

    def commit(
        self, prefix: str, client_nonce: str, init: dict[str, Any], **changes: Any
    ) -> requests.Response:
        payload = client_nonce + init["server_nonce"]
        body = {
            "pubkey": self.jwks(),
            "prefix": prefix,
            "site_name": self.site_name,
            "client_nonce": client_nonce,
            "server_nonce": init["server_nonce"],
            "client_payload": payload,
            "client_signature": sign_hex(self.current, payload),
            "server_payload": init["server_payload"],
            "server_signature": init["server_signature"],
            "access_token": "",
            "identity_required": "false",
            "server_id": server_id() if prefix.startswith(("/origins/", "/caches/")) else "",
            **changes,
        }
        return requests.post(self.api(), json=body, timeout=TIMEOUT)

    def register(self, prefix: str) -> requests.Response:
        """What a server does at start-up for one prefix: the existence check with each key,
        then (not registered) init and commit, then the completeness check."""
        for key in self.keys:
            exists = self.check_exists(prefix, key)
            assert exists.status_code == 200, exists.text
            found = exists.json()
            if found["prefix_exists"] and found["key_match"]:
                return exists
            if not found["prefix_exists"]:
                break
        client_nonce, init = self.challenge()
        answer = self.commit(prefix, client_nonce, init)
        status = requests.post(
            self.api("/namespaces/check/status"), json={"prefixes": [prefix]}, timeout=TIMEOUT
        )
        assert status.status_code == 200 and prefix in status.json()["results"], status.text
        return answer

    def server_record(self, prefix: str) -> requests.Response:
        return requests.get(self.api(f"/server{prefix}"), timeout=TIMEOUT)

    def rotate(self, prefixes: list[str], *, check: bool = True) -> requests.Response:
        """A new current key, pushed with updateNamespacesPubKey (1.11), proven with a key
        that is registered already (``check=False``: sent even when it is not)."""
        old = self.current
        self.keys.insert(0, ec.generate_private_key(ec.SECP256R1()))
        client_nonce = nonce()
        init = requests.post(
            self.api("/updateNamespacesPubKey"),
            json={
                "client_nonce": client_nonce,
                "pubkey": {"keys": [public_jwk(self.current)]},
                "prefixes": prefixes,
            },
            timeout=TIMEOUT,
        )
        assert init.status_code == 200, init.text
        started = init.json()
        registered = json.loads(started["registered_keys"][prefixes[0]])
        if check:
            assert public_jwk(old)["kid"] in {key["kid"] for key in registered["keys"]}
        payload = client_nonce + started["server_nonce"]
        return requests.post(
            self.api("/updateNamespacesPubKey"),
            json={
                "pubkey": {"keys": [public_jwk(self.current)]},
                "all_pubkeys": self.jwks(),
                "prefixes": prefixes,
                "site_name": self.site_name,
                "client_nonce": client_nonce,
                "server_nonce": started["server_nonce"],
                "client_payload": payload,
                "client_signature": sign_hex(self.current, payload),
                "key_update_authz_signature": sign_hex(old, payload),
                "matched_key_id": public_jwk(old)["kid"],
                "server_payload": started["server_payload"],
                "server_signature": started["server_signature"],
            },
            timeout=TIMEOUT,
        )

    # -- advertisement (2.1-2.2) -----------------------------------------------------------
    def advertise_token(
        self,
        director: str,
        *,
        key: ec.EllipticCurvePrivateKey | None = None,
        scope: str = "pelican.advertise",
        lifetime: int = 60,
        issued_at: float | None = None,
    ) -> str:
        now = int(time.time() if issued_at is None else issued_at)
        signer = key or self.current
        claims = {
            "iss": f"https://{self.site_name}",
            "sub": f"https://{self.site_name}",
            "aud": [director],
            "scope": scope,
            "iat": now,
            "nbf": now,
            "exp": now + lifetime,
            "jti": b64url(secrets.token_bytes(16)),
            "wlcg.ver": "1.0",
        }
        return jwt.encode(
            claims, signer, algorithm="ES256", headers={"kid": public_jwk(signer)["kid"]}
        )

    def advertise(
        self, director: str, kind: str, ad: dict[str, Any], token: str | None = None
    ) -> requests.Response:
        endpoint = "registerOrigin" if kind == "origin" else "registerCache"
        return requests.post(
            f"{director}/api/v1.0/director/{endpoint}",
            json=ad,
            headers={
                "Authorization": f"Bearer {token or self.advertise_token(director)}",
                "User-Agent": f"pelican-{kind}/7.20.0",
            },
            timeout=TIMEOUT,
        )


def server_ad(
    name: str, kind: str, prefix: str, data_url: str, namespaces: list[str]
) -> dict[str, Any]:
    """An OriginAdvertise body (pelican-director.md 1.6)."""
    now = dt.datetime.now(dt.UTC)
    return {
        "name": name,
        "registry-prefix": prefix,
        "data-url": data_url,
        "web-url": data_url,
        "capabilities": CAPS,
        "namespaces": [{"Caps": CAPS, "path": path} for path in namespaces],
        "status": "ok",
        "version": "7.20.0",
        "now": now.isoformat(),
        "expiry": (now + dt.timedelta(minutes=10)).isoformat(),
        "storageType": "posix",
        "directorTest": True,
    }
