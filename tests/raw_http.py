"""Redirects read off the wire (tests/test_redirect_http*.py): one HTTP answer with every
header line as sent, Pelican's CORS lines, and the JSON error body with its request ID."""

from __future__ import annotations

import http.client
import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

JOB_ID = "6f1c2e4a-0f9b-4b7e-9d51-3c1a8d0e7a21"
UUID = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
CORS_LINES = [
    ("Access-Control-Allow-Origin", "*"),
    ("Access-Control-Allow-Methods", "GET, PUT, OPTIONS, PROPFIND"),
    ("Access-Control-Allow-Headers", "Content-Type, Authorization, Depth"),
    (
        "Access-Control-Expose-Headers",
        "Content-Type, Authorization, X-Pelican-User, X-Pelican-Timeout, "
        "X-Pelican-Token-Generation, X-Pelican-Authorization, X-Pelican-Namespace",
    ),
]


@dataclass
class Raw:
    """One HTTP answer with every header line as sent (requests merges repeated ones)."""

    status: int
    lines: list[tuple[str, str]]
    body: bytes

    def values(self, name: str) -> list[str]:
        return [value for key, value in self.lines if key.lower() == name.lower()]

    def one(self, name: str) -> str:
        values = self.values(name)
        assert len(values) == 1, (name, values)
        return values[0]

    def json(self) -> Any:
        return json.loads(self.body)


def raw(
    live_director: Any,
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
) -> Raw:
    """Send ``path`` exactly as given (no dot-segment removal, no re-quoting)."""
    address = urlsplit(live_director.url)
    conn = http.client.HTTPConnection(address.hostname, address.port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        answer = conn.getresponse()
        return Raw(answer.status, answer.getheaders(), answer.read())
    finally:
        conn.close()


def assert_error_body(body: Any, message_start: str, request_id: str | None = None) -> str:
    assert set(body) == {"status", "msg"}
    assert body["status"] == "error"
    assert body["msg"].startswith(message_start), body["msg"]
    match = re.fullmatch(rf".* Request ID: ({UUID})", body["msg"])
    assert match is not None, body["msg"]
    if request_id is not None:
        assert match.group(1) == request_id
    return body["msg"]


def redirect_lines(answer: Raw) -> list[tuple[str, str]]:
    """The Pelican header lines of an answer, without transport headers."""
    transport = {"date", "content-length", "content-type"}
    return [(key, value) for key, value in answer.lines if key.lower() not in transport]
