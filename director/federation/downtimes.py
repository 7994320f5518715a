"""``GET /api/v1.0/downtime`` as Pelican's registry answers it (reference
pelican-registry-swap.md 3.6): the downtimes an administrator set, which Pelican's
director, and this one in external registry mode, poll every minute.

The registry's downtimes here are the admin's (``Downtime`` of source "admin"); a
server's own (from its ad) and those polled from another registry are not the registry's
word and are not listed. An entry names its server as Pelican's does: by its registered
name and ``serverId`` when its registry prefix is a registered server's, else (a legacy
entry, no ``serverId``) by the registry prefix itself. ``createdBy`` and ``updatedBy``
are empty: administrators' user names are not published (README, Security).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db.models import Q
from django.utils import timezone

from director.models import Downtime, DowntimeSource, NamespaceRegistration
from director.wire.errors import Refusal

INDEFINITE = -1  # Pelican's endTime of a downtime without an end
SOURCE = "registry"  # Pelican's source of an administrator's downtime
STATUSES = ("", "all")


def _epoch_ms(value: dt.datetime | None) -> int:
    return int(value.timestamp() * 1000) if value is not None else INDEFINITE


def downtime_list(status: str = "", source: str = "") -> list[dict[str, Any]]:
    """Active and future downtimes (``status`` "all": every one), of ``source`` when
    given (only "registry" exists here)."""
    if status not in STATUSES:
        raise Refusal(400, f"Invalid status {status!r}: use 'all', or leave it out")
    if source and source != SOURCE:
        return []
    rows = Downtime.objects.filter(source=DowntimeSource.ADMIN).select_related("server")
    if status != "all":
        rows = rows.filter(Q(ends_at__isnull=True) | Q(ends_at__gt=timezone.now()))
    prefixes = {row.server.registry_prefix.rstrip("/") for row in rows}
    server_ids = dict(
        NamespaceRegistration.objects.filter(prefix__in=prefixes)
        .exclude(server_id="")
        .values_list("prefix", "server_id")
    )
    return [_entry(row, server_ids) for row in rows.order_by("starts_at", "pk")]


def _entry(row: Downtime, server_ids: dict[str, str]) -> dict[str, Any]:
    prefix = row.server.registry_prefix.rstrip("/")
    server_id = server_ids.get(prefix, "")
    created = _epoch_ms(row.created_at)
    return {
        "id": str(row.pk),
        "serverName": row.server.name if server_id else prefix,
        "serverId": server_id,
        "createdBy": "",
        "updatedBy": "",
        "source": SOURCE,
        "class": row.downtime_class,
        "description": row.description,
        "severity": row.severity,
        "startTime": _epoch_ms(row.starts_at),
        "endTime": _epoch_ms(row.ends_at),
        "createdAt": created,
        "updatedAt": created,
        "deletedAt": 0,
    }
