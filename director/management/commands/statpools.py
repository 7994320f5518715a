"""``manage.py statpools``: every server of a running director with its state and stat
pool, as a table (``/api/v1.0/console/pools``)."""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from director.management.table import (
    DEFAULT_DIRECTOR,
    get_json,
    relative,
    render,
    seconds_since,
)

COLUMNS = (
    "name",
    "kind",
    "state",
    "limit",
    "active",
    "waiting",
    "ejected",
    "times ejected",
    "failures",
    "cache",
    "last ad",
)
OUTCOME_COLUMNS = (
    "present",
    "absent",
    "denied",
    "error",
    "timeout",
    "saturated",
    "ejected",
    "pending",
)


class Command(BaseCommand):
    help = (
        "Read /api/v1.0/console/pools of a running director and print one row per server "
        "of the registry (disabled and expired ones too): its state, stat pool limit, active "
        "and waiting stats, ejection time left and times ejected, consecutive failures, cache "
        "entries, last advertisement, and outcome counts. Exit 1 when the director cannot be "
        "reached, 2 on bad input."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--director",
            default=settings.DIRECTOR_EXTERNAL_URL or DEFAULT_DIRECTOR,
            help="Base URL of the director (default: DIRECTOR_EXTERNAL_URL or "
            f"{DEFAULT_DIRECTOR}).",
        )
        parser.add_argument(
            "--watch", type=float, default=None, metavar="SECONDS", help="Refresh every SECONDS."
        )
        parser.add_argument(
            "--count", type=int, default=None, help="With --watch: stop after this many refreshes."
        )
        parser.add_argument("--json", action="store_true", help="Print the JSON as received.")

    def handle(self, *args: Any, **options: Any) -> None:
        base = options["director"].rstrip("/")
        parts = urlsplit(base)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise CommandError(f"--director must be an http(s) URL, not {base!r}", returncode=2)
        watch = options["watch"]
        if watch is not None and watch <= 0:
            raise CommandError("--watch must be a positive number of seconds", returncode=2)
        count = options["count"]
        if count is not None and count < 1:
            raise CommandError("--count must be at least 1", returncode=2)
        shown = 0
        while True:
            pools = get_json(f"{base}/api/v1.0/console/pools", timeout=5)
            if options["json"]:
                self.stdout.write(json.dumps(pools, indent=2))
            else:
                if watch is not None:
                    self.stdout.write(time.strftime("%Y-%m-%d %H:%M:%S") + f"  {base}")
                self.stdout.write(render_pools(pools))
            shown += 1
            if watch is None or (count is not None and shown >= count):
                return
            self.stdout.flush()
            time.sleep(watch)


def render_pools(document: dict[str, Any]) -> str:
    """The table, in the registry's order (kind, name): there is no answer to order by."""
    servers = document["servers"]
    if not servers:
        return "no servers in the registry"
    now = document["now"]
    rows = []
    for server in servers:
        pool = server["pool"] or {}
        outcomes = pool.get("outcomes") or {}
        ejected_for = pool.get("ejectedFor") or 0
        rows.append(
            [
                server["name"],
                server["kind"],
                server["state"],
                pool.get("limit"),
                pool.get("active"),
                pool.get("waiting"),
                f"{ejected_for:.0f} s left" if ejected_for else "",
                pool.get("timesEjected"),
                pool.get("consecutiveFailures"),
                pool.get("cacheEntries"),
                relative(seconds_since(server["lastAdvertisedAt"], now)) or server["source"],
                *(outcomes.get(name, 0) if pool else "" for name in OUTCOME_COLUMNS),
            ]
        )
    return render((*COLUMNS, *OUTCOME_COLUMNS), rows)
