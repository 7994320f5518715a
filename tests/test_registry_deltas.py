"""An advertisement costs what it changed: rows written, and the snapshot delta applied.

Real commits (``transactional_db``): what other processes read is what was committed.
"""

from __future__ import annotations

import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from helpers import ORIGIN_UA, configure_director, create_server, make_ad, namespace_ad

from director import registry
from director.models import Namespace, RegistrationToken, Server, StatSettings

pytestmark = pytest.mark.django_db(transaction=True)

BIG = ("origin", "big")  # the key of the origin named "big"
NAMESPACES = [namespace_ad(f"/big/{number}") for number in range(50)]


@pytest.fixture
def advertise(client):
    configure_director()
    _, secret = RegistrationToken.issue("/origins/big")

    def send(namespaces=NAMESPACES, **fields) -> None:
        ad = make_ad("big", "origin", "http://127.0.0.1:9", namespaces, **fields)
        answer = client.post(
            "/api/v1.0/director/registerOrigin",
            data=json.dumps(ad),
            content_type="application/json",
            headers={"Authorization": f"Bearer {secret}", "User-Agent": ORIGIN_UA},
        )
        assert answer.status_code == 200, answer.content

    return send


def writes(queries: CaptureQueriesContext) -> list[str]:
    """The tables each INSERT, UPDATE or DELETE wrote, in order."""
    found = []
    for query in queries.captured_queries:
        sql = query["sql"].split("times: ", 1)[-1]  # an executemany: "<n> times: <sql>"
        verb = sql.split(None, 1)[0].upper()
        if verb in ("INSERT", "UPDATE", "DELETE"):
            table = next(
                word for word in sql.replace('"', " ").split() if word.startswith("director_")
            )
            found.append(f"{verb} {table}")
    return found


def test_an_unchanged_readvertisement_writes_only_the_server_row_and_the_counter(advertise):
    advertise()
    namespace_ids = set(Namespace.objects.values_list("pk", flat=True))
    with CaptureQueriesContext(connection) as queries:
        advertise()
    assert writes(queries) == ["UPDATE director_registrystate", "UPDATE director_server"]
    assert set(Namespace.objects.values_list("pk", flat=True)) == namespace_ids


def test_a_changed_readvertisement_writes_only_what_changed(advertise):
    advertise()
    kept = dict(Namespace.objects.values_list("path", "pk"))
    changed = [*NAMESPACES[1:], namespace_ad("/big/new")]
    changed[0] = namespace_ad("/big/1", Caps={"PublicRead": False, "Read": True})
    with CaptureQueriesContext(connection) as queries:
        advertise(changed)
    assert sorted(writes(queries)) == sorted(
        [
            "UPDATE director_registrystate",
            "UPDATE director_server",
            "DELETE director_namespace",  # /big/0 and the old /big/1, in one statement
            "INSERT director_namespace",  # /big/new and the new /big/1, in one executemany
        ]
    )
    inserts = [q["sql"] for q in queries.captured_queries if "INSERT" in q["sql"]]
    assert inserts[0].startswith("2 times: ")
    now = dict(Namespace.objects.values_list("path", "pk"))
    assert all(now[f"/big/{n}"] == kept[f"/big/{n}"] for n in range(2, len(NAMESPACES)))
    assert "/big/0" not in now
    assert Namespace.objects.get(path="/big/1").public_reads is False
    views = {view.path: view for view in registry.current().namespaces_by_server[BIG]}
    assert set(views) == set(now)


def test_the_largest_ad_round_trips_and_a_renewal_rewrites_no_namespace(advertise):
    """1,000 namespaces with token metadata: stored as sent (the rows the executemany
    wrote read back equal to what an ad would write), routed, and renewed without writes."""
    issuer = {"issuer": "https://issuer.example/x", "base-paths": ["/big"], "restricted-paths": []}
    generation = {
        "strategy": "OAuth2",
        "vault-server": "",
        "max-scope-depth": 3,
        "issuer": "https://issuer.example/x",
    }
    namespaces = [
        namespace_ad(
            f"/big/{number}", **{"token-issuer": [issuer], "token-generation": [generation]}
        )
        for number in range(1000)
    ]
    advertise(namespaces)
    rows = Namespace.objects.filter(server__name="big")
    assert rows.count() == 1000
    row = rows.get(path="/big/999")
    assert row.token_issuers == [issuer] and row.token_generations == [generation]
    assert row.reads and row.public_reads and not row.writes
    assert len(registry.current().namespaces_by_server[BIG]) == 1000
    ids = set(rows.values_list("pk", flat=True))
    changed = [*namespaces[:999], namespace_ad("/big/new")]
    with CaptureQueriesContext(connection) as queries:
        advertise(changed)
    assert writes(queries).count("INSERT director_namespace") == 1
    assert len(ids - set(rows.values_list("pk", flat=True))) == 1  # /big/999 only
    registry.reset()  # another process reads the registry in pages
    assert {view.path for view in registry.current().namespaces_by_server[BIG]} == {
        *(f"/big/{number}" for number in range(999)),
        "/big/new",
    }


def test_a_readvertisement_is_a_delta_of_its_server_only(advertise):
    create_server("other", "origin", "http://127.0.0.1:8", {"/other": {}})
    advertise()
    before = registry.current()
    advertise(status="warning")
    after = registry.current()
    assert after.generation > before.generation
    assert after.server("other") is before.server("other")  # a rebuild makes new views
    assert after.server("big").status == "warning"
    assert after.by_prefix["/other/"] is before.by_prefix["/other/"]


def test_a_renewal_keeps_the_namespace_views_and_moves_the_expiry(advertise):
    advertise()
    before = registry.current()
    advertise()
    after = registry.current()
    assert after.namespaces_by_server[BIG] == before.namespaces_by_server[BIG]
    assert after.namespaces_by_server[BIG][0] is before.namespaces_by_server[BIG][0]
    assert after.server("big").expires_at > before.server("big").expires_at


def test_another_process_follows_a_delta_and_a_full_change(advertise):
    """Another process is another snapshot following the same database."""
    advertise()
    registry.sync()
    theirs = registry.current()
    advertise(status="warning")
    registry.reset()
    registry.install(theirs, 0)  # as the other process last saw the registry
    synced = registry.sync()
    assert synced.server("big").status == "warning"
    assert synced.full_generation == theirs.full_generation  # a delta, not a rebuild

    row = StatSettings.load()
    row.stat_timeout = 1.25
    row.save()
    registry.registry_changed(full=True)
    assert registry.sync().settings.stat_timeout == 1.25


def test_a_disabled_server_leaves_the_snapshot_by_delta_and_returns(advertise):
    advertise()
    server = Server.objects.get(name="big")
    Server.objects.filter(pk=server.pk).update(enabled=False)
    registry.registry_changed([server.pk])
    assert "big" not in registry.current().servers
    Server.objects.filter(pk=server.pk).update(enabled=True)
    registry.registry_changed([server.pk])
    assert len(registry.current().namespaces_by_server[BIG]) == len(NAMESPACES)
