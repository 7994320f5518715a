"""One routability rule: the snapshot, the admin, the servers API and explain agree."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib import admin
from django.utils import timezone
from helpers import configure_director, create_server

from director import registry
from director.explain import explain
from director.models import Downtime, Server
from director.registry import registry_changed
from director.snapshot import DowntimeWindow, Unroutable, unroutable_reason
from director.wire.types import ServerStatus

NOW = 1_000_000.0


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({}, None),
        ({"enabled": False}, Unroutable.DISABLED),
        ({"expires_at": NOW}, Unroutable.EXPIRED),
        ({"status": ServerStatus.SHUTTING_DOWN}, Unroutable.SHUTTING_DOWN),
        ({"downtimes": [DowntimeWindow(NOW - 1, None)]}, Unroutable.DOWNTIME),
        ({"downtimes": [DowntimeWindow(NOW + 1, None)]}, None),
        ({"downtimes": [DowntimeWindow(NOW - 2, NOW - 1)]}, None),
        # The first reason wins, in this order.
        ({"enabled": False, "expires_at": NOW, "status": "shutting down"}, Unroutable.DISABLED),
        ({"expires_at": NOW, "status": ServerStatus.SHUTTING_DOWN}, Unroutable.EXPIRED),
        (
            {"status": "shutting down", "downtimes": [DowntimeWindow(NOW - 1, None)]},
            Unroutable.SHUTTING_DOWN,
        ),
    ],
)
def test_the_rule_names_the_first_reason_that_holds(kwargs, expected):
    arguments = {
        "enabled": True,
        "expires_at": None,
        "status": ServerStatus.OK,
        "downtimes": (),
        "now": NOW,
    }
    assert unroutable_reason(**(arguments | kwargs)) is expected


@pytest.fixture
def servers(db):
    """One server per reason, plus a routable one."""
    configure_director()
    now = timezone.now()
    create_server("routable", "origin", "http://127.0.0.1:9001", rebuild=False)
    create_server("disabled", "origin", "http://127.0.0.1:9002", enabled=False, rebuild=False)
    create_server("expired", "origin", "http://127.0.0.1:9003", expires_at=now, rebuild=False)
    create_server(
        "stopping", "origin", "http://127.0.0.1:9004", status="shutting down", rebuild=False
    )
    down = create_server("down", "origin", "http://127.0.0.1:9005", rebuild=False)
    Downtime.objects.create(server=down, starts_at=now - dt.timedelta(minutes=1))
    registry_changed()
    registry.rebuild()
    return {
        "routable": None,
        "disabled": Unroutable.DISABLED,
        "expired": Unroutable.EXPIRED,
        "stopping": Unroutable.SHUTTING_DOWN,
        "down": Unroutable.DOWNTIME,
    }


def test_the_row_and_the_snapshot_give_the_same_reason(servers):
    snapshot = registry.current()
    for server in Server.objects.prefetch_related("downtimes"):
        assert server.unroutable_reason() is servers[server.name], server.name
        view = snapshot.servers.get(server.name)
        if view is not None:  # disabled and lapsed servers never enter the snapshot
            assert view.unroutable_reason(timezone.now().timestamp()) is servers[server.name]
    assert set(snapshot.servers) == {"routable", "stopping", "down"}


def test_the_admin_column_shows_the_reason(servers):
    model_admin = admin.site._registry[Server]
    for server in Server.objects.all():
        expected = servers[server.name]
        assert model_admin.routing_state(server) == (expected.value if expected else "routable")


def test_the_servers_api_says_why_a_listed_server_is_filtered(servers, client):
    listed = {entry["name"]: entry for entry in client.get("/api/v1.0/director_ui/servers").json()}
    assert set(listed) == set(servers)  # admin-defined: listed even when lapsed
    for name, entry in listed.items():
        expected = servers[name]
        assert entry["filtered"] is (expected is not None)
        assert entry["filteredType"] == (expected.filtered_type if expected else "")


def test_explain_gives_each_left_out_server_its_reason(servers):
    lines = {line.name: line for line in explain("/test/object", to_origin=True).servers}
    for name, expected in servers.items():
        if expected is not None:
            assert lines[name].excluded == expected.value, name
    assert lines["routable"].rank == 1


def test_a_stored_value_outside_the_choices_does_not_break_the_snapshot(db):
    """Raw SQL can store any string; routing still builds, reading it as unknown."""
    configure_director()
    create_server("odd", "origin", "http://127.0.0.1:9001", rebuild=False)
    Server.objects.filter(name="odd").update(health_status="Degraded", status="sleepy")
    view = registry.rebuild().servers["odd"]
    assert (view.health_status, view.status) == ("Unknown", ServerStatus.UNKNOWN)
