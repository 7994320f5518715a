"""Two demo federations on one database (two ``make run``) keep each other's tokens."""

from __future__ import annotations

from director.demo.federation import DemoFederation
from director.models import RegistrationToken


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
