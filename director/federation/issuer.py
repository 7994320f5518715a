"""The federation issuer: this director's signing keys and the tokens it mints
(reference pelican-trust 3).

Keys live in the database (``IssuerKey``), so every process and host of one federation
signs with the same key and publishes the same JWKS. The first key is made on first use;
``manage.py rotatekey`` adds the next one; ``manage.py importissuerkey`` brings in the keys
a Pelican federation already signs with (``import_keys``). Each process reads the key rows
at most every ``KEY_REFRESH_SECONDS`` (and at once when a token names a ``kid`` it does not
know) and parses each key once.

The issuer's name, the ``iss`` of every token minted here, is the federation's discovery
URL: DIRECTOR_FEDERATION_DISCOVERY_URL when the federation's discovery lives elsewhere
(``discovery_url``), else this director's public URL as its discovery document gives it
(``issuer_url``); never a request's Host.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from director.federation import keystore
from director.models import IssuerKey
from director.trust import keys, tokens
from director.wire.documents import federation_url
from director.wire.errors import Refusal

logger = logging.getLogger(__name__)

KEY_REFRESH_SECONDS = 10.0
# Pelican's verifiers cache the federation JWKS this long: a new key should be published
# at least this long before it signs (``rotatekey``'s default delay).
JWKS_CACHE_SECONDS = 900.0
HEALTH_TEST_TOKEN_LIFETIME = 60.0  # Pelican's director-test and report tokens
DISCOVERY_TOKEN_LIFETIME = 3600.0  # Pelican's Monitoring.TokenExpiresIn


@dataclass(frozen=True)
class Signer:
    kid: str
    key: ec.EllipticCurvePrivateKey

    def mint(
        self,
        *,
        issuer: str,
        subject: str,
        audience: Sequence[str],
        scopes: Sequence[str],
        lifetime: float,
        now: float | None = None,
    ) -> str:
        return tokens.mint(
            self.key,
            self.kid,
            issuer=issuer,
            subject=subject,
            audience=audience,
            scopes=scopes,
            lifetime=lifetime,
            now=now,
        )


@dataclass(frozen=True)
class _Loaded:
    rows: tuple[IssuerKey, ...]
    read_at: float


_loaded: _Loaded | None = None
_private: dict[str, ec.EllipticCurvePrivateKey] = {}
_public: dict[str, jwt.PyJWK] = {}


NO_EXTERNAL_URL = (
    "This director mints no federation tokens until DIRECTOR_EXTERNAL_URL names it (or "
    "DIRECTOR_FEDERATION_DISCOVERY_URL the federation): the issuer of its tokens is a "
    "configured URL, never one taken from a request's Host"
)


DISCOVERY_DOCUMENT = "/.well-known/pelican-configuration"


def issuer_url(base: str) -> str:
    """This director as the federation issuer: the ``discovery_endpoint`` its own
    discovery document gives for ``base`` (its public URL: https, no ``:443``)."""
    return federation_url(base.rstrip("/"))


def configured_url(value: str) -> str:
    """A federation URL as Pelican's servers resolve their configuration of it
    (``config.GetFederation``): https when it names no scheme, ``:443`` dropped, no
    trailing slash; an http URL stays http (a test federation's)."""
    value = value.strip().rstrip("/")
    if not value:
        return ""
    if not value.startswith(("http://", "https://")):
        value = f"https://{value}"
    parts = urlsplit(value)
    netloc = parts.netloc.removesuffix(":443") if parts.port == 443 else parts.netloc
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def discovery_url() -> str:
    """DIRECTOR_FEDERATION_DISCOVERY_URL as the federation's servers know it (the URL of
    its document given, the document's base), or "" when the federation's discovery is
    this director's own."""
    url = configured_url(str(settings.DIRECTOR_FEDERATION_DISCOVERY_URL))
    return url.removesuffix(DISCOVERY_DOCUMENT)


def federation_issuer(base: str) -> str:
    """The ``iss`` of the tokens this director mints and accepts as the federation's: the
    federation's discovery URL when it lives elsewhere, else ``issuer_url(base)``
    ("" without a ``base``)."""
    return discovery_url() or (issuer_url(base) if base else "")


def jwks_url(base: str) -> str:
    """The ``jwks_uri`` discovery names: DIRECTOR_FEDERATION_JWKS_URL (the key set the
    federation publishes), else this director's own, which holds every key it signs
    with."""
    configured = configured_url(str(settings.DIRECTOR_FEDERATION_JWKS_URL))
    return configured or f"{issuer_url(base)}/.well-known/issuer.jwks"


def minting_issuer() -> str:
    """The ``iss`` of the tokens this director mints for its callers (getFedToken): the
    federation's discovery URL, else the issuer of DIRECTOR_EXTERNAL_URL, never one taken
    from a request's Host or forwarded headers. Without either, Refusal 503 (the caller
    may ask another director)."""
    issuer = federation_issuer(str(settings.DIRECTOR_EXTERNAL_URL))
    if not issuer:
        raise Refusal(503, NO_EXTERNAL_URL)
    return issuer


def longest_automatic_lifetime() -> float:
    """The longest lifetime of a token this director mints by itself."""
    return max(
        float(settings.DIRECTOR_FED_TOKEN_LIFETIME),
        HEALTH_TEST_TOKEN_LIFETIME,
        DISCOVERY_TOKEN_LIFETIME,
    )


def create_key(activates_at: dt.datetime) -> IssuerKey:
    """A new key, stored encrypted when a passphrase is configured (``keystore``)."""
    private = keys.generate_private_key()
    return IssuerKey.objects.create(
        kid=keys.public_jwk(private)["kid"],
        private_pem=keystore.seal(private),
        activates_at=activates_at,
    )


def _rows(refresh: bool = False) -> tuple[IssuerKey, ...]:
    """The key rows, oldest first, read at most every KEY_REFRESH_SECONDS; the first key
    is made here when there is none."""
    global _loaded
    now = time.monotonic()
    if not refresh and _loaded is not None and now - _loaded.read_at < KEY_REFRESH_SECONDS:
        return _loaded.rows
    rows = tuple(IssuerKey.objects.order_by("activates_at", "pk"))
    if not rows:
        with transaction.atomic():
            if not IssuerKey.objects.exists():
                logger.info("federation issuer: made its first signing key")
                create_key(timezone.now())
        rows = tuple(IssuerKey.objects.order_by("activates_at", "pk"))
    _loaded = _Loaded(rows, now)
    return rows


def forget() -> None:
    """Read the keys again at the next use (tests, and after ``rotatekey`` here)."""
    global _loaded
    _loaded = None


def _private_key(row: IssuerKey) -> ec.EllipticCurvePrivateKey:
    key = _private.get(row.kid)
    if key is None:
        key = _private[row.kid] = keystore.unseal(row.private_pem, row.kid)
    return key


def _signing_row(rows: Sequence[IssuerKey], now: dt.datetime) -> IssuerKey:
    active = [row for row in rows if row.activates_at <= now]
    return active[-1] if active else rows[0]


def published_rows(rows: Sequence[IssuerKey], now: dt.datetime) -> list[IssuerKey]:
    """The keys a verifier may still need: the signing key, keys waiting to sign, and
    retired keys while a token they signed may be valid (its lifetime and the 60 s
    leeway after the key that replaced them started signing, or after ``signed_until``)."""
    signing = _signing_row(rows, now)
    margin = dt.timedelta(seconds=longest_automatic_lifetime() + tokens.LEEWAY_SECONDS)
    leeway = dt.timedelta(seconds=tokens.LEEWAY_SECONDS)
    published = []
    for index, row in enumerate(rows):
        if row.activates_at > now or row is signing:
            published.append(row)
            continue
        successor = next((later for later in rows[index + 1 :] if later.activates_at <= now), None)
        if successor is None:
            published.append(row)
            continue
        keep_until = successor.activates_at + margin
        if row.signed_until is not None:
            keep_until = max(keep_until, row.signed_until + leeway)
        if now < keep_until:
            published.append(row)
    return published


def signer() -> Signer:
    """The key that signs now."""
    row = _signing_row(_rows(), timezone.now())
    return Signer(row.kid, _private_key(row))


def jwks() -> dict[str, list[dict[str, str]]]:
    """The federation JWKS: the public part of every published key (the rows read now:
    a key just added by ``rotatekey`` is published at once)."""
    rows = published_rows(_rows(refresh=True), timezone.now())
    return {"keys": [keys.public_jwk(_private_key(row)) for row in rows]}


def verification_keys(kid: str = "") -> dict[str, jwt.PyJWK]:
    """The published keys as PyJWK by kid; read again when ``kid`` is not among them."""
    rows = _rows()
    if kid and kid not in {row.kid for row in rows}:
        rows = _rows(refresh=True)
    published = published_rows(rows, timezone.now())
    for row in published:
        if row.kid not in _public:
            _public[row.kid] = jwt.PyJWK(keys.public_jwk(_private_key(row)))
    return {row.kid: _public[row.kid] for row in published}


def verify_federation_token(token: str, issuer: str, scope: str) -> dict[str, object]:
    """The claims of a token this federation issued (``iss`` = ``issuer``, a published
    key's signature, ``scope`` among its scopes). Raises TokenRejected."""
    claims = tokens.verify(token, verification_keys(tokens.unverified_kid(token)))
    if claims.get("iss") != issuer:
        raise tokens.TokenRejected(
            f'failed to validate token claims: "iss" is {claims.get("iss")!r}, not {issuer!r}'
        )
    if not tokens.has_scope(claims, scope):
        raise tokens.TokenRejected(f"the token lacks the scope {scope}")
    return claims


def rotate(delay: float, now: dt.datetime | None = None) -> tuple[IssuerKey, list[str]]:
    """Add the next signing key, signing ``delay`` seconds from now (published at once);
    delete keys no longer published. Returns the new key and the kids deleted."""
    moment = now or timezone.now()
    with transaction.atomic():
        if not IssuerKey.objects.exists():
            create_key(moment)
        new = create_key(moment + dt.timedelta(seconds=max(0.0, delay)))
        rows = list(IssuerKey.objects.order_by("activates_at", "pk"))
        kept = {row.pk for row in published_rows(rows, moment)}
        gone = [row.kid for row in rows if row.pk not in kept]
        IssuerKey.objects.filter(kid__in=gone).delete()
    forget()
    return new, gone


def note_signed_until(kid: str, expires_at: dt.datetime) -> None:
    """Keep key ``kid`` published until ``expires_at`` (a token an operator minted)."""
    IssuerKey.objects.filter(kid=kid).exclude(signed_until__gte=expires_at).update(
        signed_until=expires_at
    )


@dataclass(frozen=True)
class Imported:
    added: list[str]  # kids stored now
    present: list[str]  # kids already stored: left as they were
    signing: str  # the kid that signs from now on ("" when nothing was added)
    withdrawn: list[str]  # kids that were waiting to sign, removed


def import_keys(
    private_keys: Sequence[ec.EllipticCurvePrivateKey], now: dt.datetime | None = None
) -> Imported:
    """Store a federation's existing issuer keys (sealed as every key is: ``keystore``),
    so that what this director signs verifies against the key set the federation
    already publishes. The first key not stored yet signs from ``now``; the other new
    ones are published behind it; keys that were waiting to sign (``rotatekey``) are
    removed, as the federation does not publish them. Keys already stored change
    nothing. All or nothing; KeyStoreError when a key cannot be sealed."""
    moment = now or timezone.now()
    unique: dict[str, ec.EllipticCurvePrivateKey] = {}
    for key in private_keys:
        unique.setdefault(keys.public_jwk(key)["kid"], key)
    sealed = {kid: keystore.seal(key) for kid, key in unique.items()}
    with transaction.atomic():
        stored = set(IssuerKey.objects.filter(kid__in=list(unique)).values_list("kid", flat=True))
        added = [kid for kid in unique if kid not in stored]
        withdrawn: list[str] = []
        if added:
            waiting = IssuerKey.objects.filter(activates_at__gt=moment)
            withdrawn = list(waiting.order_by("activates_at").values_list("kid", flat=True))
            waiting.delete()
            # The signing key activates last; the others just before it, in their order.
            for position, kid in enumerate(added):
                IssuerKey.objects.create(
                    kid=kid,
                    private_pem=sealed[kid],
                    activates_at=moment - dt.timedelta(milliseconds=position),
                )
    if added:
        logger.info("federation issuer: imported keys %s; %s signs", added, added[0])
        forget()
    present = [kid for kid in unique if kid in stored]
    return Imported(added, present, added[0] if added else "", withdrawn)
