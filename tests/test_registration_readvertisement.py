"""A server advertising again (reference 1.6): the same row, its namespaces and downtimes
replaced, and a failing re-advertisement that leaves the previous state intact."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from django.utils import timezone
from helpers import make_ad, namespace_ad
from registration_support import assert_error, post, server_state

from director.models import Downtime, Namespace, Server

# --- re-advertisement ------------------------------------------------------------------------


def test_a_readvertisement_updates_the_same_row_and_replaces_its_namespaces(live_director):
    live_director.register(
        "origin-a", "origin", "http://127.0.0.1:1111", namespaces=[namespace_ad("/old")]
    )
    first = Server.objects.get(name="origin-a")
    old_namespace_ids = set(first.namespaces.values_list("pk", flat=True))

    live_director.register(
        "origin-a",
        "origin",
        "http://127.0.0.1:2222",
        namespaces=[namespace_ad("/new"), namespace_ad("/also")],
        status="warning",
    )

    assert Server.objects.count() == 1
    second = Server.objects.get(name="origin-a")
    assert second.pk == first.pk
    assert (second.data_url, second.status) == ("http://127.0.0.1:2222", "warning")
    assert second.last_advertised_at > first.last_advertised_at
    assert sorted(second.namespaces.values_list("path", flat=True)) == ["/also", "/new"]
    assert not Namespace.objects.filter(pk__in=old_namespace_ids).exists()
    assert live_director.get("/api/v1.0/director/origin/old/f").status_code == 404
    moved = live_director.get("/api/v1.0/director/origin/new/f")
    assert moved.status_code == 307
    assert moved.headers["Location"] == "http://127.0.0.1:2222/new/f"


def test_readvertised_downtimes_replace_the_previous_ones(live_director):
    far = int((time.time() + 86400) * 1000)
    live_director.register(
        "origin-a",
        "origin",
        "http://127.0.0.1:1",
        downtimes=[{"id": "one", "startTime": far, "endTime": far + 1000}],
    )
    live_director.register(
        "origin-a",
        "origin",
        "http://127.0.0.1:1",
        downtimes=[{"id": "two", "startTime": far, "endTime": -1, "class": "unscheduled"}],
    )

    rows = list(Downtime.objects.values_list("external_id", "downtime_class", "ends_at"))
    assert rows == [("two", "UNSCHEDULED", None)]


@pytest.mark.parametrize(
    "failing",
    [
        pytest.param(
            lambda ad: (ad | {"data-url": "not a url"}, "/origins/origin-a", 400), id="bad-url"
        ),
        pytest.param(
            lambda ad: (
                ad | {"namespaces": [namespace_ad("/x"), namespace_ad("/x")]},
                "/origins/origin-a",
                400,
            ),
            id="duplicate-namespaces",
        ),
        pytest.param(
            lambda ad: (
                ad | {"expiry": (timezone.now() - dt.timedelta(seconds=5)).isoformat()},
                "/origins/origin-a",
                400,
            ),
            id="expired",
        ),
        pytest.param(
            lambda ad: (ad | {"registry-prefix": "/origins/other"}, "/origins/other", 403),
            id="other-prefix-inside-the-transaction",
        ),
    ],
)
def test_a_failing_readvertisement_leaves_the_previous_server_intact(live_director, failing):
    live_director.register(
        "origin-a", "origin", "http://127.0.0.1:1111", namespaces=[namespace_ad("/old")]
    )
    before = server_state("origin-a")
    ad, prefix, status = failing(
        make_ad("origin-a", "origin", "http://127.0.0.1:2222", [namespace_ad("/new")])
    )

    answer = post(live_director, "registerOrigin", ad, secret=live_director.token_for(prefix))

    assert_error(answer, status)
    assert server_state("origin-a") == before
    assert before["namespaces"] == ["/old"]
    kept = live_director.get("/api/v1.0/director/origin/old/f")
    assert kept.headers["Location"] == "http://127.0.0.1:1111/old/f"
