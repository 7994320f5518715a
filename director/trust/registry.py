"""The registry's rules (reference pelican-trust 1.2-1.4, 1.11): prefixes and the
key-possession challenge (key chaining and approval, which read the registrations, are
``director.federation.registry``'s).

Two differences from Pelican that its clients do not see (they echo the registry's
fields): the registry's signature covers ``client_nonce + server_nonce``, not the client
nonce alone, and the client nonce must be what Pelican's clients send (64 hex
characters), so what the registry's key signs is always 128 hex characters, never the
signing input of a JWT (which holds a ``.``). The registry stores each server nonce and
takes it once (``director.federation.challenges``); ``ChallengeBudget`` bounds how many
one address may ask for.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import jwt
from cachetools import TTLCache
from cryptography.hazmat.primitives.asymmetric import ec

from director.trust.keys import KeySet, sign_payload, verify_payload
from director.wire.types import ServerKind

ORIGIN_PREFIX = "/origins/"
CACHE_PREFIX = "/caches/"
NAMESPACE = "namespace"  # the registration kind of a prefix that is not a server's
NONCE_BYTES = 32
NONCE = re.compile(r"[0-9a-fA-F]{64}")


class PrefixError(ValueError):
    """A prefix that may not be registered; the message is Pelican's."""


def is_origin_prefix(prefix: str) -> bool:
    return prefix.startswith(ORIGIN_PREFIX)


def is_cache_prefix(prefix: str) -> bool:
    return prefix.startswith(CACHE_PREFIX)


def is_server_prefix(prefix: str) -> bool:
    return is_origin_prefix(prefix) or is_cache_prefix(prefix)


def registration_kind(prefix: str) -> str:
    """A server kind (``ServerKind``, by the prefix's first segment), else ``NAMESPACE``."""
    if is_cache_prefix(prefix):
        return ServerKind.CACHE
    if is_origin_prefix(prefix):
        return ServerKind.ORIGIN
    return NAMESPACE


def accepted(prefix: str, status: str, *, require_origin: bool, require_cache: bool) -> bool:
    """May a registration advertise? ``denied``: never. Otherwise ``approved``, or pending
    where approval is not required for its kind (caches by the cache flag, origins and
    namespaces by the origin flag). The one rule, for every caller."""
    if status == "denied":
        return False
    required = require_cache if registration_kind(prefix) == ServerKind.CACHE else require_origin
    return status == "approved" or not required


def validate_prefix(path: str) -> str:
    """The prefix cleaned of empty components (a trailing slash), or PrefixError with
    Pelican's message (``registry_validation.go`` validatePrefix)."""
    if not path:
        raise PrefixError("Path prefix may not be empty")
    if path[0] != "/":
        raise PrefixError("Path prefix must be absolute - relative paths are not allowed")
    components = path.split("/")[1:]
    first = components[0] if components else ""
    if first in ("api", "view", "pelican"):
        raise PrefixError(f"Cannot register a prefix starting with '/{first}'")
    result = ""
    for component in components:
        if not component:
            continue
        if component == ".":
            raise PrefixError("Path component cannot be '.'")
        if component == "..":
            raise PrefixError("Path component cannot be '..'")
        if component.startswith("."):
            raise PrefixError("Path component cannot begin with a '.'")
        result += "/" + component
    if not result:
        raise PrefixError("Cannot register the prefix '/'")
    if path == ORIGIN_PREFIX:
        raise PrefixError("Origin prefix is missing hostname")
    if path == CACHE_PREFIX:
        raise PrefixError("Cache prefix is missing sitename")
    if is_cache_prefix(path) and is_cache_prefix("/" + path[len(CACHE_PREFIX) :]):
        raise PrefixError(f"Duplicated cache prefix {path}")
    if is_origin_prefix(path) and is_origin_prefix("/" + path[len(ORIGIN_PREFIX) :]):
        raise PrefixError(f"Duplicated origin prefix {path}")
    return result


def new_nonce() -> str:
    """32 random bytes in hex, as Pelican's nonces."""
    return secrets.token_hex(NONCE_BYTES)


def is_nonce(value: str) -> bool:
    """True for a nonce as Pelican's clients make them: 64 hex characters."""
    return NONCE.fullmatch(value) is not None


class ChallengeBudget:
    """At most ``per_minute`` challenges per client address in each minute from its first,
    for at most ``addresses`` addresses at once (the least recently seen are forgotten
    first: a flood from many addresses is bounded by the stored challenges' cap instead).
    ``clock`` is seconds (``time.monotonic`` unless a test moves it)."""

    WINDOW = 60.0

    def __init__(
        self,
        per_minute: int,
        addresses: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_minute = per_minute
        self.clock = clock
        self._windows: TTLCache[str, tuple[float, int]] = TTLCache(
            maxsize=addresses, ttl=self.WINDOW, timer=clock
        )

    def take(self, address: str) -> bool:
        """Count one challenge for ``address``; False when its minute's budget is spent."""
        now = self.clock()
        started, used = self._windows.get(address, (now, 0))
        if now - started >= self.WINDOW:
            started, used = now, 0
        if used >= self.per_minute:
            return False
        self._windows[address] = (started, used + 1)
        return True


@dataclass(frozen=True)
class Challenge:
    server_nonce: str
    client_nonce: str
    server_payload: str
    server_signature: str

    def as_json(self) -> dict[str, str]:
        return {
            "server_nonce": self.server_nonce,
            "client_nonce": self.client_nonce,
            "server_payload": self.server_payload,
            "server_signature": self.server_signature,
        }


def challenge(registry_key: ec.EllipticCurvePrivateKey, client_nonce: str) -> Challenge:
    """The answer to a challenge init: a fresh server nonce, signed with the client's
    (a nonce of 64 hex characters: ``is_nonce``, checked here too)."""
    if not is_nonce(client_nonce):
        raise ValueError("the client nonce must be 64 hex characters")
    server_nonce = new_nonce()
    payload = (client_nonce + server_nonce).encode()
    return Challenge(server_nonce, client_nonce, payload.hex(), sign_payload(registry_key, payload))


def registry_signed(
    registry_keys: list[jwt.PyJWK],
    client_nonce: str,
    server_nonce: str,
    server_payload: str,
    server_signature: str,
) -> bool:
    """True when the echoed payload is ``client_nonce + server_nonce`` signed by one of
    this registry's keys (the current one, or one it signed with before a rotation)."""
    expected = (client_nonce + server_nonce).encode()
    if server_payload.lower() != expected.hex():
        return False
    return any(verify_payload(key, expected, server_signature) for key in registry_keys)


def client_signed(
    key_set: KeySet, client_nonce: str, server_nonce: str, client_signature: str
) -> bool:
    """True when the first key of ``key_set`` signed ``client_nonce + server_nonce``."""
    first = key_set.keys[key_set.first()["kid"]]
    return verify_payload(first, (client_nonce + server_nonce).encode(), client_signature)


def signed_by_any(key_set: KeySet, client_nonce: str, server_nonce: str, signature: str) -> bool:
    """True when any key of ``key_set`` signed ``client_nonce + server_nonce``."""
    payload = (client_nonce + server_nonce).encode()
    return any(verify_payload(key, payload, signature) for key in key_set.keys.values())


# --- key chaining: which registrations a new prefix nests in or around ------------------------


def ancestors(prefix: str) -> list[str]:
    """The prefixes above ``prefix``, by path component, shortest first."""
    parts = prefix.strip("/").split("/")
    return ["/" + "/".join(parts[:length]) for length in range(1, len(parts))]


def nearest_enclosing(prefix: str, registered: Iterable[str]) -> str | None:
    """The longest of ``registered`` that ``prefix`` is inside, or None."""
    above = set(ancestors(prefix))
    inside_of = [other for other in registered if other in above]
    return max(inside_of, key=len, default=None)


def top_level_inside(prefix: str, registered: Iterable[str]) -> list[str]:
    """The ``registered`` prefixes inside ``prefix`` with no other one of them between
    them and ``prefix`` (the ones a registration of ``prefix`` would directly enclose)."""
    below = {other for other in registered if other.startswith(prefix.rstrip("/") + "/")}
    return sorted(other for other in below if not any(above in below for above in ancestors(other)))
