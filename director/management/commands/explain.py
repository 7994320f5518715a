"""``python manage.py explain <path>``: why a client would be sent where."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from director.explain import Explanation, explain, parse_coordinate
from director.geo import parse_address
from director.management.arguments import object_path

COLUMNS = ("server", "type", "km", "distance", "status", "avail", "total", "stat", "rank / reason")


class Command(BaseCommand):
    help = (
        "Explain the redirect for PATH and one client: each candidate server with its "
        "distance in km, every weight, the outcome of its stat and its place in the answer, "
        "and why every other server was left out. Exit 0 on a redirect, 1 on an error answer, "
        "2 on bad input."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", help="Object path, e.g. /ospool/data/file.txt")
        parser.add_argument("--client-ip", default="", help="The client's address (GeoIP).")
        parser.add_argument(
            "--coordinate", default=None, help="LAT,LONG: the client declares its location."
        )
        parser.add_argument("--origin", action="store_true", help="The origin route, not caches.")
        parser.add_argument("--token", default="", help="The client's bearer token.")
        parser.add_argument("--json", action="store_true", help="Print JSON instead of a table.")

    def handle(self, *args: Any, **options: Any) -> None:
        path = object_path(options["path"])
        client_ip = options["client_ip"]
        if client_ip and parse_address(client_ip) is None:
            raise CommandError(f"--client-ip {client_ip!r} is not an IP address", returncode=2)
        coordinate = None
        if options["coordinate"] is not None:
            try:
                coordinate = parse_coordinate(options["coordinate"])
            except ValueError as error:
                raise CommandError(f"--coordinate: {error}", returncode=2) from None
        explanation = explain(
            path,
            client_ip=client_ip,
            coordinate=coordinate,
            to_origin=options["origin"],
            token=options["token"],
        )
        if options["json"]:
            self.stdout.write(json.dumps(explanation.as_json(), indent=2))
        else:
            self.stdout.write(render(explanation))
        if explanation.status >= 400:
            raise CommandError(f"The director would answer {explanation.status}", returncode=1)


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


def render(explanation: Explanation) -> str:
    client = explanation.client
    lines = [
        f"path:      {explanation.path} ({explanation.route} route)",
        f"namespace: {explanation.namespace or '(none)'}",
        f"client:    {client.latitude:.4f},{client.longitude:.4f} ({client.source})"
        + (f" ip {explanation.client_ip}" if explanation.client_ip else ""),
        f"sort:      {explanation.method}",
        "",
    ]
    rows = []
    for line in explanation.servers:
        weights = line.weights or {}
        rows.append(
            [
                line.name,
                line.kind,
                _number(line.distance_km),
                _number(weights.get("distance")),
                _number(weights.get("status")),
                _number(weights.get("availability")),
                _number(weights.get("total")),
                line.stat,
                f"#{line.rank}" if line.rank else line.excluded,
            ]
        )
    widths = [
        max(len(c), *(len(r[i]) for r in rows)) if rows else len(c) for i, c in enumerate(COLUMNS)
    ]
    lines.append("  ".join(c.ljust(widths[i]) for i, c in enumerate(COLUMNS)).rstrip())
    lines.extend("  ".join(v.ljust(widths[i]) for i, v in enumerate(r)).rstrip() for r in rows)
    lines.append("")
    if explanation.status == 307:
        lines.append(f"answer: 307 Location: {explanation.location}")
    else:
        lines.append(f"answer: {explanation.status} {explanation.message}")
    return "\n".join(lines)
