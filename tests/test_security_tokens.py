"""Advertise tokens bound to this director, and no token minted under a name a request
chose (issue 24 item 4), written as the attacks: a token minted for another director, a
100-year token, a token claiming this director's issuer, getFedToken behind a forged
Host. Beside each, the Pelican peer's ordinary token still advertises or buys its token.
Then verify before parse (item 5): a bearer no registered key signed is refused before
the body is read, and the ad's server prefix is checked before its namespaces are read.
"""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest
import requests
from pelican_peer import PelicanPeer, public_jwk, server_ad
from processes import SERVING_LINE, START_TIMEOUT, manage_env, run_manage_ok, sqlite_url

from director.checks import check_deployment
from director.federation import advertise
from director.federation.registry import decide
from director.models import RegistrationStatus, Server
from director.trust import tokens

FOREIGN = "https://other-director.example.org"
HUNDRED_YEARS = 100 * 365 * 86400


@pytest.fixture
def origin(live_director) -> tuple[PelicanPeer, str, str]:
    """A Pelican origin registered and approved with one namespace."""
    peer = PelicanPeer(live_director.url, "origin-s")
    prefix, namespace = "/origins/origin-s", "/sec/data"
    for path in (prefix, namespace):
        assert peer.register(path).status_code == 201
    decide([prefix, namespace], RegistrationStatus.APPROVED, "test")
    return peer, prefix, namespace


@pytest.fixture
def cache(live_director) -> PelicanPeer:
    peer = PelicanPeer(live_director.url, "cache-s")
    assert peer.register("/caches/cache-s").status_code == 201
    decide(["/caches/cache-s"], RegistrationStatus.APPROVED, "test")
    return peer


def signed(peer: PelicanPeer, **claims: Any) -> str:
    """The peer's token with ``claims`` changed (None: left out), signed by its key."""
    body = jwt.decode(peer.advertise_token(peer.registry), options={"verify_signature": False})
    body |= claims
    body = {name: value for name, value in body.items() if value is not None}
    kid = public_jwk(peer.current)["kid"]
    return jwt.encode(body, peer.current, algorithm="ES256", headers={"kid": kid})


def ad_of(name: str, prefix: str, namespace: str) -> dict[str, Any]:
    return server_ad(name, "origin", prefix, "http://127.0.0.1:9", [namespace])


def refused(answer: requests.Response, *words: str) -> None:
    assert answer.status_code == 403, answer.text
    message = answer.json()["msg"]
    assert message.startswith("Authorization token verification failed"), message
    for word in words:
        assert word in message, message


def test_a_token_minted_for_another_director_is_refused_and_ours_advertises(live_director, origin):
    peer, prefix, namespace = origin
    ad = ad_of("origin-s", prefix, namespace)

    foreign = peer.advertise(live_director.url, "origin", ad, signed(peer, aud=[FOREIGN]))
    any_director = peer.advertise(
        live_director.url, "origin", ad, signed(peer, aud=[tokens.WLCG_AUDIENCE_ANY])
    )
    no_aud = peer.advertise(live_director.url, "origin", ad, signed(peer, aud=None))
    assert not Server.objects.filter(name="origin-s").exists()
    ours = peer.advertise(live_director.url, "origin", ad)  # aud: this director's URL

    for answer in (foreign, any_director, no_aud):
        refused(answer, '"aud"')
    assert ours.status_code == 200, ours.text
    listed = live_director.get("/api/v1.0/director_ui/servers/origin-s")
    assert listed.status_code == 200 and listed.json()["url"] == "http://127.0.0.1:9"


def test_the_https_name_and_the_extra_audiences_are_this_director_too(
    live_director, origin, settings
):
    peer, prefix, namespace = origin
    ad = ad_of("origin-s", prefix, namespace)
    https_name = live_director.url.replace("http://", "https://")
    settings.DIRECTOR_ADVERTISE_AUDIENCES = ["https://director.example.org"]

    as_discovery_names_it = peer.advertise(
        live_director.url, "origin", ad, signed(peer, aud=[https_name])
    )
    behind_another_name = peer.advertise(
        live_director.url, "origin", ad, signed(peer, aud="https://director.example.org:443")
    )

    assert as_discovery_names_it.status_code == 200, as_discovery_names_it.text
    assert behind_another_name.status_code == 200, behind_another_name.text


def test_a_hundred_year_token_is_refused_and_a_one_minute_token_advertises(live_director, origin):
    peer, prefix, namespace = origin
    ad = ad_of("origin-s", prefix, namespace)
    now = int(time.time())

    century = peer.advertise(
        live_director.url,
        "origin",
        ad,
        peer.advertise_token(live_director.url, lifetime=HUNDRED_YEARS),
    )
    without_iat = peer.advertise(
        live_director.url, "origin", ad, signed(peer, iat=None, exp=now + HUNDRED_YEARS)
    )
    minute = peer.advertise(live_director.url, "origin", ad)

    refused(century, "more than the 300 s")
    refused(without_iat, "more than the 300 s")
    assert minute.status_code == 200, minute.text


def test_a_token_without_iat_lives_at_most_the_cap_from_now_on_a_clock_we_move():
    base = 1_000_000.0
    claims = {"aud": ["https://d.example"], "iss": "https://o.example", "exp": base + 400}
    bound = advertise.Binding(tokens.audience_names(["https://d.example"]), 300.0, now=base)
    later = advertise.Binding(bound.names, 300.0, now=base + 100)

    assert "expires in 400 s" in bound.problem(claims)
    assert later.problem(claims) == ""  # 300 s left: the cap (plus the 60 s leeway)


def test_a_token_claiming_an_issuer_of_this_director_is_refused(live_director, origin):
    peer, prefix, namespace = origin
    ad = ad_of("origin-s", prefix, namespace)
    federation = live_director.url.replace("http://", "https://")
    registry = f"{federation}/api/v1.0/registry"

    as_federation = peer.advertise(live_director.url, "origin", ad, signed(peer, iss=federation))
    as_namespace = peer.advertise(
        live_director.url, "origin", ad, signed(peer, iss=f"{registry}{namespace}")
    )
    without_iss = peer.advertise(live_director.url, "origin", ad, signed(peer, iss=None))
    as_its_registration = peer.advertise(
        live_director.url, "origin", ad, signed(peer, iss=f"{registry}{prefix}")
    )
    as_itself = peer.advertise(live_director.url, "origin", ad)  # iss: its own URL

    refused(as_federation, '"iss"')
    refused(as_namespace, '"iss"')
    refused(without_iss, '"iss"')
    assert as_its_registration.status_code == 200, as_its_registration.text
    assert as_itself.status_code == 200, as_itself.text


def fed_token(live_director, peer: PelicanPeer, token: str, **headers: str) -> requests.Response:
    return requests.get(
        f"{live_director.url}/api/v1.0/director/getFedToken",
        params={"host": peer.site_name, "sType": "Cache"},
        headers={"Authorization": f"Bearer {token}", **headers},
        timeout=10,
    )


def test_get_fed_token_refuses_a_token_for_another_director(live_director, cache):
    foreign = fed_token(live_director, cache, signed(cache, aud=[FOREIGN]))
    century = fed_token(live_director, cache, signed(cache, exp=int(time.time()) + HUNDRED_YEARS))
    ours = fed_token(live_director, cache, cache.advertise_token(live_director.url))

    assert foreign.status_code == 403
    assert foreign.json()["msg"] == "Failed to verify advertise token"
    assert century.status_code == 403
    assert ours.status_code == 200, ours.text


def test_a_forged_host_never_names_the_issuer_of_a_minted_token(live_director, cache, settings):
    token = cache.advertise_token(live_director.url)
    named = fed_token(live_director, cache, token, Host="evil.example")
    settings.DIRECTOR_EXTERNAL_URL = ""
    settings.DIRECTOR_ADVERTISE_AUDIENCES = [live_director.url]
    unnamed = fed_token(live_director, cache, token, Host="evil.example")

    assert named.status_code == 200, named.text
    minted = jwt.decode(named.json()["access_token"], options={"verify_signature": False})
    assert minted["iss"] == live_director.url.replace("http://", "https://")
    assert unnamed.status_code == 503
    assert "DIRECTOR_EXTERNAL_URL" in unnamed.json()["msg"]
    assert "access_token" not in unnamed.json()


def test_without_an_external_url_check_deploy_and_serve_warn(settings, spawn, tmp_path):
    settings.DIRECTOR_EXTERNAL_URL = ""
    assert "director.W002" in [message.id for message in check_deployment()]
    settings.DIRECTOR_EXTERNAL_URL = "https://director.example.org"
    assert "director.W002" not in [message.id for message in check_deployment()]

    env = manage_env(sqlite_url(tmp_path), DIRECTOR_EXTERNAL_URL=None)
    run_manage_ok("migrate", "--noinput", "-v0", env=env)
    process = spawn("serve", "--port", "0", env=env, name="unnamed")
    process.wait_for_line(SERVING_LINE, START_TIMEOUT)
    deadline = time.monotonic() + START_TIMEOUT
    while "DIRECTOR_EXTERNAL_URL is not set" not in process.stderr_text():
        assert time.monotonic() < deadline, process.stderr_text()
        time.sleep(0.05)


# --- verify before parse ---------------------------------------------------------------------


def post_raw(live_director, token: str, body: bytes) -> requests.Response:
    return requests.post(
        f"{live_director.url}/api/v1.0/director/registerOrigin",
        data=body,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        timeout=10,
    )


def test_an_unverifiable_bearer_is_refused_before_the_body_is_read(live_director, origin):
    peer, _, _ = origin
    stranger = PelicanPeer(live_director.url, "stranger")
    forged = jwt.encode(
        jwt.decode(peer.advertise_token(live_director.url), options={"verify_signature": False}),
        stranger.current,
        algorithm="ES256",
        headers={"kid": public_jwk(peer.current)["kid"]},  # a registered kid, another key
    )
    garbage = b"{not json" * 1000

    unknown_kid = post_raw(live_director, stranger.advertise_token(live_director.url), garbage)
    bad_signature = post_raw(live_director, forged, garbage)
    verified = post_raw(live_director, peer.advertise_token(live_director.url), garbage)

    refused(unknown_kid, 'no key with kid "')
    refused(bad_signature, "could not verify message")
    assert verified.status_code == 400, verified.text  # only now is the body read


def test_the_server_prefix_is_checked_before_the_namespaces_are_read(
    live_director, origin, monkeypatch
):
    peer, prefix, namespace = origin
    other = PelicanPeer(live_director.url, "origin-o")
    assert other.register("/origins/origin-o").status_code == 201
    loaded: list[set[str]] = []
    load = advertise.TokenCheck.load

    def counted(self: advertise.TokenCheck, prefixes: Any) -> None:
        loaded.append(set(prefixes))
        load(self, prefixes)

    monkeypatch.setattr(advertise.TokenCheck, "load", counted)
    # A verified token for the ad of a server prefix that is not its own.
    foreign_prefix = peer.advertise(
        live_director.url, "origin", ad_of("origin-o", "/origins/origin-o", namespace)
    )
    refused_loads, loaded[:] = list(loaded), []
    ours = peer.advertise(live_director.url, "origin", ad_of("origin-s", prefix, namespace))

    refused(foreign_prefix, "no key with kid")
    assert refused_loads == [{"/origins/origin-o"}]  # the namespace was never read
    assert ours.status_code == 200, ours.text
    assert loaded == [{prefix}, {namespace}]
