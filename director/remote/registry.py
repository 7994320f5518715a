"""Pelican's registry, asked as Pelican's director asks it (reference
``pelican-registry-swap.md`` sections 2-3), with the bounds and caches of its section 7.

``RegistryClient(base_url)`` offers one method per call of Pelican's director:

=====================  ==============================================  ======================
method                 request(s)                                      cache
=====================  ==============================================  ======================
``key_set(P, kid)``    GET registry<P>/.well-known/openid-configuration  15 min per prefix; a
                       (404: ``<issuer>/.well-known/issuer.jwks``),    kid not in the set
                       then GET ``jwks_uri`` (on the registry's host)  refetches, <= 1 per 10 s
``approved(P)``        POST registry/checkNamespaceStatus              45 s, stale while failing
``server_name(P)``     GET registry/server<P>                          10 min
``allowed_prefixes``   GET registry/caches/allowedPrefixes             none: the poller keeps it
``downtimes()``        GET downtime                                    none: the poller keeps it
=====================  ==============================================  ======================

Negative answers (unknown prefix, ``approved:false``, an unusable key set) are kept a
few seconds only; a failed call is not repeated for the same prefix within a second (the
last good value, or the failure, is answered meanwhile). Two kinds of failure, for the
caller to answer differently:

- ``RegistryRefused``: the registry said no (unknown prefix, not approved by the
  registry's key route, an unusable key set): a 403 to the advertiser.
- ``RegistryUnavailable``: the registry could not be asked (timeout, refused connection,
  5xx, garbage, a 404 to checkNamespaceStatus): a 503 with ``Retry-After``.

Both are ``Refusal``s with those statuses. ``approved`` answers False for a prefix the
registry has not approved (the caller builds Pelican's ``approval_error`` answer, which
names the server). ``status()`` is what health and metrics read.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

from director.remote.cache import CacheBusy, RemoteCache
from director.remote.http import Answer, HttpClient, RemoteError, url_problem
from director.trust.keys import KeySet, KeySetError, parse_key_set
from director.wire.errors import Refusal

V = TypeVar("V")
API = "/api/v1.0"
RETRY_AFTER = 2  # seconds a server is told to wait after a 503 (Pelican's default retry)
MAX_PREFIX_CHARS = 1024
ROUTES = (
    "openid-configuration",
    "issuer.jwks",
    "checkNamespaceStatus",
    "server",
    "allowedPrefixes",
    "downtime",
)
# What a prefix may hold in a URL path as it is (RFC 3986 pchar, and "/").
_PATH_SAFE = "/:@!$&'()*+,;=-._~"


class RegistryRefused(Refusal):
    """The registry said no to this prefix; ``message`` says what, for the sender."""

    def __init__(self, message: str) -> None:
        super().__init__(403, message)


class RegistryUnavailable(Refusal):
    """The registry could not be asked; ``reason`` is short (for logs and health)."""

    retry_after = RETRY_AFTER

    def __init__(self, base_url: str, reason: str) -> None:
        super().__init__(503, f"The registry at {base_url} cannot be asked now: {reason}")
        self.reason = reason


class KeysNotRefreshedYet(RegistryUnavailable):
    """A token's ``kid`` is not in the prefix's cached key set, and the set was fetched
    again too recently to fetch it once more (forged kids must not hammer the registry).
    A key rotated at the registry a moment ago is the likely cause: 503 with the seconds
    until the next refetch, so a Pelican server retries then (a 403 would make it wait a
    whole advertisement interval)."""

    def __init__(self, base_url: str, prefix: str, seconds: float) -> None:
        Refusal.__init__(
            self,
            503,
            f"The token's key is not among the keys the registry at {base_url} served for "
            f"{prefix}; they are fetched again in {seconds:.0f} s",
        )
        self.reason = "key set refreshed recently"
        self.retry_after = max(1, math.ceil(seconds))


@dataclass(frozen=True)
class RegistryTiming:
    """The bounds and cache lifetimes, in seconds (reference section 7)."""

    connect_timeout: float = 1.0
    deadline: float = 2.5  # one total deadline per call (key_set: for both of its requests)
    max_bytes: int = 1024 * 1024
    key_ttl: float = 15 * 60
    kid_refetch_interval: float = 10.0
    approval_ttl: float = 45.0
    server_name_ttl: float = 10 * 60
    negative_ttl: float = 5.0
    max_stale: float = 15 * 60  # the oldest good value served while the registry fails
    retry_after_failure: float = 1.0  # a failed call is not repeated sooner, per prefix
    capacity: int = 10_000


@dataclass
class RouteCounters:
    """Per registry route: requests sent, errors (no usable answer), cache hits, and the
    latency of the answers."""

    requests: int = 0
    errors: int = 0
    cache_hits: int = 0
    latency_sum: float = 0.0
    latency_count: int = 0


@dataclass(frozen=True)
class RegistryStatus:
    """The registry as health sees it: reachable (the last exchange got an answer that was
    not a server error), the last error and when (times from the client's ``now``)."""

    url: str
    reachable: bool
    last_ok_at: float | None
    last_error: str | None
    last_error_at: float | None
    routes: dict[str, RouteCounters] = field(default_factory=dict)


def prefix_problem(prefix: str) -> str | None:
    """Why ``prefix`` cannot name a registry path: it must be absolute, with no empty,
    ``.`` or ``..`` component and nothing a URL would read as a query or fragment."""
    if not prefix.startswith("/") or len(prefix) > MAX_PREFIX_CHARS:
        return f"{prefix[:100]!r} is not an absolute prefix"
    components = prefix.split("/")[1:]
    if any(part in ("", ".", "..") for part in components):
        return f"{prefix[:100]!r} has an empty, '.' or '..' component"
    if any(ord(char) < 0x21 or char in "?#%\\" for char in prefix):
        return f"{prefix[:100]!r} holds a character a prefix may not hold"
    return None


def _origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.scheme, (parts.hostname or "").lower(), port


class RegistryClient:
    """Pelican's registry at ``base_url`` (its ``Federation.RegistryUrl``)."""

    def __init__(
        self,
        base_url: str,
        *,
        timing: RegistryTiming | None = None,
        now: Callable[[], float] = time.monotonic,
        http: HttpClient | None = None,
    ) -> None:
        problem = url_problem(base_url)
        if problem is not None:
            raise ValueError(f"registry URL: {problem}")
        self.base_url = base_url.rstrip("/")
        self.timing = timing or RegistryTiming()
        self._now = now
        self.http = http or HttpClient(
            connect_timeout=self.timing.connect_timeout,
            deadline=self.timing.deadline,
            max_bytes=self.timing.max_bytes,
        )
        self.routes = {route: RouteCounters() for route in ROUTES}
        self._reachable = True
        self._last_ok_at: float | None = None
        self._last_error: str | None = None
        self._last_error_at: float | None = None
        t = self.timing
        wait = t.deadline + 1.0  # a fetch ends within its deadline; the waiters a bit later
        common: dict[str, Any] = {
            "negative_ttl": t.negative_ttl,
            "max_stale": t.max_stale,
            "wait": wait,
            "now": now,
            "refusals": (RegistryRefused,),
            "failures": (RegistryUnavailable,),
            "capacity": t.capacity,
            "retry_after_failure": t.retry_after_failure,
        }
        self._keys: RemoteCache[KeySet] = RemoteCache(
            "registry keys",
            ttl=t.key_ttl,
            refetch_interval=t.kid_refetch_interval,
            **common,
        )
        self._approvals: RemoteCache[bool] = RemoteCache(
            "registry approval",
            ttl=t.approval_ttl,
            negative=lambda approved: not approved,
            **common,
        )
        self._names: RemoteCache[str] = RemoteCache(
            "registry server names", ttl=t.server_name_ttl, **common
        )

    def close(self) -> None:
        for cache in (self._keys, self._approvals, self._names):
            cache.close()
        self.http.close()

    # -- URLs --------------------------------------------------------------------------
    def issuer_url(self, prefix: str) -> str:
        """``<registry>/api/v1.0/registry<P>``: the issuer of the prefix's keys."""
        return f"{self.base_url}{API}/registry{quote(self._checked(prefix), safe=_PATH_SAFE)}"

    def _checked(self, prefix: str) -> str:
        problem = prefix_problem(prefix)
        if problem is not None:
            raise RegistryRefused(f"Cannot ask the registry about {problem}")
        return prefix

    # -- the calls ---------------------------------------------------------------------
    def key_set(self, prefix: str, kid: str | None = None) -> KeySet:
        """The prefix's public keys as the registry serves them (EC keys only).

        When ``kid`` is given and not in the cached set, the set is fetched again at
        once, at most once per ``kid_refetch_interval`` per prefix; the caller's
        verification then finds the kid or not. Raises RegistryRefused (unknown prefix,
        not approved, an unusable key set, a ``jwks_uri`` off the registry's host) or
        RegistryUnavailable.
        """
        issuer = self.issuer_url(prefix)
        cached = self._keys.peek(prefix)
        force = kid is not None and cached is not None and kid not in cached.keys
        attempted = self._keys.state(prefix).attempted_at
        keys = self._cached(
            self._keys, "issuer.jwks", prefix, lambda: self._fetch_keys(issuer), force
        )
        if force and kid not in keys.keys:
            state = self._keys.state(prefix)
            if state.attempted_at == attempted and attempted is not None:
                # No refetch now: the last one was too recent.
                wait = attempted + self.timing.kid_refetch_interval - self._now()
                raise KeysNotRefreshedYet(self.base_url, prefix, wait)
            failed_last = (
                state.last_error_at is not None
                and state.attempted_at is not None
                and state.last_error_at >= state.attempted_at
            )
            if failed_last:  # the refetch that might have brought the kid failed
                raise RegistryUnavailable(self.base_url, state.last_error or "keys not refreshed")
        return keys

    def approved(self, prefix: str) -> bool:
        """Has the registry approved ``prefix`` (checkNamespaceStatus)? A 404 is NOT
        approval (Pelican's director takes it as one): RegistryUnavailable says the URL is
        not a registry that can approve. Unknown prefix: RegistryRefused."""
        self._checked(prefix)
        return self._cached(
            self._approvals, "checkNamespaceStatus", prefix, lambda: self._fetch_approval(prefix)
        )

    def server_name(self, prefix: str) -> str:
        """The name the server registered under ``prefix`` (``/origins/…``, ``/caches/…``),
        which gates its downtimes and shutdown status. Unknown: RegistryRefused."""
        url = f"{self.base_url}{API}/registry/server{quote(self._checked(prefix), safe=_PATH_SAFE)}"
        return self._cached(self._names, "server", prefix, lambda: self._fetch_name(prefix, url))

    def allowed_prefixes(self) -> dict[str, frozenset[str]]:
        """Registered cache name -> the namespace prefixes it may serve (a cache without
        an entry may serve anything). For a poller, which keeps the last good map."""
        url = f"{self.base_url}{API}/registry/caches/allowedPrefixes"
        value = self._json(
            self._ask("allowedPrefixes", "GET", url, expect=(200,)), "allowedPrefixes"
        )
        if not isinstance(value, dict) or not all(
            isinstance(prefixes, list) and all(isinstance(item, str) for item in prefixes)
            for prefixes in value.values()
        ):
            raise self._broken("allowedPrefixes", "allowedPrefixes is not {name: [prefix, ...]}")
        return {str(name): frozenset(prefixes) for name, prefixes in value.items()}

    def downtimes(self) -> list[dict[str, Any]]:
        """The registry's active and future downtimes, as it sends them (Pelican's
        ``Downtime`` objects). For a poller, which keeps the last good list."""
        url = f"{self.base_url}{API}/downtime"
        value = self._json(self._ask("downtime", "GET", url, expect=(200,)), "downtime")
        if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
            raise self._broken("downtime", "downtime is not a list of objects")
        return value

    def status(self) -> RegistryStatus:
        routes = {name: RouteCounters(**vars(counters)) for name, counters in self.routes.items()}
        return RegistryStatus(
            self.base_url,
            self._reachable,
            self._last_ok_at,
            self._last_error,
            self._last_error_at,
            routes,
        )

    # -- fetches (each runs once per cache miss, within one deadline) ------------------
    def _fetch_keys(self, issuer: str) -> KeySet:
        ends = time.monotonic() + self.timing.deadline
        answer = self._ask(
            "openid-configuration",
            "GET",
            f"{issuer}/.well-known/openid-configuration",
            expect=(200, 404),
        )
        if answer.status == 404:  # Pelican's fallback (its body is not read)
            jwks_uri = f"{issuer}/.well-known/issuer.jwks"
        else:
            document = self._json(answer, "openid-configuration")
            found = document.get("jwks_uri") if isinstance(document, dict) else None
            if not isinstance(found, str) or not found:
                raise self._broken("openid-configuration", f"no jwks_uri at {issuer}")
            jwks_uri = found
            if url_problem(jwks_uri) or _origin(jwks_uri) != _origin(self.base_url):
                raise RegistryRefused(
                    f"The registry's jwks_uri for {issuer} is {jwks_uri[:200]!r}, "
                    "not on the registry's own host: refused"
                )
        keys = self._ask(
            "issuer.jwks",
            "GET",
            jwks_uri,
            expect=(200,),
            deadline=ends - time.monotonic(),
            too_big_refused=True,
        )
        try:
            parsed = parse_key_set(keys.body)
        except KeySetError as error:
            raise RegistryRefused(f"The key set at {jwks_uri} is unusable: {error}") from None
        odd = [jwk.get("kty") for jwk in parsed.jwks if jwk.get("kty") != "EC"]
        if odd:
            raise RegistryRefused(
                f"The key set at {jwks_uri} holds a key of type {odd[0]!r}: only EC keys are used"
            )
        return parsed

    def _fetch_approval(self, prefix: str) -> bool:
        answer = self._ask(
            "checkNamespaceStatus",
            "POST",
            f"{self.base_url}{API}/registry/checkNamespaceStatus",
            json_body={"prefix": prefix},
            expect=(200,),
            unavailable=(404,),
        )
        value = self._json(answer, "checkNamespaceStatus")
        approved = value.get("approved") if isinstance(value, dict) else None
        if not isinstance(approved, bool):
            raise self._broken(
                "checkNamespaceStatus", 'checkNamespaceStatus is not {"approved":bool}'
            )
        return approved

    def _fetch_name(self, prefix: str, url: str) -> str:
        value = self._json(self._ask("server", "GET", url, expect=(200,)), "server")
        name = value.get("name") if isinstance(value, dict) else None
        if not isinstance(name, str):
            raise self._broken("server", f"the server record of {prefix} has no name")
        return name

    # -- the plumbing ------------------------------------------------------------------
    def _cached(
        self,
        cache: RemoteCache[V],
        route: str,
        key: str,
        fetch: Callable[[], V],
        force: bool = False,
    ) -> V:
        fetches = cache.counters.fetches
        try:
            return cache.get(key, fetch, force=force)
        except CacheBusy as busy:
            raise RegistryUnavailable(self.base_url, str(busy)) from None
        finally:
            if cache.counters.fetches == fetches:
                self.routes[route].cache_hits += 1

    def _ask(
        self,
        route: str,
        method: str,
        url: str,
        *,
        expect: tuple[int, ...],
        unavailable: tuple[int, ...] = (),
        json_body: dict[str, Any] | None = None,
        deadline: float | None = None,
        too_big_refused: bool = False,
    ) -> Answer:
        """One request; an answer whose status is in ``expect``, else RegistryRefused
        (a 4xx: the registry's message; a body over the cap when ``too_big_refused``) or
        RegistryUnavailable (no answer, a 5xx, or a status in ``unavailable``)."""
        counters = self.routes[route]
        counters.requests += 1
        try:
            answer = self.http.request(method, url, json_body=json_body, deadline=deadline)
        except RemoteError as error:
            if error.too_big and too_big_refused:
                counters.errors += 1
                raise RegistryRefused(f"The answer at {url} is refused: {error.reason}") from None
            raise self._broken(route, error.reason) from None
        counters.latency_sum += answer.latency
        counters.latency_count += 1
        if answer.status in expect:
            self._ok()
            return answer
        if answer.status in unavailable:
            raise self._broken(
                route,
                f"{route} answered {answer.status}: not a registry that can answer it "
                "(a 404 is not approval)",
            )
        if 400 <= answer.status < 500:
            self._ok()
            raise RegistryRefused(f"The registry refused ({answer.status}): {answer.message()}")
        raise self._broken(route, f"status {answer.status} from {route}: {answer.message()}")

    def _json(self, answer: Answer, route: str) -> Any:
        try:
            return answer.json()
        except RemoteError as error:
            raise self._broken(route, error.reason) from None

    def _ok(self) -> None:
        self._reachable = True
        self._last_ok_at = self._now()

    def _broken(self, route: str, reason: str) -> RegistryUnavailable:
        self.routes[route].errors += 1
        self._reachable = False
        self._last_error = f"{route}: {reason}"
        self._last_error_at = self._now()
        return RegistryUnavailable(self.base_url, reason)
