"""Go's ``time.Time`` as Pelican writes and reads it: RFC 3339 in UTC with ``Z``.

Plain Python. Two layouts: Go's ``time.RFC3339`` (whole seconds), in the health-test
files' names and reports, and the JSON encoding of a ``time.Time`` (``RFC3339Nano``;
written here with Python's microseconds, as the API has always written it).
"""

from __future__ import annotations

import datetime as dt
import re


def go_rfc3339(moment: dt.datetime) -> str:
    """An aware moment in Go's ``time.RFC3339`` layout, in UTC: ``2006-01-02T15:04:05Z``."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# Go's zero ``time.Time`` in JSON: what Pelican writes for a moment never set.
GO_ZERO_TIME = "0001-01-01T00:00:00Z"


def go_time(moment: dt.datetime) -> str:
    """An aware moment as a JSON ``time.Time``, in UTC: ``2006-01-02T15:04:05.123456Z``
    (no fraction when its microseconds are 0)."""
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


# Go's time.Parse with RFC 3339's layout, as Pelican reads the time in a test file's name
# (no fraction: the name's first "." starts its extension).
GO_RFC3339 = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{1,2}):(\d{2}):(\d{2})(Z|[+-]\d{2}:\d{2})")


def parse_go_rfc3339(stamp: str) -> dt.datetime | None:
    """The UTC moment ``stamp`` names in Go's ``time.RFC3339`` layout, or None."""
    match = GO_RFC3339.fullmatch(stamp)
    if match is None:
        return None
    year, month, day, hour, minute, second, zone = match.groups()
    try:
        offset = dt.timedelta()
        if zone != "Z":
            sign = -1 if zone[0] == "-" else 1
            offset = sign * dt.timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
        moment = dt.datetime(
            int(year),
            int(month),
            int(day),
            int(hour),
            int(minute),
            int(second),
            tzinfo=dt.timezone(offset),
        )
        return moment.astimezone(dt.UTC)  # year 1 or 9999 with an offset overflows
    except (ValueError, OverflowError):
        return None
