"""The Pelican side of the demo federation: what a Pelican origin or cache does to join
(reference pelican-trust 1-2), over HTTP against the director's own registry.

An issuer key (EC P-256, a PEM file that survives restarts, as Pelican's
``IssuerKeysDirectory``), the registration of each prefix (existence check, challenge,
commit) and the advertise token signed with that key.
"""

from __future__ import annotations

import json
import logging
import secrets
import string
from dataclasses import dataclass
from pathlib import Path

import requests
from cryptography.hazmat.primitives.asymmetric import ec

from director.trust import keys, tokens

logger = logging.getLogger(__name__)

TIMEOUT = 10.0
ADVERTISE_TOKEN_LIFETIME = 60.0


def load_or_create_key(path: Path) -> ec.EllipticCurvePrivateKey:
    """The issuer key kept in ``path`` (made on first use, readable by its owner only)."""
    if path.exists():
        return keys.load_private_key(path.read_text())
    key = keys.generate_private_key()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(keys.private_key_pem(key))
    path.chmod(0o600)
    return key


@dataclass
class PelicanIdentity:
    """A server's issuer key and site name, and the registry it registers with."""

    key: ec.EllipticCurvePrivateKey
    site_name: str
    registry: str

    @property
    def jwk(self) -> dict[str, str]:
        return keys.public_jwk(self.key)

    def _post(self, path: str, body: dict[str, object]) -> requests.Response:
        return requests.post(f"{self.registry}/api/v1.0/registry{path}", json=body, timeout=TIMEOUT)

    def register(self, prefix: str) -> bool:
        """Register ``prefix`` unless it is registered with this key already; True when
        it is registered with this key now."""
        exists = self._post(
            "/checkNamespaceExists", {"prefix": prefix, "pubkey": json.dumps(self.jwk)}
        )
        if exists.status_code != 200:
            logger.warning("demo: %s: checkNamespaceExists answered %s", prefix, exists.text)
            return False
        found = exists.json()
        if found["prefix_exists"]:
            if not found["key_match"]:
                logger.warning("demo: %s is registered with another key", prefix)
            return bool(found["key_match"])
        client_nonce = secrets.token_hex(32)
        jwks = {"keys": [self.jwk]}
        init = self._post("", {"client_nonce": client_nonce, "pubkey": jwks})
        if init.status_code != 200:
            logger.warning("demo: %s: challenge refused: %s", prefix, init.text)
            return False
        challenge = init.json()
        payload = client_nonce + challenge["server_nonce"]
        server_prefix = prefix.startswith(("/origins/", "/caches/"))
        alphabet = string.ascii_lowercase + string.digits
        commit = self._post(
            "",
            {
                "pubkey": jwks,
                "prefix": prefix,
                "site_name": self.site_name,
                "client_nonce": client_nonce,
                "server_nonce": challenge["server_nonce"],
                "client_payload": payload,
                "client_signature": keys.sign_payload(self.key, payload.encode()),
                "server_payload": challenge["server_payload"],
                "server_signature": challenge["server_signature"],
                "access_token": "",
                "identity_required": "false",
                "server_id": "".join(secrets.choice(alphabet) for _ in range(7))
                if server_prefix
                else "",
            },
        )
        if commit.status_code not in (200, 201):
            logger.warning("demo: %s: registration refused: %s", prefix, commit.text)
            return False
        return True

    def advertise_token(self, director: str) -> str:
        """Pelican's advertise token (reference pelican-trust 2.1)."""
        return tokens.mint(
            self.key,
            self.jwk["kid"],
            issuer=f"https://{self.site_name}",
            subject=f"https://{self.site_name}",
            audience=[director],
            scopes=[tokens.ADVERTISE],
            lifetime=ADVERTISE_TOKEN_LIFETIME,
        )
