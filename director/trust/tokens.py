"""WLCG tokens as every Pelican component mints them (reference pelican-trust 0.2), and
their verification against a key set (0.3): ``kid`` required, 60 s leeway on the times,
``iss`` and ``aud`` left to the caller."""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping, Sequence
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec

LEEWAY_SECONDS = 60  # Pelican's ClockSkewLeeway
WLCG_AUDIENCE_ANY = "https://wlcg.cern.ch/jwt/v1/any"
WLCG_VERSION = "1.0"
MAX_TOKEN_LENGTH = 16 * 1024

# Scopes (token_scopes.go)
ADVERTISE = "pelican.advertise"
DIRECTOR_TEST_REPORT = "pelican.director_test_report"
SERVICE_DISCOVERY = "pelican.director_service_discovery"
STORAGE_READ = "storage.read"
STORAGE_MODIFY = "storage.modify"


class TokenRejected(Exception):
    """A token that does not verify; the message is Pelican-like, for the sender."""


def mint(
    key: ec.EllipticCurvePrivateKey,
    kid: str,
    *,
    issuer: str,
    subject: str,
    audience: Sequence[str],
    scopes: Sequence[str],
    lifetime: float,
    now: float | None = None,
) -> str:
    """A signed WLCG token: ``aud`` always a list, ``scope`` omitted when empty, header
    ``{"alg":"ES256","kid":...,"typ":"JWT"}``."""
    issued = int(time.time() if now is None else now)
    claims: dict[str, Any] = {
        "aud": list(audience),
        "exp": issued + int(lifetime),
        "iat": issued,
        "iss": issuer,
        "jti": secrets.token_urlsafe(16),
        "nbf": issued,
        "sub": subject,
        "wlcg.ver": WLCG_VERSION,
    }
    if scopes:
        claims["scope"] = " ".join(scopes)
    return jwt.encode(claims, key, algorithm="ES256", headers={"kid": kid, "typ": "JWT"})


def unverified_kid(token: str) -> str:
    """The ``kid`` of the token's header; TokenRejected when there is none."""
    if len(token) > MAX_TOKEN_LENGTH:
        raise TokenRejected("failed to verify token signature: the token is too long")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as error:
        raise TokenRejected(f"failed to verify token signature: {error}") from None
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise TokenRejected("failed to verify token signature: the token header has no kid")
    return kid


def looks_like_jwt(token: str) -> bool:
    """Three dot-separated parts, the first a JSON object in base64url: a JWT, not one of
    this director's own registration secrets (which have no dots)."""
    return token.count(".") == 2 and token.startswith("eyJ")


def verify(token: str, keys: Mapping[str, jwt.PyJWK]) -> dict[str, Any]:
    """The claims of ``token`` when its ``kid`` names a key of ``keys`` whose signature it
    carries and its times hold (60 s leeway). Raises TokenRejected."""
    kid = unverified_kid(token)
    key = keys.get(kid)
    if key is None:
        raise TokenRejected(
            f'failed to verify token signature: no key with kid "{kid}" in the key set'
        )
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key=key,
            algorithms=[key.algorithm_name],
            options={"verify_aud": False, "verify_iss": False, "require": ["exp"]},
            leeway=LEEWAY_SECONDS,
        )
    except jwt.ExpiredSignatureError:
        raise TokenRejected('failed to validate token claims: "exp" not satisfied') from None
    except jwt.ImmatureSignatureError:
        raise TokenRejected('failed to validate token claims: "nbf" not satisfied') from None
    except jwt.InvalidSignatureError:
        raise TokenRejected(
            "failed to verify token signature: could not verify message using any of the "
            "signatures or keys"
        ) from None
    except jwt.PyJWTError as error:
        raise TokenRejected(f"failed to verify token signature: {error}") from None
    return claims


def scopes_of(claims: Mapping[str, Any]) -> list[str]:
    scope = claims.get("scope")
    return scope.split(" ") if isinstance(scope, str) else []


def has_scope(claims: Mapping[str, Any], wanted: str) -> bool:
    """True when the ``scope`` claim is a string with ``wanted`` as one of its words."""
    return wanted in scopes_of(claims)
