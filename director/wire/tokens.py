"""Client token inspection: find the bearer token and check a JWT's expiry.

The signature is not verified (neither does Pelican: origins verify tokens, the director
only spares clients a redirect that is bound to fail).
"""

from __future__ import annotations

import base64
import binascii
import json

from director.wire.headers import strip_bearer

EXPIRED_TOKEN_CHALLENGE = 'Bearer error="invalid_token", error_description="token has expired"'
MAX_EXPIRY_GRACE = 10.0


def bearer_token(authorization: str) -> str:
    """The token of an ``Authorization: Bearer <token>`` header, without surrounding
    blanks; '' when the header is absent, of another scheme, or holds no token.

    The director's own API endpoints read their caller's token with this; the redirect
    path forwards a client's header as it came (``client_token``, ``strip_bearer``)."""
    return authorization[7:].strip() if authorization.startswith("Bearer ") else ""


def client_token(authorization: str, query_authz: str) -> str:
    """The token from ``Authorization: Bearer`` or, failing that, the ``authz`` query."""
    if authorization:
        return strip_bearer(authorization)
    return strip_bearer(query_authz)


MAX_TOKEN_LENGTH = 16 * 1024


def _jwt_claims(token: str) -> dict[str, object] | None:
    if len(token) > MAX_TOKEN_LENGTH:
        return None  # far beyond any real JWT: not inspected
    parts = token.split(".")
    if len(parts) != 3:
        return None
    payload = parts[1]
    try:
        raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
        claims = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError, RecursionError):
        return None  # RecursionError: a payload of nested brackets
    return claims if isinstance(claims, dict) else None


def token_expired(token: str, now: float) -> bool:
    """True when ``token`` is a JWT whose ``exp`` is at or before now + grace.

    Grace is min(10 s, (exp - iat) / 2); a lifetime of zero or less counts as expired. A
    token that is not a JWT, or has no numeric ``exp``, passes.
    """
    if not token:
        return False
    claims = _jwt_claims(token)
    if claims is None:
        return False
    exp = claims.get("exp")
    if not isinstance(exp, int | float) or isinstance(exp, bool):
        return False
    iat = claims.get("iat")
    if isinstance(iat, int | float) and not isinstance(iat, bool):
        lifetime = exp - iat
        if lifetime <= 0:
            return True
        grace = min(MAX_EXPIRY_GRACE, lifetime / 2)
    else:
        grace = MAX_EXPIRY_GRACE
    return exp <= now + grace
