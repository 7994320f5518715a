"""External registry mode (issue 19 items 1-4) on the advertisement path, in process: a
live director (``DIRECTOR_REGISTRY_URL``) beside a loopback Pelican registry played as
reference pelican-registry-swap.md 3 describes it (``test_remote_registry.FakeRegistry``),
and Pelican servers played the Pelican way (``pelican_peer``).

Each attack or fault sits beside the legitimate ad that still works: a verified origin
with two namespaces is routed and its re-advertisements cost (almost) no registry
request; a forged signature under a known kid is refused before the body is read, a
foreign ``aud`` before any registry request; unapproved and unknown prefixes get
Pelican's answers; a registry answering 500 keeps cached servers in and tells new ones
503 + Retry-After within 5 s, health says degraded naming the registry and is ok again
after the next answer; an ad whose name is not the registered one loses its downtimes.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
import requests
from helpers import create_server
from pelican_peer import PelicanPeer, public_jwk, server_ad
from test_remote_http import Loopback
from test_remote_registry import NAMESPACES, ORIGIN, REG, Entry, FakeRegistry

from director.federation import external, remote_check, standing
from director.models import AuthMode, Downtime, NamespaceRegistration, Server, Source

FAULT_LIMIT = 5.0  # seconds: a new server's answer while the registry fails (issue 19 item 3)
DOWNTIME = {"id": "d1", "startTime": 1_700_000_000_000, "endTime": -1, "class": "UNSCHEDULED"}


@pytest.fixture
def registry(settings) -> Iterator[tuple[FakeRegistry, Loopback]]:
    fake = FakeRegistry()
    server = Loopback(fake.app).start()
    fake.url = server.url
    settings.DIRECTOR_REGISTRY_URL = server.url
    external.forget()
    remote_check.KNOWN_KIDS.clear()
    try:
        yield fake, server
    finally:
        external.forget()
        server.stop()


@pytest.fixture
def origin(registry) -> PelicanPeer:
    """An origin registered and approved at the registry with its two namespaces."""
    peer = PelicanPeer(registry[0].url, "origin.example.org:8443")
    registry[0].add(peer, ORIGIN, *NAMESPACES)
    return peer


def origin_ad(peer: PelicanPeer, prefix: str = ORIGIN, **changes: Any) -> dict[str, Any]:
    ad = server_ad(peer.site_name, "origin", prefix, "http://127.0.0.1:9", list(NAMESPACES))
    return {**ad, **changes}


def health(director: Any) -> dict[str, Any]:
    answer = director.get("/api/v1.0/health")
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def test_an_origin_verified_at_the_registry_is_routed_and_its_readvertisements_are_cheap(
    live_director, registry, origin
):
    fake, server = registry
    first = origin.advertise(live_director.url, "origin", origin_ad(origin))
    assert first.json() == {"status": "success", "msg": "Successful registration"}
    after_first = server.total()
    for _ in range(50):
        answer = origin.advertise(live_director.url, "origin", origin_ad(origin))
        assert answer.status_code == 200, answer.text
    readvertised = server.total() - after_first
    print(f"\nregistry requests: first ad {after_first}, 50 re-advertisements {readvertised}")
    assert readvertised <= 5  # Pelican's director: 300 (two calls per prefix per ad)
    redirect = live_director.get(f"/api/v1.0/director/origin{NAMESPACES[0]}/file.txt")
    assert redirect.status_code == 307, redirect.text
    assert redirect.headers["Location"] == f"http://127.0.0.1:9{NAMESPACES[0]}/file.txt"
    assert health(live_director)["registry"] == {
        "url": fake.url,
        "reachable": True,
        "lastError": None,
        "lastErrorAt": None,
    }


def test_a_forged_signature_under_a_known_kid_is_refused_without_a_registry_request(
    live_director, registry, origin, monkeypatch
):
    """A kid is not bound to one key, so a token that fails with the remembered key goes
    to the full check (the body is peeked at, not validated) and is refused there; it
    costs no registry request."""
    fake, server = registry
    assert origin.advertise(live_director.url, "origin", origin_ad(origin)).status_code == 200
    token = origin.advertise_token(live_director.url)
    head, claims, signature = token.split(".")
    forged = f"{head}.{claims}.{signature[::-1]}"
    before = server.total()

    answer = requests.post(
        f"{live_director.url}/api/v1.0/director/registerOrigin",
        data=b"{not json",
        headers={"Authorization": f"Bearer {forged}"},
        timeout=10,
    )

    assert answer.status_code == 403, answer.text
    assert server.total() == before
    # the legitimate token, beside it, is still accepted
    assert origin.advertise(live_director.url, "origin", origin_ad(origin)).status_code == 200


def test_a_registrant_cannot_lock_another_out_by_reusing_its_kid(live_director, registry, origin):
    """Kids are public (issuer.jwks) and not bound to one key: an attacker registers a
    server whose key carries the victim's kid and advertises with it first. The victim's
    next ad must still be accepted (a remembered key is never grounds for refusal)."""
    fake, _ = registry
    victim_kid = public_jwk(origin.current)["kid"]
    attacker = PelicanPeer(fake.url, "attacker.example.org:8443")
    attacker_jwk = {**public_jwk(attacker.current), "kid": victim_kid}
    fake.entries["/origins/attacker.example.org:8443"] = Entry({"keys": [attacker_jwk]}, True, "")
    forged_kid_token = jwt.encode(
        {
            **jwt.decode(
                attacker.advertise_token(live_director.url), options={"verify_signature": False}
            ),
        },
        attacker.current,
        algorithm="ES256",
        headers={"kid": victim_kid},
    )
    attacker_ad = {
        **origin_ad(origin),
        "name": "attacker.example.org:8443",
        "registry-prefix": "/origins/attacker.example.org:8443",
        "namespaces": [],
    }
    first = attacker.advertise(live_director.url, "origin", attacker_ad, forged_kid_token)

    victim = origin.advertise(live_director.url, "origin", origin_ad(origin))

    assert first.status_code == 200, first.text  # the attacker's own ad is fine
    assert victim.status_code == 200, victim.text


def test_a_token_for_another_director_costs_no_registry_request(live_director, registry, origin):
    fake, server = registry
    token = origin.advertise_token("https://other-director.example.org")

    answer = origin.advertise(live_director.url, "origin", origin_ad(origin), token)

    assert answer.status_code == 403, answer.text
    assert '"aud"' in answer.json()["msg"]
    assert server.total() == 0
    assert origin.advertise(live_director.url, "origin", origin_ad(origin)).status_code == 200


def test_unapproved_and_unknown_prefixes_get_pelicans_answers(live_director, registry):
    fake, _ = registry
    pending = PelicanPeer(fake.url, "pending.example.org:8443")
    fake.add(pending, "/origins/pending.example.org:8443", approved=False)
    stranger = PelicanPeer(fake.url, "stranger.example.org:8443")

    refused = pending.advertise(
        live_director.url,
        "origin",
        origin_ad(pending, "/origins/pending.example.org:8443", namespaces=[]),
    )
    unknown = stranger.advertise(
        live_director.url,
        "origin",
        origin_ad(stranger, "/origins/stranger.example.org:8443", namespaces=[]),
    )

    assert refused.status_code == 403
    assert refused.json()["approval_error"] is True
    assert refused.json()["error"].startswith('Origin "pending.example.org:8443" was not approved')
    assert unknown.status_code == 403
    assert "does not exist in the registry" in unknown.json()["msg"]
    assert not Server.objects.exists()


def test_a_registry_answering_500_keeps_cached_servers_and_tells_new_ones_to_retry(
    live_director, registry, origin
):
    fake, _ = registry
    newcomer = PelicanPeer(fake.url, "new.example.org:8443")
    fake.add(newcomer, "/origins/new.example.org:8443")
    new_ad = origin_ad(newcomer, "/origins/new.example.org:8443", namespaces=[])
    assert origin.advertise(live_director.url, "origin", origin_ad(origin)).status_code == 200

    fake.fault = "500"
    cached = origin.advertise(live_director.url, "origin", origin_ad(origin))
    started = time.monotonic()
    refused = newcomer.advertise(live_director.url, "origin", new_ad)
    took = time.monotonic() - started
    degraded = health(live_director)

    assert cached.status_code == 200, cached.text
    assert refused.status_code == 503, refused.text
    assert refused.headers["Retry-After"] == "2"
    assert fake.url in refused.json()["msg"]
    assert took < FAULT_LIMIT
    print(f"\nnew server's answer while the registry answers 500: {took:.3f} s")
    assert degraded["status"] == "degraded"
    assert any(fake.url in reason for reason in degraded["reasons"]), degraded
    assert degraded["registry"]["reachable"] is False
    assert "500" in degraded["registry"]["lastError"]
    metrics = live_director.get("/metrics").text
    assert 'pelican_director_registry_errors_total{route="openid-configuration"}' in metrics

    fake.fault = ""
    deadline = time.monotonic() + 3.0  # the per-prefix breaker half-opens within 1 s
    while (answer := newcomer.advertise(live_director.url, "origin", new_ad)).status_code != 200:
        assert answer.status_code == 503 and time.monotonic() < deadline, answer.text
        time.sleep(0.2)
    assert health(live_director)["status"] == "ok"


def test_downtimes_count_only_under_the_registered_name(live_director, registry, origin):
    fake, _ = registry
    impostor = origin_ad(
        origin, name="impostor", downtimes=[DOWNTIME], status="shutting down", namespaces=[]
    )
    impostor["namespaces"] = [{"Caps": impostor["capabilities"], "path": NAMESPACES[0]}]

    assert origin.advertise(live_director.url, "origin", impostor).status_code == 200
    assert origin.advertise(live_director.url, "origin", origin_ad(origin, downtimes=[DOWNTIME]))

    recorded = Server.objects.get(name="impostor")
    assert recorded.status != "shutting down"
    assert not Downtime.objects.filter(server=recorded).exists()
    registered = Server.objects.get(name=origin.site_name)
    assert Downtime.objects.filter(server=registered).count() == 1
    assert fake.entries[ORIGIN].name == origin.site_name


def test_this_directors_registry_routes_answer_404_and_discovery_names_the_registry(
    live_director, registry, origin
):
    fake, _ = registry
    ours = requests.post(
        f"{live_director.url}{REG}/checkNamespaceStatus", json={"prefix": ORIGIN}, timeout=10
    )
    keys = live_director.get(f"{REG}{ORIGIN}/.well-known/issuer.jwks")
    document = live_director.get("/.well-known/pelican-configuration").json()

    for refused in (ours, keys):
        assert refused.status_code == 404
        assert fake.url in refused.json()["msg"]
    assert document["namespace_registration_endpoint"] == fake.url
    assert document["director_endpoint"].endswith(live_director.url.split("://")[1])


def test_health_tests_and_discovery_ask_the_external_registry_who_still_stands(db, settings):
    """In external registry mode a Pelican server stands on the registry's approval, not
    on this director's own (empty) registration tables: an approved one is tested and
    listed, one the registry no longer approves is left out."""
    registry = FakeRegistry()
    server = Loopback(registry.app).start()
    registry.url = server.url
    settings.DIRECTOR_REGISTRY_URL = server.url
    external.forget()
    try:
        kept = PelicanPeer(server.url, "kept")
        gone = PelicanPeer(server.url, "gone")
        registry.add(kept, "/origins/kept", "/kept-ns")
        registry.add(gone, "/origins/gone", approved=False)
        denied_ns = PelicanPeer(server.url, "denied-ns")
        registry.add(denied_ns, "/origins/denied-ns")
        registry.add(denied_ns, "/denied-ns-ns", approved=False)  # its namespace denied
        for name in ("kept", "gone", "denied-ns"):
            row = create_server(
                name, "origin", f"http://127.0.0.1:{9300 + len(name)}", {f"/{name}-ns": {}}
            )
            Server.objects.filter(pk=row.pk).update(
                source=Source.ADVERTISED,
                auth_mode=AuthMode.PELICAN,
                registry_prefix=f"/origins/{name}",
            )
        assert not NamespaceRegistration.objects.exists()

        left_out = standing.withdrawn(
            [("origin", "kept"), ("origin", "gone"), ("origin", "denied-ns")]
        )

        assert left_out == {("origin", "gone"), ("origin", "denied-ns")}
    finally:
        server.stop()
        external.forget()


def test_a_registry_url_that_is_not_http_leaves_the_director_up_and_says_why(db, settings, client):
    """Bad input: the director starts and serves redirects; ads get 503 (never this
    director's own tables instead), health says why, the system check warns."""
    from director import checks

    settings.DIRECTOR_REGISTRY_URL = "ftp://registry.example.org"
    external.forget()
    try:
        create_server("o1", "origin", "http://127.0.0.1:9", {"/test": {}})
        redirect = client.get("/api/v1.0/director/origin/test/file")
        peer = PelicanPeer("http://127.0.0.1:9", "site-x")
        ad = client.post(
            "/api/v1.0/director/registerOrigin",
            data=server_ad("site-x", "origin", "/origins/site-x", "http://127.0.0.1:9", []),
            content_type="application/json",
            headers={"Authorization": f"Bearer {peer.advertise_token('http://testserver')}"},
        )
        health = client.get("/api/v1.0/health").json()

        assert redirect.status_code == 307
        assert ad.status_code == 503, ad.content
        assert "registry cannot be asked now" in ad.json()["msg"]
        assert ad["Retry-After"] == str(external.RETRY_SECONDS)
        assert health["status"] == "degraded"
        assert any(
            "not an http(s) URL" in reason or "ftp" in reason for reason in health["reasons"]
        )
        assert "director.W006" in [message.id for message in checks.check_director_settings()]
    finally:
        external.forget()


def test_a_hanging_discovery_document_is_asked_once_and_holds_no_caller(settings):
    """Only DIRECTOR_FEDERATION_DISCOVERY_URL set, and its document hangs: one greenlet
    looks the registry's URL up (within its deadline); the other callers (health,
    metrics, discovery, ads) do not queue behind it, and a failed look-up is not
    repeated at once."""
    import gevent

    hang = gevent.event.Event()

    def hanging(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        hang.wait(30)
        start_response("200 OK", [("Content-Type", "application/json")])
        return [b"{}"]

    discovery = Loopback(hanging).start()
    settings.DIRECTOR_REGISTRY_URL = ""
    settings.DIRECTOR_FEDERATION_DISCOVERY_URL = discovery.url
    external.forget()
    try:
        callers = [gevent.spawn(external.registry_client) for _ in range(20)]
        # the 19 others at once: well within the look-up's 2.5 s deadline that they would
        # otherwise have queued behind, one after the other
        returned = gevent.wait(callers[1:], timeout=2.0)
        gevent.joinall(callers, timeout=30)
        again = external.registry_client()

        assert len(returned) == 19
        assert all(caller.value is None for caller in callers)
        assert again is None
        assert discovery.requests["/.well-known/pelican-configuration"] == 1
        assert "discovery document" in (external.discovery_error() or "")
    finally:
        hang.set()
        discovery.stop()
        external.forget()


def test_get_fed_token_with_a_token_that_cannot_pass_asks_the_registry_nothing(
    live_director, registry, origin, settings
):
    """Anonymous getFedToken calls for random hosts with a token for another director:
    refused before any registry request, and counted per address (then 429)."""
    fake, server = registry
    settings.DIRECTOR_REFUSED_ADS_PER_MINUTE = 3
    foreign = origin.advertise_token("https://other-director.example.org")

    answers = [
        requests.get(
            f"{live_director.url}/api/v1.0/director/getFedToken",
            params={"host": f"random-{index}", "sType": "Cache"},
            headers={"Authorization": f"Bearer {foreign}"},
            timeout=10,
        )
        for index in range(4)
    ]

    assert [answer.status_code for answer in answers] == [403, 403, 403, 429]
    assert answers[3].headers["Retry-After"]
    assert server.total() == 0
