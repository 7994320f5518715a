"""``python manage.py statpools``: the stat pools of a running director, as a table."""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

COLUMNS = (
    ("server", "name"),
    ("type", "type"),
    ("limit", "limit"),
    ("active", "active"),
    ("waiting", "waiting"),
    ("ejected until", "ejectedUntil"),
    ("failures", "consecutiveFailures"),
    ("cache", "cacheEntries"),
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
        "Read /api/v1.0/director_ui/stat/pools of a running director and print one row per "
        "server: limit, active and waiting stats, ejection, failures, cache entries and "
        "outcome counts. Exit 1 when the director cannot be reached, 2 on bad input."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--director",
            default=settings.DIRECTOR_EXTERNAL_URL or "http://127.0.0.1:8000",
            help="Base URL of the director (default: DIRECTOR_EXTERNAL_URL or http://127.0.0.1:8000).",
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
            pools = self._fetch(f"{base}/api/v1.0/director_ui/stat/pools")
            if options["json"]:
                self.stdout.write(json.dumps(pools, indent=2))
            else:
                if watch is not None:
                    self.stdout.write(time.strftime("%Y-%m-%d %H:%M:%S") + f"  {base}")
                self.stdout.write(render_table(pools))
            shown += 1
            if watch is None or (count is not None and shown >= count):
                return
            self.stdout.flush()
            time.sleep(watch)

    def _fetch(self, url: str) -> list[dict[str, Any]]:
        try:
            answer = requests.get(url, timeout=5)
        except requests.RequestException as error:
            raise CommandError(f"Cannot reach {url}: {error}", returncode=1) from None
        if answer.status_code != 200:
            raise CommandError(
                f"{url} answered {answer.status_code}: {answer.text[:200]}", returncode=1
            )
        try:
            return list(answer.json())
        except ValueError:
            raise CommandError(f"{url} did not answer JSON", returncode=1) from None


def render_table(pools: list[dict[str, Any]]) -> str:
    headers = [title for title, _ in COLUMNS] + list(OUTCOME_COLUMNS)
    rows = []
    for pool in pools:
        row = ["" if pool.get(key) is None else str(pool.get(key)) for _, key in COLUMNS]
        outcomes = pool.get("outcomes") or {}
        row.extend(str(outcomes.get(name, 0)) for name in OUTCOME_COLUMNS)
        rows.append(row)
    if not rows:
        return "no stat pools yet (no server has been statted)"
    widths = [max(len(header), *(len(row[i]) for row in rows)) for i, header in enumerate(headers)]
    lines = ["  ".join(header.ljust(widths[i]) for i, header in enumerate(headers))]
    lines.extend("  ".join(value.ljust(widths[i]) for i, value in enumerate(row)) for row in rows)
    return "\n".join(line.rstrip() for line in lines)
