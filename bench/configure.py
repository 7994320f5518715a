"""Run inside ``manage.py shell``: write a benchmark's settings row and servers."""

from __future__ import annotations

import json
from pathlib import Path


def apply(config_path: str) -> None:
    from director.models import Namespace, Server, StatSettings

    config = json.loads(Path(config_path).read_text())
    row = StatSettings.load()
    for key, value in config["settings"].items():
        setattr(row, key, value)
    row.full_clean()
    row.save()
    for spec in config["servers"]:
        server = Server.objects.create(
            name=spec["name"],
            kind=spec["kind"],
            data_url=spec["url"],
            public_reads=True,
            reads=True,
            latitude=spec["latitude"],
            longitude=spec["longitude"],
        )
        Namespace.objects.create(
            server=server, path=spec["namespace"], public_reads=True, reads=True
        )
