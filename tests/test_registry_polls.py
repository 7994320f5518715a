"""Issue 19, the polled registry data, written as the attacks and faults: a cache that
advertises namespaces its registration does not allow, a cache that claims another
cache's hostname, a cache asking getFedToken for more than it may read, a server in a
registry downtime (advertising under another name too), and a registry that fails
between polls. Each beside the legitimate action still working.

The registry is a loopback stand-in serving Pelican's shapes (``FakeRegistry`` of
test_remote_registry); the servers are Pelican's, played by ``pelican_peer`` against the
in-process director (registered at its own registry before it is switched to external
mode, and known to the stand-in too, so that either verification path accepts them).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
import requests
from helpers import FakeClock, wait_until
from pelican_peer import PelicanPeer, server_ad
from test_remote_http import Loopback
from test_remote_registry import FakeRegistry

from director.federation import external, polls
from director.federation.registry import decide
from director.models import Downtime, DowntimeSource, Namespace, RegistrationStatus, Server
from director.ops import registrypolls
from director.ops.registrypolls import RegistryPoller
from director.remote.registry import RegistryClient, RegistryTiming

ORIGIN_URL = "http://127.0.0.1:9201"


@pytest.fixture
def fake_registry() -> Iterator[FakeRegistry]:
    fake = FakeRegistry()
    server = Loopback(fake.app).start()
    fake.url = server.url
    try:
        yield fake
    finally:
        server.stop()


@pytest.fixture
def clean_polls() -> Iterator[None]:
    external.forget()
    polls.reset()
    yield
    registrypolls.stop()
    registrypolls.poller = None
    external.forget()
    polls.reset()


class Peer:
    """A Pelican server registered and approved at the director, known to the registry."""

    def __init__(self, director: Any, fake: FakeRegistry, kind: str, name: str) -> None:
        self.director, self.kind, self.name = director, kind, name
        self.prefix = f"/{kind}s/{name}"
        self.peer = PelicanPeer(director.url, name)
        assert self.peer.register(self.prefix).status_code == 201
        decide([self.prefix], RegistrationStatus.APPROVED, "admin")
        fake.add(self.peer, self.prefix)

    def advertise(self, namespaces: list[str], data_url: str = "", **changes: Any):
        url = data_url or f"http://{self.name}.example:8443"
        ad = {**server_ad(self.name, self.kind, self.prefix, url, namespaces), **changes}
        return self.peer.advertise(self.director.url, self.kind, ad)

    def fed_token(self) -> requests.Response:
        return requests.get(
            f"{self.director.url}/api/v1.0/director/getFedToken",
            params={"host": self.name, "sType": self.kind.capitalize()},
            headers={"Authorization": f"Bearer {self.peer.advertise_token(self.director.url)}"},
            timeout=10,
        )

    def namespaces(self) -> set[str]:
        return set(
            Namespace.objects.filter(server__name=self.name, server__kind=self.kind).values_list(
                "path", flat=True
            )
        )


@pytest.fixture
def federation(live_director, fake_registry, clean_polls, settings):
    settings.DIRECTOR_CONSOLE_PUBLIC = True  # its JSON read over HTTP without a login
    """make(kind, name) -> a registered Peer; switch() turns external mode on and returns a
    poller (not started) on the stand-in."""

    def make(kind: str, name: str) -> Peer:
        return Peer(live_director, fake_registry, kind, name)

    def switch(interval: float = 60.0, deadline: float = 2.5) -> RegistryPoller:
        settings.DIRECTOR_REGISTRY_URL = fake_registry.url
        timing = RegistryTiming(deadline=deadline, connect_timeout=min(1.0, deadline))
        external._client = RegistryClient(fake_registry.url, timing=timing)
        poller = RegistryPoller(interval, tick=min(0.05, interval))
        poller.state.started = True  # as start() says, without its loop
        return poller

    return make, switch


def scopes(answer: requests.Response) -> set[str]:
    assert answer.status_code == 200, answer.text
    claims = jwt.decode(answer.json()["access_token"], options={"verify_signature": False})
    return set(claims["scope"].split())


# --- allowed prefixes ---------------------------------------------------------------------


def test_a_cache_keeps_only_its_allowed_namespaces_and_pelican_paths(federation, fake_registry):
    make, switch = federation
    restricted, free = make("cache", "cache-r"), make("cache", "cache-f")
    fake_registry.allowed = {"cache-r": ["/a"], "other": ["/x"]}
    poller = switch()
    poller.poll(external.registry_client())

    wanted = ["/a", "/b", "/pelican/monitoring"]
    assert restricted.advertise(wanted).status_code == 200
    assert free.advertise(wanted).status_code == 200

    assert restricted.namespaces() == {"/a", "/pelican/monitoring"}
    assert free.namespaces() == {"/a", "/b", "/pelican/monitoring"}  # no entry: anything


def test_star_means_anything_and_an_empty_list_means_nothing(federation, fake_registry):
    make, switch = federation
    star, empty = make("cache", "cache-star"), make("cache", "cache-empty")
    fake_registry.allowed = {"cache-star": ["*"], "cache-empty": []}
    switch().poll(external.registry_client())

    assert star.advertise(["/a", "/b"]).status_code == 200
    assert empty.advertise(["/a", "/pelican/x"]).status_code == 200

    assert star.namespaces() == {"/a", "/b"}
    assert empty.namespaces() == {"/pelican/x"}


def test_the_hostname_key_narrows_but_never_widens_what_the_name_allows(federation, fake_registry):
    make, switch = federation
    legacy, sneaky = make("cache", "cache-legacy"), make("cache", "cache-sneaky")
    # Pelican's director keys the map by data-url hostname: kept for compatibility.
    fake_registry.allowed = {"legacy.example": ["/a"], "cache-sneaky": ["/s"], "open": ["*"]}
    switch().poll(external.registry_client())

    assert legacy.advertise(["/a", "/b"], "https://legacy.example:8443").status_code == 200
    # the attack: a restricted cache claims the hostname of an unrestricted entry
    assert sneaky.advertise(["/s", "/b"], "https://open:8443").status_code == 200

    assert legacy.namespaces() == {"/a"}
    assert sneaky.namespaces() == {"/s"}


def test_a_cache_ad_before_the_first_map_gets_503_with_retry_after(federation, fake_registry):
    make, switch = federation
    cache, origin = make("cache", "cache-early"), make("origin", "origin-early")
    fake_registry.allowed = {"cache-early": ["/a"]}
    poller = switch()

    early = cache.advertise(["/a", "/b"])
    origin_ad = origin.advertise([])  # origins are not judged by the map

    assert early.status_code == 503
    assert early.headers["Retry-After"] == "2"
    assert early.json()["status"] == "error"
    assert "not yet fetched the cache allowed prefixes" in early.json()["msg"]
    assert not Server.objects.filter(name="cache-early").exists()  # not accepted unfiltered
    assert origin_ad.status_code == 200, origin_ad.text

    poller.poll(external.registry_client())
    assert cache.advertise(["/a", "/b"]).status_code == 200
    assert cache.namespaces() == {"/a"}


def test_get_fed_token_scopes_follow_the_allowed_prefixes(federation, fake_registry):
    make, switch = federation
    narrow, free, empty = (make("cache", name) for name in ("fc-narrow", "fc-free", "fc-empty"))
    fake_registry.allowed = {"fc-narrow": ["/b", "/a", "relative"], "fc-empty": []}
    poller = switch()

    before = narrow.fed_token()
    assert before.status_code == 503 and before.headers["Retry-After"] == "2"

    poller.poll(external.registry_client())
    assert scopes(narrow.fed_token()) == {"storage.read:/a", "storage.read:/b"}
    assert scopes(free.fed_token()) == {"storage.read:/"}
    refused = empty.fed_token()
    assert refused.status_code == 403
    assert "may serve no namespace" in refused.json()["msg"]


# --- downtimes ----------------------------------------------------------------------------


def registry_downtime(name: str, server_id: str = "srv1", **times: int) -> dict[str, Any]:
    now_ms = int(time.time() * 1000)
    return {
        "id": f"dt-{name}",
        "serverName": name,
        "serverId": server_id,
        "source": "registry",
        "class": "UNSCHEDULED",
        "severity": "Outage (completely inaccessible)",
        "description": "maintenance",
        "startTime": times.get("start", now_ms - 60_000),
        "endTime": times.get("end", -1),
        "createdAt": now_ms,
        "updatedAt": now_ms,
        "deletedAt": None,
    }


def located(live_director, path: str) -> str | None:
    answer = live_director.get(path, headers={"User-Agent": "pelican-client/7.20.0"})
    return answer.headers.get("Location") if answer.status_code == 307 else None


def test_a_registry_downtime_takes_a_server_out_within_a_poll_and_its_end_brings_it_back(
    live_director, federation, fake_registry
):
    make, switch = federation
    down, kept = make("origin", "origin-down"), make("origin", "origin-kept")
    # the attack: advertising under another name than the registered one dodges nothing
    assert down.advertise([], ORIGIN_URL, name="alias-of-down").status_code == 200
    assert kept.advertise([], "http://127.0.0.1:9202").status_code == 200
    poller = switch(interval=0.2)
    registrypolls.poller = poller
    poller.start()
    wait_until(lambda: poller.state.downtimes.fetched_at is not None, 5.0, "first poll")
    assert Server.objects.get(name="alias-of-down").unroutable_reason() is None

    fake_registry.downtime = [registry_downtime("origin-down")]
    wait_until(
        lambda: Downtime.objects.filter(source=DowntimeSource.REGISTRY).exists(), 5.0, "a poll"
    )
    row = Downtime.objects.get(source=DowntimeSource.REGISTRY)
    assert row.server.name == "alias-of-down" and row.external_id == "dt-origin-down"
    wait_until(lambda: "alias-of-down" not in routable_names(live_director), 5.0, "out of routing")
    assert "origin-kept" in routable_names(live_director)

    fake_registry.downtime = []  # ended: the registry lists active and future ones only
    wait_until(
        lambda: not Downtime.objects.filter(source=DowntimeSource.REGISTRY).exists(), 5.0, "end"
    )
    wait_until(lambda: "alias-of-down" in routable_names(live_director), 5.0, "back")


def routable_names(live_director) -> set[str]:
    from director import registry

    now = time.time()
    return {view.name for view in registry.sync().servers.values() if view.routable(now)}


def test_a_legacy_entry_names_the_prefix_and_a_future_one_waits(
    federation, fake_registry, live_director
):
    make, switch = federation
    legacy, later = make("cache", "cache-legacy-dt"), make("cache", "cache-later")
    fake_registry.allowed = {}
    poller = switch()
    poller.poll(external.registry_client())
    assert legacy.advertise(["/a"]).status_code == 200
    assert later.advertise(["/a"]).status_code == 200
    in_an_hour = int(time.time() * 1000) + 3_600_000
    fake_registry.downtime = [
        registry_downtime("/caches/cache-legacy-dt", server_id=""),
        registry_downtime("cache-later", start=in_an_hour, end=in_an_hour + 60_000),
        registry_downtime("nobody-here"),  # kept for display only
    ]

    poller.poll(external.registry_client())

    names = routable_names(live_director)
    assert "cache-legacy-dt" not in names
    assert "cache-later" in names  # stored, not active yet
    assert Downtime.objects.filter(source=DowntimeSource.REGISTRY).count() == 2
    assert len(poller.state.downtimes.value or []) == 3


# --- a failing registry ---------------------------------------------------------------------


@pytest.mark.parametrize("fault", ["500", "hang", "garbage"])
def test_a_failing_poll_keeps_the_last_good_data_and_reports_its_age(
    federation, fake_registry, live_director, fault
):
    make, switch = federation
    cache = make("cache", f"cache-{fault}")
    fake_registry.allowed = {f"cache-{fault}": ["/a"]}
    fake_registry.downtime = [registry_downtime("nobody")]
    poller = switch(interval=60.0, deadline=0.5)
    clock = FakeClock(10_000.0)
    poller.state.now = clock
    poller.poll(external.registry_client())
    healthy = live_director.get("/api/v1.0/health").json()
    assert healthy["status"] == "ok", healthy

    fake_registry.fault = fault
    clock.advance(240.0)  # four intervals later, the poll fails
    poller.poll(external.registry_client())
    fake_registry.fault = ""

    assert poller.state.allowed.value == {f"cache-{fault}": frozenset({"/a"})}
    assert len(poller.state.downtimes.value or []) == 1
    health = live_director.get("/api/v1.0/health").json()
    assert health["status"] == "degraded"
    stale = [reason for reason in health["reasons"] if reason.startswith("registry allowed")]
    assert stale and "polled 240 s ago, over 180 s (last error:" in stale[0]
    overview = requests_json(live_director, "/api/v1.0/console/overview")
    datasets = {item["name"]: item for item in overview["externalRegistry"]["datasets"]}
    assert datasets["allowedPrefixes"]["ageSeconds"] == 240.0
    assert datasets["allowedPrefixes"]["entries"] == 1
    assert datasets["downtime"]["lastError"]
    assert overview["externalRegistry"]["url"] == fake_registry.url
    # the last good map still filters, and redirects never asked the registry
    assert cache.advertise(["/a", "/b"]).status_code == 200
    assert cache.namespaces() == {"/a"}

    clock.advance(1.0)
    poller.poll(external.registry_client())  # recovered
    assert live_director.get("/api/v1.0/health").json()["status"] == "ok"


def requests_json(live_director, path: str) -> dict[str, Any]:
    answer = live_director.get(path)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def test_the_console_shows_no_external_registry_in_own_registry_mode(
    live_director, clean_polls, settings
):
    settings.DIRECTOR_CONSOLE_PUBLIC = True
    overview = requests_json(live_director, "/api/v1.0/console/overview")
    assert overview["externalRegistry"] is None


def test_get_fed_token_and_cache_ads_read_one_entry_for_a_legacy_host_and_port(settings):
    """A cache registered as /caches/<host>:<port> is named by its host at the registry:
    its ads and its federation tokens must be restricted by the same entry."""
    settings.DIRECTOR_REGISTRY_URL = "http://127.0.0.1:9"
    state = polls.reset()
    state.allowed.refresh(lambda: {"cache.example": frozenset({"/ns/a"})}, time.time, ())
    try:
        dropped = polls.cache_namespaces(
            "/caches/cache.example:8443", "https://cache.example:8443", ["/ns/a", "/ns/b"]
        )
        scopes = polls.read_prefixes("cache.example:8443")
    finally:
        polls.reset()

    assert dropped == ["/ns/b"]
    assert scopes == ["/ns/a"]
