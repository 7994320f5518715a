"""Issue 24 item 2, written as the attacks: denying a registration, deleting it, or
replacing its keys takes a server that already advertised out of routing at once (not
when its ad expires); the health tests, getFedToken and discoverServers serve only
servers whose registration is still accepted; an ad lives at most the ad TTL. Each
attack has the legitimate action beside it, still working. The servers are Pelican's,
played by ``pelican_peer`` against the in-process director."""

from __future__ import annotations

import datetime as dt
import itertools
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone
from pelican_peer import PelicanPeer, server_ad

from director import registry
from director.ads import effective_expiry
from director.federation import issuer, standing
from director.federation.registry import decide
from director.models import NamespaceRegistration, RegistrationStatus, Server
from director.ops.healthtests import HealthTester
from director.trust import registry as protocol
from director.wire.ads import AdvertisementIn

GOOD_URL = "http://127.0.0.1:9101"
EVIL_URL = "https://evil.example:8443"


class Origin:
    """A Pelican origin registered (server prefix and one namespace) and approved."""

    def __init__(self, director: Any, name: str, data_url: str = GOOD_URL) -> None:
        self.director = director
        self.name = name
        self.prefix = f"/origins/{name}"
        self.namespace = f"/{name}-data"
        self.data_url = data_url
        self.peer = PelicanPeer(director.url, name)
        for prefix in (self.prefix, self.namespace):
            assert self.peer.register(prefix).status_code == 201
        decide([self.prefix, self.namespace], RegistrationStatus.APPROVED, "admin")

    def ad(self, data_url: str | None = None, **changes: Any) -> dict[str, Any]:
        ad = server_ad(
            self.name, "origin", self.prefix, data_url or self.data_url, [self.namespace]
        )
        return {**ad, **changes}

    def advertise(self, data_url: str | None = None, **kw: Any) -> requests.Response:
        return self.peer.advertise(self.director.url, "origin", self.ad(data_url), **kw)

    def located(self) -> str | None:
        """Where the next redirect for one of its objects goes (None: not redirected)."""
        answer = self.director.get(f"{self.namespace}/file.txt")
        return answer.headers["Location"] if answer.status_code == 307 else None

    def fed_token(self) -> requests.Response:
        return requests.get(
            f"{self.director.url}/api/v1.0/director/getFedToken",
            params={"host": self.name, "sType": "Origin"},
            headers={"Authorization": f"Bearer {self.peer.advertise_token(self.director.url)}"},
            timeout=10,
        )


@pytest.fixture
def origins(live_director, settings) -> Callable[..., Origin]:
    # This director's one name, so that every token minted or checked agrees on it; and
    # admin_user's password hashed fast.
    settings.DIRECTOR_EXTERNAL_URL = live_director.url
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

    def make(name: str, data_url: str = GOOD_URL) -> Origin:
        return Origin(live_director, name, data_url)

    return make


def advertised(origin: Origin, data_url: str | None = None) -> Origin:
    answer = origin.advertise(data_url)
    assert answer.status_code == 200, answer.text
    return origin


def discovered(live_director) -> set[str]:
    token = issuer.signer().mint(
        issuer=issuer.issuer_url(live_director.url),
        subject="prometheus",
        audience=[issuer.issuer_url(live_director.url)],
        scopes=["pelican.director_service_discovery"],
        lifetime=60,
    )
    answer = requests.get(
        f"{live_director.url}/api/v1.0/director/discoverServers",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    return {target["labels"]["server_name"] for target in answer.json()}


# --- denial -------------------------------------------------------------------------------


def test_a_denied_origin_is_no_longer_routed_listed_or_given_a_token(live_director, origins):
    victim = advertised(origins("denied-o"))
    bystander = advertised(origins("kept-o", "http://127.0.0.1:9102"))
    assert victim.located() == f"{GOOD_URL}{victim.namespace}/file.txt"
    assert victim.fed_token().status_code == 200

    decide([victim.prefix], RegistrationStatus.DENIED, "admin")

    assert victim.located() is None  # the very next redirect
    assert Server.objects.get(name="denied-o").expires_at <= timezone.now()
    assert "denied-o" not in discovered(live_director)
    refused = victim.fed_token()
    assert refused.status_code == 403
    assert refused.json()["msg"] == "Host 'denied-o' has not been approved by an administrator"
    again = victim.advertise()
    assert again.status_code == 403 and again.json()["approval_error"] is True
    assert victim.located() is None
    # beside it, an accepted origin keeps everything
    assert bystander.located() == f"http://127.0.0.1:9102{bystander.namespace}/file.txt"
    assert "kept-o" in discovered(live_director)
    assert bystander.fed_token().status_code == 200
    assert advertised(bystander).located() is not None


def test_denying_a_namespace_expires_the_origins_that_advertised_it(live_director, origins):
    victim = advertised(origins("ns-denied"))
    generation = registry.current().generation

    decide([victim.namespace], RegistrationStatus.DENIED, "approvenamespace")

    assert registry.current().generation > generation  # the change every process follows
    assert victim.located() is None
    assert victim.advertise().status_code == 403


def test_a_denied_server_gets_no_health_test_even_from_a_stale_snapshot(
    live_director, origins, file_servers
):
    good = file_servers(name="good")
    kept = origins("tested-o", good.url)
    denied = origins("untested-o", good.url)
    for origin in (kept, denied):
        answer = origin.peer.advertise(live_director.url, "origin", origin.ad(directorTest=False))
        assert answer.status_code == 200, answer.text
    # Denied behind routing's back (another process's snapshot has not followed yet).
    NamespaceRegistration.objects.filter(prefix=denied.prefix).update(
        status=RegistrationStatus.DENIED
    )
    assert ("origin", "untested-o") in registry.current().servers
    tester = HealthTester("test-director")
    try:
        tester.tick()
        assert ("origin", "untested-o") not in tester._running
        tester._pool.join(timeout=10)
        tester.tick()
    finally:
        tester.stop()

    assert Server.objects.get(name="untested-o").health_checked_at is None
    assert Server.objects.get(name="tested-o").health_checked_at is not None
    assert "untested-o" not in discovered(live_director)
    assert "tested-o" in discovered(live_director)


# --- deletion and edits in the admin ---------------------------------------------------------


def admin_url(view: str, *args: object) -> str:
    return reverse(f"admin:director_namespaceregistration_{view}", args=args)


@pytest.mark.django_db(transaction=True)
def test_deleting_a_registration_in_the_admin_takes_its_server_out_at_once(
    admin_client, live_director, origins
):
    victim = advertised(origins("deleted-o"))
    bystander = advertised(origins("other-o", "http://127.0.0.1:9102"))
    row = NamespaceRegistration.objects.get(prefix=victim.prefix)

    answer = admin_client.post(admin_url("delete", row.pk), {"post": "yes"})

    assert answer.status_code == 302
    assert victim.located() is None
    assert victim.advertise().status_code == 403
    assert bystander.located() is not None


@pytest.mark.django_db(transaction=True)
def test_the_admins_deny_action_and_bulk_delete_take_effect_at_once(
    admin_client, live_director, origins
):
    denied = advertised(origins("action-denied"))
    deleted = advertised(origins("bulk-deleted"))
    changelist = admin_url("changelist")
    pk = NamespaceRegistration.objects.get(prefix=denied.prefix).pk

    admin_client.post(changelist, {"action": "deny", "_selected_action": [str(pk)]})
    assert denied.located() is None
    pk = NamespaceRegistration.objects.get(prefix=deleted.namespace).pk
    admin_client.post(
        changelist, {"action": "delete_selected", "_selected_action": [str(pk)], "post": "yes"}
    )

    assert not NamespaceRegistration.objects.filter(prefix=deleted.namespace).exists()
    assert deleted.located() is None


@pytest.mark.django_db(transaction=True)
def test_an_admin_edit_that_removes_a_key_expires_its_ads_and_one_that_adds_does_not(
    admin_client, live_director, origins
):
    origin = advertised(origins("edited-o"))
    row = NamespaceRegistration.objects.get(prefix=origin.prefix)
    form = {
        "prefix": row.prefix,
        "site_name": row.site_name,
        "server_id": row.server_id,
        "institution": "",
        "description": row.description,
    }
    stranger = PelicanPeer(live_director.url, "stranger")
    both = {"keys": [*origin.peer.jwks()["keys"], *stranger.jwks()["keys"]]}

    added = admin_client.post(admin_url("change", row.pk), {**form, "pubkey": json.dumps(both)})
    assert added.status_code == 302
    assert origin.located() is not None  # nothing was revoked

    removed = admin_client.post(
        admin_url("change", row.pk), {**form, "pubkey": json.dumps(stranger.jwks())}
    )
    assert removed.status_code == 302
    assert origin.located() is None
    assert origin.advertise().status_code == 403


# --- key replacement -----------------------------------------------------------------------------


def test_a_compromised_key_rotated_out_loses_its_ad_at_once_and_the_new_key_advertises(
    live_director, origins
):
    origin = advertised(origins("rotated-o"))
    compromised = origin.peer.current
    prefixes = [origin.prefix, origin.namespace]
    # The attacker holds the origin's key and points its ad elsewhere.
    hijack = origin.peer.advertise(
        live_director.url,
        "origin",
        origin.ad(EVIL_URL),
        token=origin.peer.advertise_token(live_director.url, key=compromised),
    )
    assert hijack.status_code == 200
    assert origin.located() == f"{EVIL_URL}{origin.namespace}/file.txt"

    # The owner adds a new key (nothing revoked yet), then drops the compromised one.
    assert origin.peer.rotate(prefixes).status_code == 200
    assert origin.located() is not None
    origin.peer.keys.remove(compromised)
    assert origin.peer.rotate(prefixes).status_code == 200

    assert origin.located() is None  # the compromised key's ad is gone at once
    replay = origin.peer.advertise(
        live_director.url,
        "origin",
        origin.ad(EVIL_URL),
        token=origin.peer.advertise_token(live_director.url, key=compromised),
    )
    assert replay.status_code == 403
    assert advertised(origin).located() == f"{GOOD_URL}{origin.namespace}/file.txt"
    assert origin.fed_token().status_code == 200


# --- the ad's lifetime ---------------------------------------------------------------------------


def test_an_ad_asking_for_seven_days_lives_the_ad_ttl(live_director, origins, settings):
    settings.DIRECTOR_AD_TTL = 120.0
    origin = origins("seven-days")
    now = dt.datetime.now(dt.UTC)
    ad = origin.ad(now=now.isoformat(), expiry=(now + dt.timedelta(days=7)).isoformat())

    before = timezone.now()
    answer = origin.peer.advertise(live_director.url, "origin", ad)
    after = timezone.now()

    assert answer.status_code == 200, answer.text
    expires_at = Server.objects.get(name="seven-days").expires_at
    assert before + dt.timedelta(seconds=120) <= expires_at <= after + dt.timedelta(seconds=120)


@pytest.mark.parametrize("skew", [0.0, 3600.0], ids=["same-clock", "skewed-clock"])
def test_the_effective_expiry_is_capped_at_the_ttl(settings, skew):
    settings.DIRECTOR_AD_TTL = 900.0
    received = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    sender_now = received + dt.timedelta(seconds=skew)
    ad = AdvertisementIn.model_validate(
        server_ad("o", "origin", "/origins/o", GOOD_URL, [])
        | {
            "now": sender_now.isoformat(),
            "expiry": (sender_now + dt.timedelta(days=7)).isoformat(),
        }
    )
    short = AdvertisementIn.model_validate(
        server_ad("o", "origin", "/origins/o", GOOD_URL, [])
        | {"now": received.isoformat(), "expiry": (received + dt.timedelta(minutes=10)).isoformat()}
    )

    assert effective_expiry(ad, received) == received + dt.timedelta(seconds=900)
    assert effective_expiry(short, received) == received + dt.timedelta(minutes=10)


# --- the one rule ---------------------------------------------------------------------------------


@pytest.fixture
def every_registration(db) -> Iterator[list[NamespaceRegistration]]:
    rows = [
        NamespaceRegistration.objects.create(prefix=prefix, pubkey="{}", status=status)
        for prefix, status in itertools.product(
            ["/origins/o", "/caches/c", "/ns"], list(RegistrationStatus)
        )
        for prefix in [f"{prefix}-{status}"]
    ]
    yield rows


@pytest.mark.parametrize("require_origin", [True, False])
@pytest.mark.parametrize("require_cache", [True, False])
def test_the_accepted_filter_is_the_accepted_rule(
    every_registration, require_origin, require_cache
):
    with override_settings(
        DIRECTOR_REQUIRE_ORIGIN_APPROVAL=require_origin,
        DIRECTOR_REQUIRE_CACHE_APPROVAL=require_cache,
    ):
        filtered = set(
            NamespaceRegistration.objects.filter(standing.accepted_registrations()).values_list(
                "prefix", flat=True
            )
        )
    expected = {
        row.prefix
        for row in every_registration
        if protocol.accepted(
            row.prefix, row.status, require_origin=require_origin, require_cache=require_cache
        )
    }
    assert filtered == expected
