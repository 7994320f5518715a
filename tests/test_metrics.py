"""/metrics against a live director: every redirect answer by status code and destination,
redirects per server, request durations per route, weights, downtime, ejection, stat
latency and health tests. Counts are per process and accumulate across tests, so each
test compares its own before and after."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pytest
import requests
from django.utils import timezone
from helpers import namespace_ad
from prometheus_client.parser import text_string_to_metric_families

from director import presence, registry
from director.models import Downtime, Server, Source
from director.ops import healthtests
from director.ops.healthtests import HealthTester

# One origin is statted too (its HEADs are what the latency series counts).
SETTINGS = {"stat_timeout": 0.5, "redirect_timeout": 1.0, "assume_presence_at_single_origin": False}


def samples(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = requests.get(f"{url}/metrics", timeout=5).text
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def value(found: dict, name: str, **labels: str) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture
def federation(live_director, file_servers, director_settings):
    director_settings(**SETTINGS)
    origin = file_servers({"/data/a.txt": b"A"}, name="metrics-origin")
    cache = file_servers({"/data/a.txt": b"A"}, name="metrics-cache")
    live_director.register(
        "metrics-origin", "origin", origin.url, namespaces=[namespace_ad("/data")]
    )
    live_director.register("metrics-cache", "cache", cache.url, namespaces=[namespace_ad("/data")])
    return origin, cache


def test_every_redirect_answer_is_counted_by_status_and_destination(live_director, federation):
    before = samples(live_director.url)
    assert live_director.get("/api/v1.0/director/object/data/a.txt").status_code == 307
    assert live_director.get("/api/v1.0/director/origin/data/a.txt").status_code == 307
    assert live_director.get("/api/v1.0/director/origin/nowhere/x").status_code == 404
    assert live_director.request("PUT", "/api/v1.0/director/object/data/a.txt").status_code == 405
    assert live_director.get("/data/a.txt").status_code == 307  # the root-path shortcut
    after = samples(live_director.url)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    answers = "pelican_director_answers_total"
    assert grew(answers, route="object", destination="cache", status_code="307") == 1
    assert grew(answers, route="origin", destination="origin", status_code="307") == 1
    assert grew(answers, route="origin", destination="origin", status_code="404") == 1
    assert grew(answers, route="object", destination="cache", status_code="405") == 1
    assert grew(answers, route="shortcut", destination="cache", status_code="307") == 1
    # Pelican's metric counts the successful ones only.
    redirects = "pelican_director_redirects_total"
    assert grew(redirects, destination="cache", status_code="307") == 2
    assert grew(redirects, destination="origin", status_code="307") == 1
    per_server = "pelican_director_server_redirects_total"
    assert grew(per_server, server_name="metrics-cache") == 2
    assert grew(per_server, server_name="metrics-origin") == 1
    duration = "pelican_director_request_duration_seconds_count"
    assert grew(duration, route="object") == 2
    assert grew(duration, route="shortcut") == 1


def test_a_front_door_429_is_counted_with_its_route(live_director, federation, director_settings):
    director_settings(**SETTINGS, max_inflight_requests=1)
    from director.ops.metrics import INFLIGHT

    before = samples(live_director.url)
    INFLIGHT.count += 1  # one request "in flight": the next one is over the limit
    try:
        assert live_director.get("/api/v1.0/director/object/data/a.txt").status_code == 429
    finally:
        INFLIGHT.count -= 1
    after = samples(live_director.url)
    key = {"route": "object", "destination": "cache", "status_code": "429"}
    assert (
        value(after, "pelican_director_answers_total", **key)
        - value(before, "pelican_director_answers_total", **key)
        == 1
    )


def test_server_weight_downtime_routable_and_stat_latency_per_server(live_director, federation):
    live_director.get("/api/v1.0/director/origin/data/a.txt?fresh=1")
    origin = Server.objects.get(name="metrics-origin")
    Downtime.objects.create(
        server=origin, source=Source.ADMIN, starts_at=timezone.now() - dt.timedelta(minutes=1)
    )
    registry.registry_changed([origin.pk])
    registry.sync()
    found = samples(live_director.url)
    cache_weight = value(
        found,
        "pelican_director_server_statusweight",
        server_name="metrics-cache",
        server_url=federation[1].url,
        server_type="cache",
    )
    assert cache_weight == 1.0
    assert (
        value(
            found,
            "pelican_director_server_in_downtime",
            server_name="metrics-origin",
            server_type="origin",
        )
        == 1
    )
    assert (
        value(
            found,
            "pelican_director_server_routable",
            server_name="metrics-origin",
            server_type="origin",
        )
        == 0
    )
    assert (
        value(
            found,
            "pelican_director_server_routable",
            server_name="metrics-cache",
            server_type="cache",
        )
        == 1
    )
    assert (
        value(
            found,
            "pelican_director_server_count",
            server_name="metrics-cache",
            server_type="cache",
            from_topology="false",
        )
        == 1
    )
    heads = value(
        found,
        "pelican_director_stat_duration_seconds_count",
        server_name="metrics-origin",
        server_type="origin",
    )
    assert heads >= 1
    assert (
        value(
            found,
            "pelican_director_stat_duration_seconds_sum",
            server_name="metrics-origin",
            server_type="origin",
        )
        > 0
    )
    assert (
        value(found, "pelican_director_server_ejected_seconds_left", server_name="metrics-origin")
        == 0
    )
    assert (
        "pelican_director_server_ejections_total",
        frozenset({("server_name", "metrics-origin")}),
    ) in found
    presence.engine.states()  # the engine still answers after the scrape


def test_health_test_runs_and_durations(live_director, file_servers, monkeypatch):
    good = file_servers(name="metrics-good")
    bad = file_servers(name="metrics-bad")
    bad.behaviour.status = 500
    live_director.register("metrics-good", "origin", good.url)
    live_director.register("metrics-bad", "origin", bad.url)
    tester = HealthTester("test-director")
    monkeypatch.setattr(healthtests, "tester", tester)
    try:
        tester.tick()
        tester._pool.join(timeout=10)
        tester.tick()
    finally:
        tester.stop()
    found = samples(live_director.url)
    runs = "pelican_director_total_ftx_test_runs_total"
    common = {"server_type": "origin", "report_status": "NotReported"}
    assert (
        value(
            found,
            runs,
            server_name="metrics-good",
            server_web_url=good.url,
            status="Succeeded",
            **common,
        )
        == 1
    )
    assert (
        value(
            found,
            runs,
            server_name="metrics-bad",
            server_web_url=bad.url,
            status="Failed",
            **common,
        )
        == 1
    )
    assert (
        value(found, "pelican_director_health_test_duration_seconds_count", server_type="origin")
        == 2
    )
    ok = "pelican_director_server_health_test_ok"
    assert value(found, ok, server_name="metrics-good", server_type="origin") == 1
    assert value(found, ok, server_name="metrics-bad", server_type="origin") == 0
    assert (ok, frozenset({("server_name", "metrics-good"), ("server_type", "origin")})) in found


def test_the_grafana_dashboard_uses_only_series_the_director_exports(live_director, federation):
    """docs/grafana-director.json cannot drift from /metrics: every metric it queries is
    one the director writes (a family is listed even before its first sample)."""
    dashboard = Path(__file__).resolve().parent.parent / "docs" / "grafana-director.json"
    exprs = [
        target["expr"]
        for panel in json.loads(dashboard.read_text())["panels"]
        for target in panel["targets"]
    ]
    used = {name for expr in exprs for name in re.findall(r"pelican_director_\w+", expr)}
    text = requests.get(f"{live_director.url}/metrics", timeout=5).text
    families = set(re.findall(r"^# TYPE (\S+) ", text, re.MULTILINE))
    exported = families | {f"{name}_total" for name in families}
    missing = {
        name
        for name in used
        if name not in exported and re.sub(r"_(bucket|sum|count)$", "", name) not in exported
    }
    assert len(used) >= 15
    assert missing == set()
