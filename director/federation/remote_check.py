"""Advertise tokens verified against an external Pelican registry (issue 19 items 1-2;
reference pelican-registry-swap.md 3.1-3.4 and 7), through the one bounded and cached
client ``director.federation.external.registry_client()``.

``RemoteCheck`` answers, per prefix, what ``advertise.TokenCheck`` answers from our own
tables, in this order: the prefix's keys (``key_set(P, kid)``: a kid missing from the
cached set is fetched again at once), the signature with the token's kid, the token's
binding to this director, the registry's approval (``approved(P)``: a 404 is not
approval), the ``pelican.advertise`` scope. Where the registry serves no keys for the
prefix (unknown, or pending while approval is required), the approval is asked first so
that the answer is Pelican's (``approval_error`` for a pending prefix).

Failures of the registry are not the sender's: ``bounded`` turns them, and an ad whose
registry calls take more than ``AD_DEADLINE`` seconds together, into 503 with
``Retry-After`` (Pelican's servers retry it within seconds), never 403 and never a hang.
A server whose keys and approval are cached is accepted meanwhile (the client serves
them stale).

The auth step (``authenticate``) runs before the ad is parsed: the token's kid and its
unverified binding (audience, lifetime, expiry) first, without asking anyone; then a
token that verifies with a key it was verified with before (``KNOWN_KIDS``, written only
after a signature verified) is taken before the body is read. Any other token is verified
against the keys of the prefix the body names (``peek``: the raw JSON's
``registry-prefix``, ``name`` and namespace paths, read but not validated), because
nothing else names it: a Pelican server's ``iss`` is its own web URL, and the request
path names only the kind. A token that fails with the remembered key is not refused on
that alone: a kid is not bound to one key (another registration may hold a key with the
same kid), and refusing there would let one registrant lock another out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import gevent
import jwt
from cachetools import LRUCache

from director.remote.registry import RegistryClient, RegistryRefused, RegistryUnavailable
from director.trust import keys, tokens
from director.wire.errors import Refusal

AD_DEADLINE = 4.0  # seconds for every registry call of one request together
NAME_DEADLINE = 1.0  # seconds the registered-name lookup may add (fail closed after)
# kid -> the key set the registry served that holds it (the auth step's pre-body check).
KNOWN_KIDS: LRUCache[str, keys.KeySet] = LRUCache(maxsize=10_000)


class Bound(Protocol):
    def problem(self, claims: dict[str, Any], prefix: str = "") -> str: ...


@dataclass
class Verdict:
    """How one token fares against one prefix: ``problem`` (a verification error),
    ``unapproved`` or ``scoped`` (has pelican.advertise)."""

    problem: str = ""
    unapproved: bool = False
    scoped: bool = False


def retry_later(message: str, seconds: int) -> Refusal:
    return Refusal(503, message, header_lines=(("Retry-After", str(seconds)),))


@contextmanager
def bounded(client: RegistryClient, seconds: float = AD_DEADLINE) -> Iterator[None]:
    """Registry calls made inside end within ``seconds`` together; a registry that cannot
    be asked, or does not answer in time, is a 503 with Retry-After. A fetch cut short
    here goes on in the client's own greenlet, for the next ad."""
    timeout = gevent.Timeout(seconds)
    timeout.start()
    try:
        yield
    except RegistryUnavailable as failed:
        raise retry_later(failed.message, failed.retry_after) from None
    except gevent.Timeout as fired:
        if fired is not timeout:
            raise
        raise retry_later(
            f"The registry at {client.base_url} did not answer within {seconds:g} s",
            RegistryUnavailable.retry_after,
        ) from None
    finally:
        timeout.close()


class SignedOnce:
    """An advertise token whose signature is checked once per distinct key (a key set's
    thumbprint), however many prefixes share that key: the one rule of both checks, this
    director's tables (``advertise.TokenCheck``) and the external registry's
    (``RemoteCheck``)."""

    KEYS_OF = "the key set"  # how a refusal names where the kid was looked for

    def __init__(self, token: str) -> None:
        self.token = token
        try:
            self.kid, self.kid_problem = tokens.unverified_kid(token), ""
        except tokens.TokenRejected as rejected:
            self.kid, self.kid_problem = "", str(rejected)
        self._by_key: dict[str, dict[str, Any] | str] = {}  # thumbprint -> claims or error

    def _claims(self, key_set: keys.KeySet) -> dict[str, Any] | str:
        key_print = key_set.prints.get(self.kid)
        if key_print is None:
            return (
                f'failed to verify token signature: no key with kid "{self.kid}" in {self.KEYS_OF}'
            )
        if key_print not in self._by_key:
            try:
                self._by_key[key_print] = tokens.verify(
                    self.token, {self.kid: key_set.keys[self.kid]}
                )
            except tokens.TokenRejected as rejected:
                self._by_key[key_print] = str(rejected)
        return self._by_key[key_print]


class RemoteCheck(SignedOnce):
    """One advertise token against the registry's keys of several prefixes; the
    signature is checked once per distinct key."""

    KEYS_OF = "the key set the registry serves for this prefix"

    def __init__(self, client: RegistryClient, token: str, bound: Bound) -> None:
        super().__init__(token)
        self.client = client
        self.bound = bound

    def load(self, prefixes: object) -> None:
        """Nothing to preload: each prefix is asked of the client's caches."""

    def _approval(self, prefix: str) -> Verdict | None:
        """None when approved; else the verdict (unapproved, or unknown to the registry)."""
        try:
            approved = self.client.approved(prefix)
        except RegistryRefused as unknown:
            return Verdict(problem=f"failed to check namespace approval status: {unknown.message}")
        return None if approved else Verdict(unapproved=True)

    def verdict(self, prefix: str, server_prefix: str = "") -> Verdict:
        """How the token fares against ``prefix`` at the registry; its ``iss`` is checked
        against ``server_prefix`` (default ``prefix``). Raises RegistryUnavailable."""
        if self.kid_problem:
            return Verdict(problem=self.kid_problem)
        try:
            key_set = self.client.key_set(prefix, self.kid)
        except RegistryRefused as refused:
            # No keys served (unknown, or pending while approval is required): Pelican's
            # answer is the approval's.
            return self._approval(prefix) or Verdict(
                problem=f"the registry serves no keys for {prefix}: {refused.message}"
            )
        claims = self._claims(key_set)
        if isinstance(claims, str):
            return Verdict(problem=claims)
        KNOWN_KIDS[self.kid] = key_set  # its signature verified with this set's key
        problem = self.bound.problem(claims, server_prefix or prefix)
        if problem:
            return Verdict(problem=problem)
        return self._approval(prefix) or Verdict(scoped=tokens.has_scope(claims, tokens.ADVERTISE))


def unverified_problem(token: str, bound: Bound) -> str:
    """What is wrong with the token before any key is looked at (its kid; its ``aud``,
    lifetime and expiry, unverified), or "": checked first, so that a token that could
    never pass costs no registry request."""
    try:
        tokens.unverified_kid(token)
        unverified = jwt.decode(token, options={"verify_signature": False})
    except tokens.TokenRejected as rejected:
        return str(rejected)
    except jwt.PyJWTError as error:
        return f"failed to verify token signature: {error}"
    return bound.problem(unverified) if isinstance(unverified, dict) else "no claims"


def _refused(problem: str) -> Refusal:
    return Refusal(403, f"Authorization token verification failed {problem}")


def authenticate(
    client: RegistryClient,
    token: str,
    bound: Bound,
    verify_ad: Callable[[dict[str, Any]], object],
    peek: Callable[[], dict[str, Any]],
) -> None:
    """The auth step in external mode (see the module doc). ``peek`` reads the request's
    JSON body without validating it; ``verify_ad`` verifies what it names (the server
    prefix, then an origin's namespaces). Raises Refusal (403, 503 + Retry-After)."""
    problem = unverified_problem(token, bound)
    if problem:
        raise _refused(problem)
    kid = tokens.unverified_kid(token)
    known = KNOWN_KIDS.get(kid)
    if known is not None and kid in known.keys:
        try:
            claims = tokens.verify(token, {kid: known.keys[kid]})
        except tokens.TokenRejected:
            claims = None  # maybe another registration's key with this kid: the full check
        if claims is not None:
            problem = bound.problem(claims)
            if problem:
                raise _refused(problem)
            return
    verify_ad(peek())  # bounded by the registry deadline itself (``bounded``)


def name_authorized(client: RegistryClient, prefix: str, name: str) -> bool:
    """Whether the ad's ``name`` is the name registered under ``prefix`` (reference 3.4):
    only then do its downtimes and shutdown status count. Fails closed: an unknown
    prefix, a registry that cannot be asked or does not answer within NAME_DEADLINE."""
    timeout = gevent.Timeout(NAME_DEADLINE)
    timeout.start()
    try:
        return client.server_name(prefix) == name
    except (RegistryRefused, RegistryUnavailable):
        return False
    except gevent.Timeout as fired:
        if fired is not timeout:
            raise
        return False
    finally:
        timeout.close()


def unapproved_prefixes(client: RegistryClient, prefixes: set[str]) -> set[str]:
    """Which of ``prefixes`` the registry no longer approves (or does not know), for
    ``discoverServers``; a prefix it cannot be asked about now stays (its server was
    verified when it advertised, and its ad lapses within DIRECTOR_AD_TTL)."""
    gone: set[str] = set()
    timeout = gevent.Timeout(AD_DEADLINE)
    timeout.start()
    try:
        for prefix in sorted(prefixes):
            try:
                if not client.approved(prefix):
                    gone.add(prefix)
            except RegistryRefused:
                gone.add(prefix)
            except RegistryUnavailable:
                continue
    except gevent.Timeout as fired:
        if fired is not timeout:
            raise
    finally:
        timeout.close()
    return gone
