"""Requests that need the registry database: their own budget and deadline, and which
routes are those (the rest must not touch the database at all)."""

from __future__ import annotations

import gevent
import pytest
from django.db import connection
from django.http import HttpResponse
from django.test.utils import CaptureQueriesContext
from gevent.event import Event
from helpers import configure_director, create_server

from director import registry
from director.middleware import needs_database
from director.serving import database


def unavailable(message: str) -> HttpResponse:
    return HttpResponse(message, status=503)


@pytest.fixture
def small_budget():
    before = database.budget.limit
    database.budget.limit = 2
    database.health.recovered()
    yield database.budget
    database.budget.limit = before
    database.health.recovered()


def test_past_the_budget_a_database_request_is_refused_at_once(small_budget):
    release = Event()

    def held() -> HttpResponse:
        release.wait(5)
        return HttpResponse("done")

    holders = [gevent.spawn(database.serve_with_deadline, held, 5.0, unavailable) for _ in range(2)]
    gevent.sleep(0.01)
    assert small_budget.inflight == 2
    refused = database.serve_with_deadline(held, 5.0, unavailable)
    assert refused.status_code == 503
    assert b"maximum of 2" in refused.content
    release.set()
    assert [holder.get(timeout=5).status_code for holder in holders] == [200, 200]
    assert small_budget.inflight == 0


def test_past_the_deadline_the_answer_is_503_and_health_says_so(small_budget):
    def slow() -> HttpResponse:
        gevent.sleep(0.3)
        return HttpResponse("late")

    answer = database.serve_with_deadline(slow, 0.05, unavailable)
    assert answer.status_code == 503
    assert b"did not answer within 0.05 s" in answer.content
    assert database.health.unreachable_since is not None
    assert small_budget.inflight == 0


# Every GET route of the API and the redirect routes: whether it reads the database must
# match what the middleware believes (its budget and deadline apply to those only).
ROUTES = [
    "/api/v1.0/director/object/test/f",
    "/api/v1.0/director/origin/test/f",
    "/test/f",
    "/api/v2.0/director/listNamespaces",
    "/api/v1.0/director/listNamespaces",
    "/api/v1.0/director/namespaces/prefix/test/f",
    "/api/v1.0/director/directors",
    "/api/v1.0/director_ui/stat/pools",
    "/api/v1.0/health",
    "/.well-known/pelican-configuration",
    "/.well-known/openid-configuration",
    "/.well-known/issuer.jwks",
    "/api/v1.0/registry/server/origins/origin-a",
    "/api/v1.0/registry/origins/origin-a/.well-known/issuer.jwks",
    "/api/v1.0/director_ui/servers",
    "/api/v1.0/director_ui/servers/origin-a",
    "/api/v1.0/director_ui/servers/origin-a/namespaces",
    "/api/v1.0/director_ui/servers/origin-a/downtimes",
    "/api/v1.0/director_ui/namespaces",
    "/api/v1.0/director_ui/downtimes",
    "/admin/director/server/",
]


@pytest.mark.django_db
@pytest.mark.parametrize("path", ROUTES)
def test_only_the_database_routes_read_the_database(admin_client, path):
    """(The deadline closing the connection: tests/test_database_failure.py, for real.)"""
    configure_director(check_origin_presence=False)
    create_server("origin-a", "origin", "http://127.0.0.1:9")
    registry.current()
    with CaptureQueriesContext(connection) as queries:
        answer = admin_client.get(path)
    assert answer.status_code < 500, answer.content
    assert bool(queries.captured_queries) == needs_database(path), queries.captured_queries
