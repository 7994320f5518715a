"""The view, ``manage.py explain`` and ``manage.py stat`` share one redirect decision
(``director.redirects``): for the same registry they give the same answer."""

from __future__ import annotations

import io
import json
import time

import pytest
from django.core.management import CommandError, call_command
from helpers import configure_director

from director import registry
from director.explain import explain
from director.geo import Coordinate
from director.redirects import ANSWER_RESERVE, new_request, server_labels

PATH = "/test/data/f.txt"
DENVER = Coordinate(39.74, -104.99)


@pytest.fixture
def federation(live_director, file_servers):
    # Both origins must answer their stat before the view redirects: with the default of
    # one, whichever origin answers first leads, and the three could not be compared.
    configure_director(max_stat_responses=2)
    objects = {PATH: b"payload\n"}
    near, far = file_servers(objects), file_servers(objects)
    live_director.register(
        "origin-near", "origin", near.url, coordinate={"Lat": 40.0, "Long": -105.0}
    )
    live_director.register("origin-far", "origin", far.url, coordinate={"Lat": 51.5, "Long": -0.1})
    cache = file_servers(objects)
    live_director.register("cache-a", "cache", cache.url, coordinate={"Lat": 41.9, "Long": -87.6})
    registry.rebuild()
    return live_director


def stat_command(path: str) -> dict:
    out = io.StringIO()
    try:
        call_command("stat", path, "--json", stdout=out)
    except CommandError:
        pass  # exit status 1 when no server has the object; the JSON was written
    return json.loads(out.getvalue())


def link_urls(link: str) -> set[str]:
    return {part.split(">")[0].lstrip("<") for part in link.split(", ")}


@pytest.mark.parametrize("route", ["object", "origin"])
def test_the_view_explain_and_stat_give_the_same_answer(federation, route):
    headers = {"X-Pelican-Coordinate": f"lat={DENVER.latitude},long={DENVER.longitude}"}
    answer = federation.get(f"/api/v1.0/director/{route}{PATH}", headers=headers)
    assert answer.status_code == 307

    explained = explain(PATH, coordinate=DENVER, to_origin=route == "origin")
    assert (explained.status, explained.location) == (307, answer.headers["Location"])

    # stat knows no client location: the same servers, in the registry's order.
    stat = stat_command(PATH)["redirects"][route]
    assert stat["status"] == 307
    view_servers = {line.name for line in explained.servers if line.rank}
    assert set(stat["servers"]) == view_servers
    assert stat["location"] in link_urls(answer.headers["Link"])


def test_an_unknown_path_is_404_for_the_view_and_explain_alike(federation):
    answer = federation.get("/api/v1.0/director/object/nowhere/f")
    explained = explain("/nowhere/f")
    assert (answer.status_code, explained.status) == (404, 404)
    assert explained.message in answer.json()["msg"]


def test_a_document_names_servers_by_name_and_adds_the_kind_only_when_two_share_it():
    labels = server_labels([("origin", "site"), ("cache", "site"), ("cache", "other")])
    assert labels == {
        ("origin", "site"): "site (origin)",
        ("cache", "site"): "site (cache)",
        ("cache", "other"): "other",
    }


@pytest.mark.django_db
def test_a_requests_deadline_counts_from_its_arrival_and_keeps_time_to_answer():
    """A request that waited 0.4 s in line has 0.4 s less; the stats stop ANSWER_RESERVE
    before the deadline so that the answer itself leaves within it."""
    snapshot = registry.current()
    timeout = snapshot.settings.redirect_timeout
    before = time.monotonic()
    request = new_request(snapshot, "/x", waited=0.4)
    after = time.monotonic()

    assert before + timeout - 0.4 - ANSWER_RESERVE <= request.deadline
    assert request.deadline <= after + timeout - 0.4 - ANSWER_RESERVE
