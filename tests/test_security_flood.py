"""The anonymous flood (issue 24 item 5): clients posting 1 MB ads behind JWT-shaped
bearers that no registered key signed. The work done for them is counted, not timed: no
ad is parsed and no registration read for a refused token, and an address refused
DIRECTOR_REFUSED_ADS_PER_MINUTE times is answered 429 before anything else until its
minute ends (on a clock the test moves). Beside it the Pelican peer still advertises and
clients are still redirected. The redirect p50 with and without the flood is printed
(``pytest tests/test_security_flood.py -s``), for the README, not asserted.
"""

from __future__ import annotations

import json
import statistics
import time
from typing import Any

import gevent
import pytest
import requests
from gevent.event import Event
from gevent.pool import Group
from helpers import make_ad, namespace_ad
from pelican_peer import PelicanPeer, server_ad

from director import api, locate
from director.federation import advertise, refusals
from director.federation.registry import decide
from director.models import RegistrationStatus
from director.trust.refusals import RefusalCounter

ATTACKERS = 4
ADS_EACH = 200  # at most: they stop once the redirects were timed
BIG = 1024 * 1024 - 4096  # under MAX_AD_BYTES: the auth step, not the size, refuses it


@pytest.fixture
def proxied(settings) -> Any:
    """Loopback is a trusted proxy: each attacker names its own address in X-Forwarded-For
    and the peer, sending none, is 127.0.0.1."""
    settings.DIRECTOR_TRUSTED_PROXIES = ["127.0.0.1/32"]
    locate.trusted_proxies.cache_clear()
    yield settings
    locate.trusted_proxies.cache_clear()


@pytest.fixture
def work(monkeypatch) -> dict[str, int]:
    """Counts of the work the registration path does: ads parsed (the handler runs only
    once ninja parsed the body) and registration lookups by prefix."""
    counts = {"parsed": 0, "prefix_queries": 0}
    register, load = api._register, advertise.TokenCheck.load

    def parsed(*args: Any) -> Any:
        counts["parsed"] += 1
        return register(*args)

    def queried(self: advertise.TokenCheck, prefixes: Any) -> None:
        counts["prefix_queries"] += 1
        load(self, prefixes)

    monkeypatch.setattr(api, "_register", parsed)
    monkeypatch.setattr(advertise.TokenCheck, "load", queried)
    return counts


@pytest.fixture
def peer(live_director) -> PelicanPeer:
    peer = PelicanPeer(live_director.url, "origin-f")
    for path in ("/origins/origin-f", "/flood/data"):
        assert peer.register(path).status_code == 201
    decide(["/origins/origin-f", "/flood/data"], RegistrationStatus.APPROVED, "test")
    return peer


def flood_ad(index: int) -> bytes:
    """A 1 MB origin ad with thousands of namespaces."""
    ad = server_ad(f"x{index}", "origin", f"/origins/x{index}", "http://127.0.0.1:9", [])
    paths, size = [], len(json.dumps(ad))
    while size < BIG - 100:
        path = f"/flood/{index}/{len(paths):07d}"
        paths.append({"path": path, "Caps": {}})
        size += len(path) + 24
    ad["namespaces"] = paths
    return json.dumps(ad).encode()[:BIG]


def bearer(stranger: PelicanPeer, director: str) -> str:
    return stranger.advertise_token(director)  # well formed, signed by no registered key


def attack(
    director: str, address: str, body: bytes, token: str, count: int, stop: Event | None = None
) -> list[int]:
    """Up to ``count`` ads from ``address`` (fewer once ``stop`` is set); their statuses."""
    statuses = []
    for _ in range(count):
        if stop is not None and stop.is_set():
            break
        answer = requests.post(
            f"{director}/api/v1.0/director/registerOrigin",
            data=body,
            headers={
                "Authorization": f"Bearer {token}",
                "Content-Type": "application/json",
                "X-Forwarded-For": address,
            },
            timeout=30,
        )
        statuses.append(answer.status_code)
    return statuses


def redirect_p50(live_director, count: int) -> float:
    took = []
    for _ in range(count):
        started = time.perf_counter()
        answer = live_director.get("/api/v1.0/director/object/quiet/data/a.txt")
        took.append(time.perf_counter() - started)
        assert answer.status_code == 307, answer.text
    return statistics.median(took)


def test_an_anonymous_flood_parses_nothing_and_the_peer_still_advertises(
    live_director, proxied, work, peer, file_servers
):
    for kind in ("origin", "cache"):
        server = file_servers({"/quiet/data/a.txt": b"A"}, name=f"quiet-{kind}")
        live_director.register(
            f"quiet-{kind}", kind, server.url, namespaces=[namespace_ad("/quiet/data")]
        )
    work.update(parsed=0, prefix_queries=0)  # the two ads above
    quiet = redirect_p50(live_director, 40)
    stranger = PelicanPeer(live_director.url, "stranger")
    bodies = [flood_ad(index) for index in range(ATTACKERS)]
    group, stop = Group(), Event()
    attackers = [
        group.spawn(
            attack,
            live_director.url,
            f"198.51.100.{index + 1}",
            bodies[index],
            bearer(stranger, live_director.url),
            ADS_EACH,
            stop,
        )
        for index in range(ATTACKERS)
    ]
    gevent.sleep(0.05)
    loaded = redirect_p50(live_director, 40)  # while they post
    work_before_peer = dict(work)
    ad = server_ad("origin-f", "origin", "/origins/origin-f", "http://127.0.0.1:9", ["/flood/data"])
    advertised = peer.advertise(live_director.url, "origin", ad)
    stop.set()
    group.join(timeout=120)

    statuses = [status for greenlet in attackers for status in greenlet.get(block=False)]
    assert len(statuses) >= ATTACKERS and set(statuses) == {403}
    assert work_before_peer == {"parsed": 0, "prefix_queries": 0}
    assert advertised.status_code == 200, advertised.text
    assert work == {
        "parsed": 1,
        "prefix_queries": 2,
    }  # the peer's ad: its prefix, then its namespace
    print(
        f"\nredirect p50: {quiet * 1000:.1f} ms quiet, {loaded * 1000:.1f} ms under the flood "
        f"of {len(statuses)} refused 1 MB ads from {ATTACKERS} clients"
    )


def test_an_address_refused_too_often_gets_429_until_its_minute_ends(
    live_director, proxied, work, peer, monkeypatch
):
    proxied.DIRECTOR_REFUSED_ADS_PER_MINUTE = 5
    now = [960.0]  # the start of a minute
    monkeypatch.setattr(refusals, "refused_ads", RefusalCounter(clock=lambda: now[0]))
    stranger = PelicanPeer(live_director.url, "stranger")
    token = bearer(stranger, live_director.url)
    body = flood_ad(0)
    ad = server_ad("origin-f", "origin", "/origins/origin-f", "http://127.0.0.1:9", ["/flood/data"])

    refused = attack(live_director.url, "198.51.100.7", body, token, 5)
    limited = requests.post(
        f"{live_director.url}/api/v1.0/director/registerOrigin",
        data=body,
        headers={"Authorization": f"Bearer {token}", "X-Forwarded-For": "198.51.100.7"},
        timeout=30,
    )
    neighbour = attack(live_director.url, "198.51.100.8", body, token, 1)
    advertised = peer.advertise(live_director.url, "origin", ad)  # from 127.0.0.1
    now[0] += 40.0  # the same minute
    still = attack(live_director.url, "198.51.100.7", body, token, 1)
    now[0] += 20.0  # the next minute
    heard_again = attack(live_director.url, "198.51.100.7", body, token, 1)

    assert refused == [403] * 5
    assert limited.status_code == 429
    assert limited.json()["msg"].startswith("Too many refused advertisements from 198.51.100.7")
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert neighbour == [403]
    assert advertised.status_code == 200, advertised.text
    assert still == [429]
    assert heard_again == [403]
    assert work["parsed"] == 1  # the peer's


def test_the_counter_forgets_addresses_beyond_its_capacity():
    counter = RefusalCounter(capacity=3, clock=lambda: 0.0)
    for address in ("a", "b", "c", "d"):
        counter.note(address)
    assert len(counter._counts) == 3
    assert counter.retry_after("d", 1) > 0
    assert counter.retry_after("d", 0) == 0  # 0: no limit
    assert counter.retry_after("e", 1) == 0


def test_a_registration_token_still_registers_beside_the_flood(live_director, proxied):
    answer = live_director.advertise(make_ad("token-origin", "origin", "http://127.0.0.1:9"))
    assert answer.status_code == 200, answer.text
