"""Key chaining by the nearest owner, registration tokens' prefixes, denied and inactive
registrations (issue 24, items 3 and 6), written as the attacks: the sibling-then-parent
bypass, a Pelican registration inside or around what a registration token serves, a
denied or abandoned registration that kept others out. Beside each, the legitimate
registration by the owner's key still works. Real HTTP with the Pelican peer."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone
from helpers import make_ad, namespace_ad
from pelican_peer import PelicanPeer

from director.federation import challenges, inactive
from director.federation.registry import decide
from director.models import NamespaceRegistration, RegistrationStatus, RegistrationToken

CHAINING = (
    "You don't have permission to register the prefix: Cannot register a namespace that is "
    "suffixed or prefixed by an already-registered namespace unless the incoming public key "
    "matches a registered key"
)


@pytest.fixture
def victim(live_director) -> PelicanPeer:
    return PelicanPeer(live_director.url, "victim")


@pytest.fixture
def attacker(live_director) -> PelicanPeer:
    return PelicanPeer(live_director.url, "attacker")


def prefixes() -> list[str]:
    return sorted(NamespaceRegistration.objects.values_list("prefix", flat=True))


def test_the_sibling_then_parent_bypass_is_refused(live_director, victim, attacker):
    assert victim.register("/data/victim").status_code == 201

    sibling = attacker.register("/data/sibling")  # nothing around or inside: allowed
    parent = attacker.register("/data")  # around the victim's too
    inside = attacker.register("/data/victim/x")  # inside the victim's
    owners_own = victim.register("/data/victim/x")

    assert sibling.status_code == 201
    assert parent.status_code == 403 and parent.json()["msg"] == CHAINING
    assert inside.status_code == 403 and inside.json()["msg"] == CHAINING
    assert owners_own.status_code == 201
    assert prefixes() == ["/data/sibling", "/data/victim", "/data/victim/x"]


def test_inside_several_registrations_the_nearest_owner_decides(live_director, victim, attacker):
    assert attacker.register("/top").status_code == 201
    NamespaceRegistration.objects.create(  # the owner of /top/mid delegated it to the victim
        prefix="/top/mid", pubkey=json.dumps(victim.jwks()), site_name="victim"
    )

    by_the_outer_owner = attacker.register("/top/mid/deep")
    by_the_nearest = victim.register("/top/mid/deep")
    elsewhere_under_top = attacker.register("/top/other")

    assert by_the_outer_owner.status_code == 403
    assert by_the_nearest.status_code == 201
    assert elsewhere_under_top.status_code == 201


def test_around_registrations_a_key_of_every_top_level_one_is_needed(
    live_director, victim, attacker
):
    assert victim.register("/around/a").status_code == 201
    # below /around/a, with another key: not top-level, so not asked for
    NamespaceRegistration.objects.create(
        prefix="/around/a/inner", pubkey=json.dumps(attacker.jwks()), site_name="attacker"
    )

    only_the_top_level_one = victim.register("/around")
    assert attacker.register("/other/b").status_code == 201
    assert victim.register("/other/a").status_code == 201
    one_of_two = victim.register("/other")

    assert only_the_top_level_one.status_code == 201
    assert one_of_two.status_code == 403 and one_of_two.json()["msg"] == CHAINING


def test_a_pelican_registration_cannot_take_what_a_registration_token_serves(
    live_director, attacker
):
    token, _ = RegistrationToken.issue("/origins/tok", namespaces=["/tokdata"])
    ad = make_ad("free", "origin", "http://127.0.0.1:9", namespaces=[namespace_ad("/adv")])
    assert live_director.advertise(ad).status_code == 200  # a token without namespace limits

    server = attacker.register("/origins/tok")  # the cross-mode takeover of its server
    inside = attacker.register("/tokdata/x")
    around = attacker.register("/adv/sub")  # inside what a token's server advertised
    unrelated = attacker.register("/tokdatax")

    assert server.status_code == 403
    assert server.json()["msg"] == (
        "You don't have permission to register the prefix: /origins/tok is, or is inside or "
        f"around, a prefix of registration token #{token.pk} of /origins/tok: it advertises "
        "with this director's registration tokens, not Pelican's keys"
    )
    assert (
        inside.status_code == 403 and f"token #{token.pk} of /origins/tok" in inside.json()["msg"]
    )
    assert around.status_code == 403
    assert "of /origins/free, which serves /adv" in around.json()["msg"]
    assert unrelated.status_code == 201


def test_a_denied_registration_no_longer_blocks_its_prefix_or_site_name(
    live_director, victim, attacker
):
    assert attacker.register("/claimed").status_code == 201
    assert attacker.register("/origins/shared").status_code == 201
    pending_taken = victim.register("/claimed")
    decide(["/claimed", "/origins/shared"], RegistrationStatus.DENIED, "admin")

    replaced = victim.register("/claimed")
    inside = victim.register("/claimed/sub")
    impostor_name = PelicanPeer(live_director.url, "attacker").register("/caches/attacker")

    assert pending_taken.status_code == 403
    assert replaced.status_code == 201
    row = NamespaceRegistration.objects.get(prefix="/claimed")
    assert (row.status, row.site_name) == (RegistrationStatus.PENDING, "victim")
    assert "Replaces a denied registration of /claimed (site attacker" in row.description
    assert inside.status_code == 201
    assert impostor_name.status_code == 201  # the denied server no longer owns the name


def test_inactive_pending_servers_expire_and_free_their_prefixes(
    live_director, victim, attacker, monkeypatch
):
    assert attacker.register("/origins/gone").status_code == 201
    assert attacker.register("/gone-data").status_code == 201
    assert victim.register("/origins/alive").status_code == 201
    assert victim.register("/caches/approved").status_code == 201
    decide(["/caches/approved"], RegistrationStatus.APPROVED, "admin")
    later = timezone.now() + dt.timedelta(minutes=21)
    NamespaceRegistration.objects.filter(prefix="/origins/alive").update(
        last_seen_at=later - dt.timedelta(minutes=5)  # it asked for its record since
    )
    monkeypatch.setattr(challenges, "clock", lambda: later)
    monkeypatch.setattr(inactive, "_last_expiry", 0.0)

    taken_over = victim.register("/gone-data")  # its init runs the cleanup

    assert taken_over.status_code == 201
    assert prefixes() == ["/caches/approved", "/gone-data", "/origins/alive"]
    assert NamespaceRegistration.objects.get(prefix="/gone-data").site_name == "victim"


@override_settings(DIRECTOR_REQUIRE_CACHE_APPROVAL=False)
def test_pending_registrations_do_not_expire_when_approval_is_not_required(live_director, victim):
    assert victim.register("/origins/free").status_code == 201

    expired = inactive.expire_inactive(timezone.now() + dt.timedelta(days=1), force=True)

    assert expired == 0 and prefixes() == ["/origins/free"]


def test_the_approval_page_shows_what_a_prefix_nests_in_or_around(
    live_director, admin_client, victim, attacker
):
    assert victim.register("/n").status_code == 201
    assert victim.register("/n/mid/a").status_code == 201
    assert victim.register("/n/mid").status_code == 201
    RegistrationToken.issue("/origins/t", namespaces=["/tok"])
    assert PelicanPeer(live_director.url, "x").register("/tokens").status_code == 201
    NamespaceRegistration.objects.create(prefix="/tok/sub", pubkey="{}", site_name="x")

    def page(prefix: str) -> str:
        pk = NamespaceRegistration.objects.get(prefix=prefix).pk
        url = reverse("admin:director_namespaceregistration_change", args=[pk])
        answer = admin_client.get(url)
        assert answer.status_code == 200
        return answer.content.decode()

    middle = page("/n/mid")

    assert "Inside /n (pending, site victim)" in middle
    assert "Around /n/mid/a (pending, site victim)" in middle
    assert "Served by registration token #" in page("/tok/sub")
    assert "Nothing registered inside or around it" in page("/tokens")
