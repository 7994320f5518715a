"""Each director's own ad in the shared registry, and the live directors it lists."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from director.models import DirectorAd
from director.ops import directors


@pytest.fixture
def advertiser(transactional_db, settings, monkeypatch):
    """Real commits: a renewal closes its connection after it, as it must between polls,
    which would end a test-wide transaction on PostgreSQL."""
    settings.DIRECTOR_NAME = "here"
    made = directors.DirectorAdvertiser("here", "https://here.example", 10.0, 5.0)
    monkeypatch.setattr(directors, "advertiser", made)
    return made


def test_a_renewal_writes_the_ad_and_reads_every_live_one(advertiser):
    DirectorAd.objects.create(
        name="there",
        url="https://there.example",
        instance_id="x" * 32,
        version="0.1.0",
        started_at=timezone.now(),
        expires_at=timezone.now() + dt.timedelta(seconds=30),
    )
    advertiser.renew()
    row = DirectorAd.objects.get(name="here")
    assert row.url == "https://here.example"
    assert row.instance_id == directors.INSTANCE_ID
    assert 25 <= (row.expires_at - timezone.now()).total_seconds() <= 30
    fallback = directors.this_director("https://ignored.example", 900)
    listed = directors.live_directors(fallback)
    assert [(info.name, info.url) for info in listed] == [
        ("here", "https://here.example"),
        ("there", "https://there.example"),
    ]


def test_an_expired_ad_is_not_listed(advertiser):
    DirectorAd.objects.create(
        name="dead",
        url="https://dead.example",
        instance_id="y" * 32,
        version="0.1.0",
        started_at=timezone.now() - dt.timedelta(hours=1),
        expires_at=timezone.now() - dt.timedelta(seconds=1),
    )
    advertiser.renew()
    fallback = directors.this_director("https://ignored.example", 900)
    assert [info.name for info in directors.live_directors(fallback)] == ["here"]


@pytest.mark.django_db(transaction=True)  # the withdrawal runs in a greenlet of its own
def test_a_stopped_director_withdraws_its_ad(advertiser):
    advertiser.renew()
    advertiser.stop()
    assert not DirectorAd.objects.filter(name="here").exists()


def test_before_any_read_a_director_lists_itself(db, monkeypatch):
    monkeypatch.setattr(directors, "advertiser", None)
    itself = directors.this_director("https://me.example", 900)
    assert directors.live_directors(itself) == [itself]
