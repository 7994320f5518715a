"""Dates and times as the admin shows them: with seconds and the zone (UTC), never
"Dec. 5, 2026, 1 p.m." (``FORMAT_MODULE_PATH``)."""

DATETIME_FORMAT = "Y-m-d H:i:s T"
SHORT_DATETIME_FORMAT = "Y-m-d H:i:s T"
DATE_FORMAT = "Y-m-d"
SHORT_DATE_FORMAT = "Y-m-d"
TIME_FORMAT = "H:i:s"
