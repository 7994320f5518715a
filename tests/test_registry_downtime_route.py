"""``GET /api/v1.0/downtime``: the registry's downtimes as Pelican's registry lists them,
which Pelican's director (and this one, against an external registry) polls."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone
from helpers import create_server

from director.models import Downtime, DowntimeSource, NamespaceRegistration, RegistrationStatus

pytestmark = pytest.mark.django_db

HOUR = dt.timedelta(hours=1)


def downtime(server, starts: dt.datetime, ends: dt.datetime | None, **fields) -> Downtime:
    return Downtime.objects.create(server=server, starts_at=starts, ends_at=ends, **fields)


def test_active_and_future_downtimes_in_pelicans_shape(client):
    now = timezone.now()
    registered = create_server(
        "site-d", "origin", "http://127.0.0.1:9", {}, registry_prefix="/origins/site-d"
    )
    NamespaceRegistration.objects.create(
        prefix="/origins/site-d",
        pubkey="{}",
        status=RegistrationStatus.APPROVED,
        site_name="site-d",
        server_id="abc123",
    )
    legacy = create_server("old", "cache", "http://127.0.0.1:8", {}, registry_prefix="/caches/old/")
    active = downtime(
        registered,
        now - HOUR,
        now + HOUR,
        severity="Outage (completely inaccessible)",
        description="disk swap",
        downtime_class="UNSCHEDULED",
    )
    downtime(registered, now - 3 * HOUR, now - 2 * HOUR)  # over
    future = downtime(legacy, now + HOUR, None)
    downtime(registered, now - HOUR, None, source=DowntimeSource.ADVERTISED, external_id="ad")

    listed = client.get("/api/v1.0/downtime").json()
    every = client.get("/api/v1.0/downtime?status=all").json()

    assert [entry["id"] for entry in listed] == [str(active.pk), str(future.pk)]
    assert len(every) == 3  # the ad's own downtime is not the registry's
    first, second = listed
    assert first == {
        "id": str(active.pk),
        "serverName": "site-d",
        "serverId": "abc123",
        "createdBy": "",
        "updatedBy": "",
        "source": "registry",
        "class": "UNSCHEDULED",
        "description": "disk swap",
        "severity": "Outage (completely inaccessible)",
        "startTime": int(active.starts_at.timestamp() * 1000),
        "endTime": int(active.ends_at.timestamp() * 1000),
        "createdAt": first["createdAt"],
        "updatedAt": first["createdAt"],
        "deletedAt": 0,
    }
    assert (second["serverName"], second["serverId"], second["endTime"]) == ("/caches/old", "", -1)
    assert client.get("/api/v1.0/downtime?source=registry").json() == listed
    assert client.get("/api/v1.0/downtime?source=cache").json() == []


def test_a_bad_status_is_400_with_the_error_body(client):
    answer = client.get("/api/v1.0/downtime?status=soon")
    assert answer.status_code == 400
    assert answer.json() == {
        "status": "error",
        "msg": "Invalid status 'soon': use 'all', or leave it out",
    }
