"""The director's own health-test objects (reference 7.2, 7.3): names, body, WebDAV.

Plain Python. Origins receive ``director-test-<time>.txt`` by PUT; caches fetch
``<director>/<day>/director-test-<time>.txt``, which the director itself serves.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from email.utils import format_datetime
from xml.sax.saxutils import escape

MONITORING_NAMESPACE = "/pelican/monitoring"  # the federation's own, served by the director
MONITORING_PREFIX = MONITORING_NAMESPACE + "/"
TEST_DIRECTORY = f"{MONITORING_NAMESPACE}/directorTest"
TEST_TEXT = "This object was created by the Pelican director-test functionality"
# Storage types that take the test object (Pelican's SupportsSelfTest); an ad without
# one is posix. Remote-protocol backends (s3, https, globus, ssh, xroot) are not tested.
SELF_TEST_STORAGE_TYPES = frozenset({"posix", "posixv2", "pstore"})


def supports_self_test(storage_type: str) -> bool:
    return (storage_type or "posix") in SELF_TEST_STORAGE_TYPES


_TEST_NAME = re.compile(r"(?P<kind>director|self)-test-(?P<stamp>[^/]+?)\.(?P<ext>[A-Za-z0-9]+)")


@dataclass(frozen=True)
class TestFile:
    kind: str
    created_at: dt.datetime


def rfc3339(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def origin_test_path(now: dt.datetime) -> str:
    return f"{TEST_DIRECTORY}/director-test-{rfc3339(now)}.txt"


def cache_test_path(director_name: str, now: dt.datetime) -> str:
    day = now.astimezone(dt.UTC).strftime("%Y-%m-%d")
    return f"{TEST_DIRECTORY}/{director_name}/{day}/director-test-{rfc3339(now)}.txt"


def parse_test_file(path: str) -> TestFile | None:
    """The test file named by the last element of ``path``, or None if it is not one."""
    name = path.rstrip("/").rsplit("/", 1)[-1]
    match = _TEST_NAME.fullmatch(name)
    if match is None:
        return None
    try:
        created = dt.datetime.fromisoformat(match.group("stamp").replace("Z", "+00:00"))
        if created.tzinfo is None:
            return None
        created = created.astimezone(dt.UTC)  # year 1 or 9999 with an offset overflows
    except (ValueError, OverflowError):
        return None
    return TestFile(match.group("kind"), created)


def test_file_body() -> bytes:
    return (TEST_TEXT + "\n").encode()


def propfind_body(href: str, test_file: TestFile) -> bytes:
    length = len(test_file_body())
    modified = format_datetime(test_file.created_at.astimezone(dt.UTC), usegmt=True)
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<D:multistatus xmlns:D="DAV:"><D:response>'
        f"<D:href>{escape(href)}</D:href><D:propstat><D:prop>"
        f"<D:getcontentlength>{length}</D:getcontentlength>"
        f"<D:getlastmodified>{modified}</D:getlastmodified>"
        "<D:iscollection>0</D:iscollection><D:resourcetype/>"
        "</D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat>"
        "</D:response></D:multistatus>\n"
    ).encode()
