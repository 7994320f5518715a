"""``python manage.py stat <path>``: ask every candidate server for an object, now."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import replace
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from director import presence, redirects, registry
from director.management.arguments import object_path
from director.management.table import NO_REDIRECT, in_answer_order, render
from director.serving.traffic import RouteLabel
from director.snapshot import ServerKey, Snapshot
from director.stat import Outcome, StatEngine, StatResult

COLUMNS = ("name", "kind", "outcome", "status", "ms", "size", "checksum", "age")


class Command(BaseCommand):
    help = (
        "Stat every candidate server (origins and caches of the path's namespace) for PATH "
        "right now, bypassing the result cache; print one row per server and the redirect "
        "the director would give on its object (cache) and origin routes. Exit 0 when some "
        "server has the object, 1 when none has it, 2 on bad input."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", help="Object path, e.g. /ospool/data/file.txt")
        parser.add_argument("--token", default="", help="Bearer token sent with each HEAD.")
        parser.add_argument(
            "--timeout", type=float, default=None, help="Seconds per HEAD (default: stat timeout)."
        )
        parser.add_argument("--json", action="store_true", help="Print JSON instead of a table.")

    def handle(self, *args: Any, **options: Any) -> None:
        path = object_path(options["path"])
        snapshot = registry.current()
        timeout = (
            options["timeout"] if options["timeout"] is not None else snapshot.settings.stat_timeout
        )
        if not 0 < timeout <= 300:
            raise CommandError(
                f"--timeout must be in (0, 300] seconds, not {timeout}", returncode=2
            )
        namespace_path, entries = snapshot.longest_match(path, time.time())
        if not entries:
            self.stdout.write(f"No namespace of any routable server matches {path}.")
            sys.exit(NO_REDIRECT)

        # A private engine: nothing cached, no ejection carried over, this timeout.
        engine = StatEngine(
            replace(presence.stat_config(snapshot.settings), stat_timeout=timeout),
            user_agent=presence.USER_AGENT,
        )
        servers = [entry.server for entry in entries]
        results = engine.stat_many(
            [presence.target_for(server) for server in servers],
            path,
            deadline=time.monotonic() + timeout + 0.5,
            token=options["token"],
            token_scoped=entries[0].namespace.require_token,
            want_present=len(servers) + 1,  # wait for every answer
            use_cache=False,
        )
        redirects = {
            route: _would_redirect(snapshot, path, options["token"], results, route)
            for route in (RouteLabel.OBJECT, RouteLabel.ORIGIN)
        }
        # The object route's answer, then the origin route's, then the rest (kind, name).
        answered = [name for redirect in redirects.values() for name in redirect["servers"]]
        rows = in_answer_order(
            [_row(server.name, server.kind.value, results[server.key]) for server in servers],
            list(dict.fromkeys(answered)),
        )
        if options["json"]:
            document = {
                "path": path,
                "namespace": namespace_path,
                "servers": rows,
                "redirects": redirects,
            }
            self.stdout.write(json.dumps(document, indent=2))
        else:
            self.stdout.write(
                render(COLUMNS, [[row[column] for column in COLUMNS] for row in rows])
            )
            self.stdout.write("")
            for route, redirect in redirects.items():
                if redirect["status"] == 307:
                    self.stdout.write(f"{route} redirect: 307 Location: {redirect['location']}")
                else:
                    self.stdout.write(
                        f"{route} redirect: {redirect['status']} {redirect['message']}"
                    )
        if not any(result.outcome is Outcome.PRESENT for result in results.values()):
            self.stdout.flush()
            sys.exit(NO_REDIRECT)  # an answer, not a failure: no server has it


def _row(name: str, kind: str, result: StatResult) -> dict[str, Any]:
    return {
        "name": name,
        "kind": kind,
        "outcome": result.outcome.value,
        "status": result.status_code,
        "ms": round(result.latency * 1000, 1),
        "size": result.size,
        "checksum": result.checksum,
        "age": result.age,
        "detail": result.detail,
    }


def _would_redirect(
    snapshot: Snapshot,
    path: str,
    token: str,
    results: dict[ServerKey, StatResult],
    route: RouteLabel,
) -> dict[str, Any]:
    """What ``GET /api/v1.0/director/<route><path>`` would answer given these results."""
    request = redirects.new_request(
        snapshot,
        path,
        to_origin=route is RouteLabel.ORIGIN,
        authorization=f"Bearer {token}" if token else "",
    )
    result = redirects.decide(request, snapshot, known_results=results, startup_grace=False).result
    return {
        "status": result.status,
        "location": result.location,
        "message": result.message,
        "servers": [server.name for server in result.servers],
    }
