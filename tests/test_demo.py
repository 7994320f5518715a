"""Two demo federations on one database (two ``make run``) do not shut each other out:
the Pelican way they share the demo's keys (``demo-keys/`` beside their data), with
registration tokens each keeps its own."""

from __future__ import annotations

from django.test import override_settings

from director.demo.federation import DemoFederation
from director.models import RegistrationToken


def test_a_second_demo_finds_the_prefixes_registered_with_its_keys(live_director, tmp_path):
    first = DemoFederation(live_director.url, tmp_path / "one").start()
    second = DemoFederation(live_director.url, tmp_path / "two").start()
    try:
        for demo in (first, second):
            for member in demo.members:
                assert member.identity is not None
                token = member.identity.advertise_token(live_director.url)
                answer = live_director.advertise(demo.ad_for(member), token=token)
                assert answer.status_code == 200, (member.name, answer.text)
    finally:
        second.stop()
        first.stop()


@override_settings(DIRECTOR_PELICAN_REGISTRATION=False)
def test_a_second_demo_leaves_the_first_ones_tokens_live(live_director, tmp_path) -> None:
    first = DemoFederation(live_director.url, tmp_path / "one").start()
    second = DemoFederation(live_director.url, tmp_path / "two").start()
    try:
        live = RegistrationToken.objects.live()
        assert set(first.token_pks) <= set(live.values_list("pk", flat=True))
        for member in first.members:  # the first demo still advertises
            kind = "origin" if member.kind == "origin" else "cache"
            answer = live_director.advertise(first.ad_for(member), token=member.secret)
            assert answer.status_code == 200, (kind, answer.text)
    finally:
        second.stop()
    revoked = RegistrationToken.objects.filter(revoked_at__isnull=False)
    assert set(revoked.values_list("pk", flat=True)) == set(second.token_pks)
    first.stop()
    assert not RegistrationToken.objects.live().filter(pk__in=first.token_pks).exists()
