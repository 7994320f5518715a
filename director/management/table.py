"""What the diagnostics commands (``stat``, ``explain``, ``statpools``) share: one table
renderer, one set of column names (``name``, ``kind``, then their own), one order (the
answer's, then the rest by kind and name), relative times, and "no redirect" as exit
status 1 rather than an error."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import requests
from django.core.management.base import CommandError

NO_REDIRECT = 1  # the exit status of an answer that is not a redirect: an outcome, not a fault
DEFAULT_DIRECTOR = "http://127.0.0.1:8000"


def cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def render(columns: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """Left-aligned columns two spaces apart, the header first, no trailing spaces."""
    cells = [[cell(value) for value in row] for row in rows]
    widths = [
        max([len(column), *(len(line[i]) for line in cells)]) for i, column in enumerate(columns)
    ]
    lines = ["  ".join(column.ljust(widths[i]) for i, column in enumerate(columns))]
    lines.extend(
        "  ".join(value.ljust(widths[i]) for i, value in enumerate(line)) for line in cells
    )
    return "\n".join(line.rstrip() for line in lines)


def in_answer_order(
    rows: Iterable[Mapping[str, Any]], answer: Sequence[str]
) -> list[Mapping[str, Any]]:
    """The servers of ``answer`` in its order, then the rest by (kind, name)."""
    place = {name: index for index, name in enumerate(answer)}
    return sorted(
        rows,
        key=lambda row: (
            place.get(row["name"], len(place)),
            "" if row["name"] in place else row["kind"],
            "" if row["name"] in place else row["name"],
        ),
    )


def relative(seconds: float | None) -> str:
    """``12 s ago`` for a past moment (positive seconds), ``in 3 min`` for a future one."""
    if seconds is None:
        return ""
    span = abs(seconds)
    if span < 60:
        text = f"{span:.0f} s"
    elif span < 3600:
        text = f"{span // 60:.0f} min {span % 60:.0f} s"
    elif span < 86400:
        text = f"{span // 3600:.0f} h {span % 3600 // 60:.0f} min"
    else:
        text = f"{span // 86400:.0f} d"
    return f"{text} ago" if seconds >= 0 else f"in {text}"


def seconds_since(moment: str | None, now: str) -> float | None:
    """Seconds from an RFC 3339 ``moment`` to ``now`` (both as the director wrote them)."""
    if not moment:
        return None
    return (_parse(now) - _parse(moment)).total_seconds()


def _parse(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def get_json(url: str, *, timeout: float, headers: Mapping[str, str] | None = None) -> Any:
    """The JSON a running director answers; CommandError (exit status 1) when it cannot
    be reached or answers anything but 200 with JSON."""
    try:
        answer = requests.get(url, timeout=timeout, headers=dict(headers or {}))
    except requests.RequestException as error:
        raise CommandError(f"Cannot reach {url}: {error}", returncode=1) from None
    if answer.status_code != 200:
        raise CommandError(
            f"{url} answered {answer.status_code}: {answer.text[:200]}", returncode=1
        )
    try:
        return answer.json()
    except ValueError:
        raise CommandError(f"{url} did not answer JSON", returncode=1) from None
