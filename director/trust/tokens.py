"""WLCG tokens as every Pelican component mints them (reference pelican-trust 0.2), and
their verification against a key set (0.3): ``kid`` required, 60 s leeway on the times,
``iss`` and ``aud`` left to the caller (``bound_problem`` checks an advertise token's
audience and lifetime)."""

from __future__ import annotations

import secrets
import time
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import ec

LEEWAY_SECONDS = 60  # Pelican's ClockSkewLeeway
WLCG_AUDIENCE_ANY = "https://wlcg.cern.ch/jwt/v1/any"
WLCG_VERSION = "1.0"
MAX_TOKEN_LENGTH = 16 * 1024
MAX_KID_LENGTH = 128
KID_CHARACTERS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=.")
DEFAULT_PORTS = {"http": 80, "https": 443}

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
    if len(kid) > MAX_KID_LENGTH or not KID_CHARACTERS.issuperset(kid):
        raise TokenRejected("failed to verify token signature: the token's kid is no key id")
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


# --- binding an advertise token to this director (reference pelican-trust 5.1) -------------


def wlcg_audience(url: str) -> str:
    """``scheme://host[:port]`` of an http(s) URL, the default port dropped, as Pelican's
    ``GetWLCGAudience`` writes a director's advertise URL into ``aud``; "" for anything
    else. Scheme and host are lower-cased (URLs compare so)."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return ""
    scheme, host = parts.scheme.lower(), parts.hostname or ""
    if scheme not in DEFAULT_PORTS or not host:
        return ""
    if ":" in host:
        host = f"[{host}]"
    if port is None or port == DEFAULT_PORTS[scheme]:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def audience_names(urls: Iterable[str]) -> frozenset[str]:
    """The audiences a token for one of ``urls`` may carry: each URL's WLCG audience, in
    http and https alike (discovery names a director in https, its own ad as configured)."""
    names: set[str] = set()
    for url in urls:
        audience = wlcg_audience(url)
        if audience:
            rest = audience.split("://", 1)[1]
            names.update(f"{scheme}://{rest}" for scheme in DEFAULT_PORTS)
    return frozenset(names)


def audiences_of(claims: Mapping[str, Any]) -> list[str]:
    """``aud`` as a list: a string is one audience; anything but strings is none."""
    aud = claims.get("aud")
    if isinstance(aud, str):
        return [aud]
    if isinstance(aud, list):
        return [item for item in aud if isinstance(item, str)]
    return []


def bound_problem(
    claims: Mapping[str, Any],
    *,
    audiences: Collection[str],
    max_lifetime: float,
    now: float | None = None,
) -> str:
    """Why a verified advertise token is not one for this director, "" when it is:

    1. one of its ``aud`` values, as a WLCG audience, is one of ``audiences`` (from
       ``audience_names``);
    2. it lives at most ``max_lifetime`` seconds: ``exp - iat``, and ``exp - now`` (with
       the 60 s leeway) whether or not it has an ``iat``;
    3. it names its issuer (``iss``, a string).
    """
    moment = time.time() if now is None else now
    sent = audiences_of(claims)
    if not any(wlcg_audience(audience) in audiences for audience in sent):
        return (
            f'failed to validate token claims: "aud" {sent!r} names no advertise URL of '
            "this director"
        )
    expires, issued = claims.get("exp"), claims.get("iat")
    if not isinstance(expires, int | float):
        return 'failed to validate token claims: "exp" is not a number'
    if isinstance(issued, int | float) and expires - issued > max_lifetime:
        return (
            f"failed to validate token claims: the token lives {int(expires - issued)} s, "
            f"more than the {int(max_lifetime)} s an advertise token may"
        )
    if expires - moment > max_lifetime + LEEWAY_SECONDS:
        return (
            f"failed to validate token claims: the token expires in {int(expires - moment)} s, "
            f"more than the {int(max_lifetime)} s an advertise token may live"
        )
    if not isinstance(claims.get("iss"), str) or not claims["iss"]:
        return 'failed to validate token claims: "iss" is missing'
    return ""
