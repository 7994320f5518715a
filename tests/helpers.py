"""Builders shared by the tests (fixtures stay in conftest.py)."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from typing import Any

from django.utils import timezone

from director import registry
from director.models import Namespace, Server, Source, StatSettings
from director.presence import stat_config as stat_config_for
from director.snapshot import DEFAULT_SETTINGS
from director.stat import StatConfig

PUBLIC_CAPS = {
    "PublicRead": True,
    "Read": True,
    "Write": False,
    "Listing": False,
    "FallBackRead": False,
    "Copies": False,
}
ORIGIN_UA = "pelican-origin/7.20.0"
CACHE_UA = "pelican-cache/7.20.0"


def stat_config(**overrides: Any) -> StatConfig:
    """The stat engine's configuration under the default settings, with ``overrides``."""
    return replace(stat_config_for(DEFAULT_SETTINGS), **overrides)


def caps(**flags: bool) -> dict[str, bool]:
    """Wire capabilities, e.g. caps(PublicRead=True, Read=True)."""
    base = dict.fromkeys(PUBLIC_CAPS, False)
    base.update(flags)
    return base


def namespace_ad(path: str, **extra: Any) -> dict[str, Any]:
    """A NamespaceAd; public readable unless ``Caps`` is given."""
    return {"Caps": extra.pop("Caps", PUBLIC_CAPS), "path": path, **extra}


def make_ad(
    name: str,
    kind: str,
    data_url: str,
    namespaces: list[dict[str, Any]] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """A Pelican advertisement body with a ten-minute expiry."""
    now = timezone.now()
    ad: dict[str, Any] = {
        "name": name,
        "registry-prefix": f"/{kind}s/{name}",
        "data-url": data_url,
        "web-url": data_url,
        "capabilities": PUBLIC_CAPS,
        "namespaces": namespaces if namespaces is not None else [namespace_ad("/test")],
        "status": "ok",
        "version": "7.20.0",
        "now": now.isoformat(),
        "expiry": (now + dt.timedelta(minutes=10)).isoformat(),
    }
    ad.update(fields)
    return ad


def configure_director(**overrides: Any) -> StatSettings:
    """Save the settings row (start-up grace off unless given) and rebuild the snapshot."""
    row = StatSettings.load()
    row.startup_grace = 0.0
    for name, value in overrides.items():
        setattr(row, name, value)
    row.full_clean()
    row.save()
    registry.rebuild()
    return row


def create_server(
    name: str,
    kind: str,
    data_url: str,
    namespaces: dict[str, dict[str, bool]] | None = None,
    *,
    rebuild: bool = True,
    **fields: Any,
) -> Server:
    """An admin-defined server with namespaces {path: capability fields}, via the ORM."""
    capability_fields = {
        key: fields.pop(key)
        for key in ("public_reads", "reads", "writes", "listings", "direct_reads", "copies")
        if key in fields
    }
    server = Server.objects.create(
        name=name,
        kind=kind,
        data_url=data_url,
        source=Source.ADMIN,
        **({"public_reads": True, "reads": True} | capability_fields),
        **fields,
    )
    for path, ns_caps in (namespaces or {"/test": {}}).items():
        Namespace.objects.create(
            server=server, path=path, **({"public_reads": True, "reads": True} | ns_caps)
        )
    if rebuild:
        registry.rebuild()
    return server
