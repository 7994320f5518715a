"""``manage.py explain <path>``: why a client would be sent where.

By default it asks the running director (``--director``, default ``DIRECTOR_EXTERNAL_URL``
or http://127.0.0.1:8000) through the console's explain, the same code path as the
console's Why page, so the answer uses that process's stat engine, ejections and sticky
client locations. When no director answers there (and none was named), or with
``--local``, it explains in this process, which has its own.
"""

from __future__ import annotations

import json
import sys
from typing import Any
from urllib.parse import urlencode, urlsplit

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from pydantic import ValidationError

from director.explain import ExplanationOut, explain, parse_coordinate
from director.geo import parse_address
from director.management.arguments import object_path
from director.management.table import DEFAULT_DIRECTOR, NO_REDIRECT, get_json, render

COLUMNS = ("name", "kind", "km", "distance", "status", "avail", "total", "stat", "rank / reason")
TIMEOUT = 30.0  # seconds: the director's own redirect deadline bounds the stats


class Command(BaseCommand):
    help = (
        "Explain the redirect for PATH and one client: each server with its distance in km, "
        "every weight, the outcome of its stat and its place in the answer, and why every "
        "other server was left out; in the running director (--director) when one answers, "
        "else in this process. Exit 0 on a redirect, 1 when the answer is not a redirect, "
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
        where = parser.add_mutually_exclusive_group()
        where.add_argument(
            "--director",
            default=None,
            help="Base URL of the running director to ask (default: DIRECTOR_EXTERNAL_URL or "
            f"{DEFAULT_DIRECTOR}, and this process when none answers there).",
        )
        where.add_argument(
            "--local", action="store_true", help="Explain in this process, not the director's."
        )

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
        asked: tuple[ExplanationOut, str] | None = None
        if not options["local"]:
            named = options["director"]
            base = (named or settings.DIRECTOR_EXTERNAL_URL or DEFAULT_DIRECTOR).rstrip("/")
            parts = urlsplit(base)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise CommandError(f"--director must be an http(s) URL, not {base!r}", returncode=2)
            asked = self._ask(base, path, options, fallback=named is None)
        if asked is None:
            explanation = explain(
                path,
                client_ip=client_ip,
                coordinate=coordinate,
                to_origin=options["origin"],
                token=options["token"],
            )
            asked = explanation, "this process"
        explanation, where = asked
        if options["json"]:
            document = {**explanation.model_dump(mode="json"), "asked": where}
            self.stdout.write(json.dumps(document, indent=2))
        else:
            self.stdout.write(render_explanation(explanation, where))
        if explanation.status not in (200, 307):
            self.stdout.flush()
            sys.exit(NO_REDIRECT)

    def _ask(
        self, base: str, path: str, options: dict[str, Any], *, fallback: bool
    ) -> tuple[ExplanationOut, str] | None:
        """The running director's explanation and who answered it; None to explain here."""
        query = {
            "path": path,
            "client_ip": options["client_ip"],
            "origin": "true" if options["origin"] else "false",
        }
        if options["coordinate"] is not None:
            query["coordinate"] = options["coordinate"]
        url = f"{base}/api/v1.0/console/explain?{urlencode(query)}"
        token = options["token"]
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            document: dict[str, Any] = get_json(url, timeout=TIMEOUT, headers=headers)
        except CommandError as error:
            if fallback and str(error).startswith("Cannot reach"):
                self.stderr.write(
                    f"No director answers at {base}; explaining in this process (its stat "
                    "cache, ejections and client locations are its own)."
                )
                return None
            if " answered 400:" in str(error):
                raise CommandError(str(error), returncode=2) from None
            raise
        worker = document.pop("worker", {})
        try:
            explanation = ExplanationOut.model_validate(document)
        except ValidationError as error:
            raise CommandError(
                f"{base} answered an explanation this command cannot read: {error}"
            ) from None
        return explanation, f"{base} (process {worker.get('pid')} on {worker.get('host')})"


def render_explanation(explanation: ExplanationOut, asked: str) -> str:
    """The explain table (``director.management.table``), wherever it was explained."""
    client = explanation.client
    lines = [
        f"path:      {explanation.path} ({explanation.route} route)",
        f"namespace: {explanation.namespace or '(none)'}",
        f"client:    {client.latitude:.4f},{client.longitude:.4f} ({client.source})"
        + (f" ip {client.ip}" if client.ip else ""),
        f"sort:      {explanation.sortMethod}",
        f"asked:     {asked}",
        "",
    ]
    rows = []
    for server in explanation.servers:
        weights = server.weights
        rows.append(
            [
                server.name,
                server.kind,
                server.distanceKm,
                weights.distance if weights else None,
                weights.status if weights else None,
                weights.availability if weights else None,
                weights.total if weights else None,
                server.stat,
                f"#{server.rank}" if server.rank else server.excluded,
            ]
        )
    lines.append(render(COLUMNS, rows))
    lines.append("")
    if explanation.status == 307:
        lines.append(f"answer: 307 Location: {explanation.location}")
    else:
        lines.append(f"answer: {explanation.status} {explanation.message}")
    return "\n".join(lines)
