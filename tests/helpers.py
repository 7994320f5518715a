"""Builders shared by the tests (fixtures stay in conftest.py)."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, NamedTuple

import gevent
from django.utils import timezone
from gevent.event import Event
from mmdb_writer import MMDBWriter
from netaddr import IPSet
from processes import PUBLIC_CAPS

from director import registry
from director.demo.fileserver import FileServer
from director.models import Namespace, Server, Source, StatSettings
from director.presence import presence_of
from director.presence import stat_config as stat_config_for
from director.selection import Presence
from director.snapshot import DEFAULT_SETTINGS, NamespaceView, ServerView
from director.stat import Outcome, PoolState, StatConfig, StatEngine, StatResult, StatTarget
from director.wire import healthfiles

ORIGIN_UA = "pelican-origin/7.20.0"
CACHE_UA = "pelican-cache/7.20.0"


def stat_config(**overrides: Any) -> StatConfig:
    """The stat engine's configuration under the default settings, with ``overrides``."""
    return replace(stat_config_for(DEFAULT_SETTINGS), **overrides)


def caps(**flags: bool) -> dict[str, bool]:
    """Wire capabilities, e.g. caps(PublicRead=True, Read=True)."""
    base = dict.fromkeys(PUBLIC_CAPS, False)
    base.update(flags)
    return base


def namespace_ad(path: str, **extra: Any) -> dict[str, Any]:
    """A NamespaceAd; public readable unless ``Caps`` is given."""
    return {"Caps": extra.pop("Caps", PUBLIC_CAPS), "path": path, **extra}


def make_ad(
    name: str,
    kind: str,
    data_url: str,
    namespaces: list[dict[str, Any]] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """A Pelican advertisement body with a ten-minute expiry."""
    now = timezone.now()
    ad: dict[str, Any] = {
        "name": name,
        "registry-prefix": f"/{kind}s/{name}",
        "data-url": data_url,
        "web-url": data_url,
        "capabilities": PUBLIC_CAPS,
        "namespaces": namespaces if namespaces is not None else [namespace_ad("/test")],
        "status": "ok",
        "version": "7.20.0",
        "now": now.isoformat(),
        "expiry": (now + dt.timedelta(minutes=10)).isoformat(),
    }
    ad.update(fields)
    return ad


def configure_director(**overrides: Any) -> StatSettings:
    """Save the settings row (start-up grace off unless given) and rebuild the snapshot."""
    row = StatSettings.load()
    row.startup_grace = 0.0
    for name, value in overrides.items():
        setattr(row, name, value)
    row.full_clean()
    row.save()
    registry.rebuild()
    return row


def create_server(
    name: str,
    kind: str,
    data_url: str,
    namespaces: dict[str, dict[str, bool]] | None = None,
    *,
    rebuild: bool = True,
    **fields: Any,
) -> Server:
    """An admin-defined server with namespaces {path: capability fields}, via the ORM."""
    capability_fields = {
        key: fields.pop(key)
        for key in ("public_reads", "reads", "writes", "listings", "direct_reads", "copies")
        if key in fields
    }
    server = Server.objects.create(
        name=name,
        kind=kind,
        data_url=data_url,
        source=Source.ADMIN,
        **({"public_reads": True, "reads": True} | capability_fields),
        **fields,
    )
    for path, ns_caps in (namespaces or {"/test": {}}).items():
        Namespace.objects.create(
            server=server, path=path, **({"public_reads": True, "reads": True} | ns_caps)
        )
    if rebuild:
        registry.rebuild()
    return server


# --- the routing seam (test_routing*.py, test_selection_adaptive.py) -------------------------


class AvailabilityCall(NamedTuple):
    """One call of the availability seam, as names (equal to the plain tuple)."""

    servers: list[str]
    path: str
    namespace: str
    token: str
    deadline: float


class FakeAvailability:
    """routing's availability seam (``director.routing.Availability``): records every call.

    It answers either a fixed map of presences, returned as given (``FakeAvailability({...})``),
    or, built with ``FakeAvailability.statting({...})``, StatResults mapped through
    ``presence_of`` as the stat engine's results are, for each server asked about (a server
    without a result timed out).
    """

    def __init__(
        self,
        answers: Mapping[str, Presence] | None = None,
        *,
        results: Mapping[str, StatResult] | None = None,
    ) -> None:
        self.answers = dict(answers or {})
        self.results = dict(results) if results is not None else None
        self.calls: list[AvailabilityCall] = []

    @classmethod
    def statting(cls, results: Mapping[str, StatResult] | None = None) -> FakeAvailability:
        return cls(results=results or {})

    @property
    def asked(self) -> list[tuple[list[str], str]]:
        """(server names, token) of each call."""
        return [(call.servers, call.token) for call in self.calls]

    def __call__(
        self,
        servers: Sequence[ServerView],
        path: str,
        namespace: NamespaceView,
        token: str,
        deadline: float,
    ) -> Mapping[str, Presence]:
        self.calls.append(
            AvailabilityCall([s.name for s in servers], path, namespace.path, token, deadline)
        )
        if self.results is None:
            return self.answers
        return {
            s.name: presence_of(s, self.results.get(s.name, StatResult(Outcome.TIMEOUT)))
            for s in servers
        }


# --- the stat engine (tests/test_stat_*.py) and other clocks ------------------------------------


# "At once", measured on the wall clock of a machine that may be busy: well under the
# shortest wait (deadline, timeout) that the behaviour under test must not have waited.
AT_ONCE = 0.5


class FakeClock:
    """A monotonic clock that moves only when told (binary-exact steps keep comparisons exact)."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def answer(outcome: Outcome) -> StatResult:
    """What a server's HEAD comes to, per outcome, as HeadProbe would report it."""
    if outcome is Outcome.PRESENT:
        return StatResult(Outcome.PRESENT, 200, 0.001, size=5, checksum="crc32c=0a1b2c3d", age=7)
    if outcome is Outcome.ABSENT:
        return StatResult(Outcome.ABSENT, 404, 0.001)
    if outcome is Outcome.DENIED:
        return StatResult(Outcome.DENIED, 403, 0.001)
    if outcome is Outcome.ERROR:
        return StatResult(Outcome.ERROR, 500, 0.001, server_fault=True, detail="HTTP 500")
    if outcome is Outcome.TIMEOUT:
        return StatResult(Outcome.TIMEOUT, latency=0.001, server_fault=True)
    raise AssertionError(f"no server answers {outcome}")


def stat(
    engine: StatEngine,
    targets: list[StatTarget],
    path: str,
    within: float = 1.0,
    *,
    deadline: float | None = None,
    **kw: Any,
) -> dict[str, StatResult]:
    """stat_many with a deadline ``within`` seconds from now (or the ``deadline`` given,
    shared by callers meant to be concurrent), itself bounded in real time; the results
    by target name."""
    if deadline is None:
        deadline = engine.clock() + within
    limit = deadline - engine.clock() + 2.0
    with gevent.Timeout(limit, AssertionError("stat_many overran its deadline by 2 s")):
        results = engine.stat_many(targets, path, deadline=deadline, **kw)
    by_name = {name: result for (_, name), result in results.items()}
    assert len(by_name) == len(results), "give the targets of one call distinct names"
    return by_name


def wait_until(
    predicate: Callable[[], bool], timeout: float = 1.0, what: str = "", every: float = 0.005
) -> None:
    with gevent.Timeout(timeout, AssertionError(f"not within {timeout} s: {what}")):
        while not predicate():
            gevent.sleep(every)


def settle(engine: StatEngine, timeout: float = 1.0) -> None:
    """Every stat greenlet of ``engine`` has finished."""
    wait_until(lambda: engine.live_stat_greenlets() == 0, timeout, "stat greenlets finished")


def join_all(greenlets: list[gevent.Greenlet], timeout: float = 2.0) -> list[Any]:
    done = gevent.joinall(greenlets, timeout=timeout, raise_error=True)
    assert len(done) == len(greenlets), "some greenlets did not finish in time"
    return [greenlet.value for greenlet in greenlets]


# A fake probe for the engine's unit tests (test_stat_engine*.py).
GATE_LIMIT = 5.0  # a blocked fake probe gives up after this, whatever the test does
SLOW = StatTarget("slow", "origin", "http://slow.invalid")
FAST = StatTarget("fast", "origin", "http://fast.invalid")
ORIGIN = StatTarget("origin", "origin", "http://origin.invalid")


class FakeProbe:
    """``probe(url, token, timeout, budget) -> StatResult``: records calls, may block and
    sleep.

    It ignores ``timeout`` on purpose (the engine must not rely on probes to end in time);
    ``gate`` blocks it until set (at most GATE_LIMIT), ``delay`` sleeps after that, and
    ``respond`` (when given) makes the answer; otherwise it answers ``outcome``.
    """

    def __init__(
        self,
        outcome: Outcome = Outcome.PRESENT,
        *,
        delay: float = 0.0,
        gate: Event | None = None,
        respond: Callable[[str, str, float], StatResult] | None = None,
    ) -> None:
        self.outcome = outcome
        self.delay = delay
        self.gate = gate
        self.respond = respond
        self.calls: list[tuple[str, str, float]] = []
        self.budgets: list[float | None] = []
        self.running = 0
        self.peak = 0

    def __call__(
        self, url: str, token: str, timeout: float, budget: float | None = None
    ) -> StatResult:
        self.calls.append((url, token, timeout))
        self.budgets.append(budget)
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            if self.gate is not None:
                self.gate.wait(GATE_LIMIT)
            if self.delay:
                gevent.sleep(self.delay)
        finally:
            self.running -= 1
        if self.respond is not None:
            return self.respond(url, token, timeout)
        return answer(self.outcome)


def time_out_after_timeout(url: str, token: str, timeout: float) -> StatResult:
    """A server that never answers, seen through a probe that honours its timeout."""
    gevent.sleep(timeout)
    return StatResult(Outcome.TIMEOUT, latency=timeout, server_fault=True)


def make_engine(
    probe: FakeProbe | dict[str, FakeProbe],
    *,
    clock: Callable[[], float] = time.monotonic,
    **config: Any,
) -> StatEngine:
    probes = probe if isinstance(probe, dict) else None

    def factory(target: StatTarget, limit: int) -> FakeProbe:
        return probes[target.name] if probes is not None else probe  # type: ignore[return-value]

    return StatEngine(stat_config(**config), probe_factory=factory, clock=clock)


def state_of(engine: StatEngine, name: str) -> PoolState:
    (state,) = [state for state in engine.states() if state.name == name]
    return state


# --- places (tests of sorting by distance) ------------------------------------------------------

LINCOLN_NE = (40.8136, -96.7026)
MADISON = (43.0731, -89.4012)
CHICAGO = (41.8781, -87.6298)
SAN_DIEGO = (32.7157, -117.1611)
AMSTERDAM = (52.3676, 4.9041)
# Great-circle miles from Lincoln, NE (40.8136, -96.7026; haversine, R = 3960 mi) and
# 2^(-miles/200):
#   Madison    406.3605 mi  0.2445493822
#   Chicago    476.2415 mi  0.1919486979
#   San Diego 1259.2566 mi  0.01272418565
#   Amsterdam 4483.6399 mi  1.784224211e-07
MILES = {"madison": 406.3605, "chicago": 476.2415, "san-diego": 1259.2566, "amsterdam": 4483.6399}
DISTANCE_WEIGHT = {
    "madison": 0.2445493822,
    "chicago": 0.1919486979,
    "san-diego": 0.01272418565,
    "amsterdam": 1.784224211e-07,
}


# --- a GeoIP database written at test time (tests/test_geo*.py) ---------------------------------


LINCOLN_CLIENT = "203.0.113.7"  # in 203.0.113.0/24, placed in Lincoln by the database
CHICAGO_CLIENT_V6 = "2001:db8:10::42"  # in 2001:db8:10::/48, placed in Chicago
NULL_ISLAND_CLIENT = "198.51.100.9"  # the database says (0, 0): rejected
VAGUE_CLIENT = "192.0.2.200"  # accuracy radius 900 km: rejected
ALMOST_VAGUE_CLIENT = "192.0.2.20"  # accuracy radius 899 km: accepted
VAGUE_CLIENT_V6 = "2001:db8:20::1"  # accuracy radius 1000 km: rejected
UNKNOWN_CLIENT = "100.64.1.1"  # not in the database

# (networks, latitude, longitude, accuracy radius in km)
CITY_RECORDS = [
    (["203.0.113.0/24"], *LINCOLN_NE, 20),
    (["2001:db8:10::/48"], *CHICAGO, 10),
    (["198.51.100.0/24"], 0.0, 0.0, 5),
    (["192.0.2.0/25"], 45.5, -100.25, 899),
    (["192.0.2.128/25"], 44.0, -99.0, 900),
    (["2001:db8:20::/48"], 39.0, -77.0, 1000),
]


def write_mmdb(path: Path, records: list[tuple[list[str], float, float, int]]) -> Path:
    """A GeoLite2-City-shaped database, as MaxMind's own writer format defines it."""
    writer = MMDBWriter(
        ip_version=6,
        database_type="GeoLite2-City",
        languages=["en"],
        description="test",
        ipv4_compatible=True,
    )
    for networks, latitude, longitude, radius in records:
        writer.insert_network(
            IPSet(networks),
            {
                "location": {
                    "latitude": latitude,
                    "longitude": longitude,
                    "accuracy_radius": radius,
                }
            },
        )
    writer.to_db_file(str(path))
    return path


# --- server keys (kind, name) read by name ------------------------------------------------------


def by_name(keyed: Mapping[tuple[str, str], Any]) -> dict[str, Any]:
    """A map keyed by server key (kind, name) keyed by name (names distinct in the test)."""
    named = {name: value for (_, name), value in keyed.items()}
    assert len(named) == len(keyed), "the test's servers share a name"
    return named


def server_names(keys: Iterable[tuple[str, str]]) -> list[str]:
    """The names of server keys, in their order."""
    return [name for _, name in keys]


# --- the director's health tests (tests/test_healthtests*.py) -----------------------------------

TEST_BODY = healthfiles.TEST_TEXT.encode()


def stored_test_objects(server: FileServer) -> list[str]:
    return [path for path in server.objects if path.startswith(healthfiles.TEST_DIRECTORY)]
