"""The expiry of an ad (reference 1.6): as sent, rebased on a skewed clock, the default TTL,
refused when past, cut to the ad TTL, and an expired server leaving routing on its own."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from django.utils import timezone
from helpers import make_ad
from registration_support import assert_error, assert_nothing_stored, without

from director import registry
from director.models import Server

# --- expiry ---------------------------------------------------------------------------------


def test_the_expiry_of_an_ad_with_a_correct_clock_is_stored_as_sent(live_director):
    ad = make_ad("origin-a", "origin", "http://127.0.0.1:1")

    live_director.advertise(ad)

    expires_at = Server.objects.get(name="origin-a").expires_at
    assert expires_at == dt.datetime.fromisoformat(ad["expiry"])


@pytest.mark.parametrize("skew", [-3600.0, 3600.0, -0.5], ids=["behind", "ahead", "half-second"])
def test_a_skewed_sender_clock_rebases_the_expiry_on_receive_time(live_director, skew):
    sender_now = timezone.now() + dt.timedelta(seconds=skew)
    ad = make_ad(
        "origin-a",
        "origin",
        "http://127.0.0.1:1",
        now=sender_now.isoformat(),
        expiry=(sender_now + dt.timedelta(seconds=600)).isoformat(),
    )
    before = timezone.now()

    answer = live_director.advertise(ad)

    after = timezone.now()
    assert answer.status_code == 200, answer.text
    expires_at = Server.objects.get(name="origin-a").expires_at
    lifetime = dt.timedelta(seconds=600)
    assert before + lifetime <= expires_at <= after + lifetime


def test_an_ad_without_expiry_lives_the_default_ttl_of_15_minutes(live_director, settings):
    assert settings.DIRECTOR_AD_TTL == 900.0
    ad = without(without(make_ad("origin-a", "origin", "http://127.0.0.1:1"), "expiry"), "now")
    before = timezone.now()

    live_director.advertise(ad)

    after = timezone.now()
    expires_at = Server.objects.get(name="origin-a").expires_at
    assert before + dt.timedelta(seconds=900) <= expires_at <= after + dt.timedelta(seconds=900)


def test_go_zero_time_expiry_counts_as_none_and_the_ttl_setting_applies(live_director, settings):
    settings.DIRECTOR_AD_TTL = 42.0
    ad = make_ad("origin-a", "origin", "http://127.0.0.1:1", expiry="0001-01-01T00:00:00Z")
    before = timezone.now()

    live_director.advertise(ad)

    after = timezone.now()
    expires_at = Server.objects.get(name="origin-a").expires_at
    assert before + dt.timedelta(seconds=42) <= expires_at <= after + dt.timedelta(seconds=42)


def test_an_already_expired_ad_is_refused(live_director):
    now = timezone.now()
    ad = make_ad(
        "origin-a",
        "origin",
        "http://127.0.0.1:1",
        now=now.isoformat(),
        expiry=(now - dt.timedelta(seconds=1)).isoformat(),
    )

    answer = live_director.advertise(ad)

    assert_error(answer, 400, "expired")
    assert_nothing_stored()


def test_an_expiry_in_year_9999_is_cut_to_the_ad_ttl(live_director, settings):
    # Issue 24: an ad lives at most DIRECTOR_AD_TTL (it was cut to Pelican's seven days).
    assert settings.DIRECTOR_AD_TTL == 900.0
    now = dt.datetime.now(dt.UTC)
    ad = make_ad(
        "origin-a",
        "origin",
        "http://127.0.0.1:1",
        now=(now - dt.timedelta(hours=1)).isoformat(),
        expiry="9999-12-31T23:59:59-14:00",
    )

    answer = live_director.advertise(ad)

    assert answer.status_code == 200, answer.text
    expires = Server.objects.get(name="origin-a").expires_at
    assert dt.timedelta(seconds=900) <= expires - now <= dt.timedelta(seconds=960)


def test_an_expired_server_leaves_routing_without_any_request_or_job(live_director):
    now = timezone.now()
    expiry = now + dt.timedelta(seconds=1.5)
    live_director.register(
        "origin-a",
        "origin",
        "http://127.0.0.1:1111",
        now=now.isoformat(),
        expiry=expiry.isoformat(),
    )
    assert live_director.get("/api/v1.0/director/origin/test/f").status_code == 307
    generation = registry.current().generation

    time.sleep(max(0.0, expiry.timestamp() - time.time()) + 0.2)

    answer = live_director.get("/api/v1.0/director/origin/test/f")
    assert answer.status_code == 404
    assert answer.json()["msg"].startswith("No sources found for the requested path /test/f.")
    assert registry.current().generation == generation  # no rebuild was needed
