"""The director's own health-test objects (reference 7.2, 7.3): names, body, WebDAV.

Plain Python. Origins receive ``director-test-<time>.txt`` by PUT; caches fetch
``<director>/<day>/director-test-<time>.txt``, which the director itself serves.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from email.utils import format_datetime
from xml.sax.saxutils import escape

from director.wire.gotime import go_rfc3339, parse_go_rfc3339

MONITORING_NAMESPACE = "/pelican/monitoring"  # the federation's own, served by the director
MONITORING_PREFIX = MONITORING_NAMESPACE + "/"
TEST_DIRECTORY = f"{MONITORING_NAMESPACE}/directorTest"
TEST_TEXT = "This object was created by the Pelican director-test functionality"
# Storage types that take the test object (Pelican's SupportsSelfTest); an ad without
# one is posix. Remote-protocol backends (s3, https, globus, ssh, xroot) are not tested.
SELF_TEST_STORAGE_TYPES = frozenset({"posix", "posixv2", "pstore"})


def supports_self_test(storage_type: str) -> bool:
    return (storage_type or "posix") in SELF_TEST_STORAGE_TYPES


@dataclass(frozen=True)
class TestFile:
    kind: str
    created_at: dt.datetime


def origin_test_path(now: dt.datetime) -> str:
    return f"{TEST_DIRECTORY}/director-test-{go_rfc3339(now)}.txt"


def cache_test_path(director_name: str, now: dt.datetime) -> str:
    day = now.astimezone(dt.UTC).strftime("%Y-%m-%d")
    return f"{TEST_DIRECTORY}/{director_name}/{day}/director-test-{go_rfc3339(now)}.txt"


def check_test_file(path: str) -> TestFile | str:
    """The test file ``path`` names, or why not in Pelican's words (its
    ``validateHealthTestRequest``: the 400 messages of ``getHealthTestFile``).

    ``path`` is cleaned as Go's ``path.Clean``. It must lie under /pelican/monitoring/,
    and its last element be ``director-test-<RFC 3339 time>.<ext>`` or
    ``self-test-<RFC 3339 time>.<ext>``.
    """
    if not path.startswith(MONITORING_PREFIX):
        return f"Path parameter is not a valid health test path: {path}"
    name = path.removeprefix(MONITORING_PREFIX).split("/")[-1]
    if not name:
        return (
            "Path parameter is not a valid health test path because it contains no file "
            f"name: {path}"
        )
    _, dot, extension = name.partition(".")
    if not dot:
        return f"Test file name is missing file extension: {path}"
    for kind in ("director", "self"):
        if name.startswith(f"{kind}-test"):
            stamp = name.removeprefix(f"{kind}-test-").removesuffix(f".{extension}")
            break
    else:
        return f"File name does not have a valid prefix: {name}"
    created = parse_go_rfc3339(stamp)
    if created is None:
        return (
            f"Invalid timestamp in file name: '{stamp}'. Should conform to "
            "2006-01-02T15:04:05Z07:00 format (RFC 3339)"
        )
    return TestFile(kind, created)


def test_file_body() -> bytes:
    return (TEST_TEXT + "\n").encode()


# Pelican's template, byte for byte: its director recorded it from a real cache
# (xrdcl-pelican's first query for an object is such a PROPFIND).
_PROPFIND_TEMPLATE = (
    '<?xml version="1.0" encoding="utf-8"?>\n'
    '\t<D:multistatus xmlns:D="DAV:" xmlns:ns1="http://apache.org/dav/props/" xmlns:ns0="DAV:">\n'
    '\t\t<D:response xmlns:lp1="DAV:" xmlns:lp2="http://apache.org/dav/props/" '
    'xmlns:lp3="LCGDM:">\n'
    "\t\t\t<D:href>{href}</D:href>\n"
    "\t\t\t<D:propstat>\n"
    "\t\t\t\t<D:prop>\n"
    "\t\t\t\t\t<lp1:getcontentlength>{length}</lp1:getcontentlength>\n"
    "\t\t\t\t\t<lp1:getlastmodified>{modified}</lp1:getlastmodified>\n"
    "\t\t\t\t\t<lp1:iscollection>0</lp1:iscollection>\n"
    "\t\t\t\t\t<lp1:executable>F</lp1:executable>\n"
    "\t\t\t\t</D:prop>\n"
    "\t\t\t\t<D:status>HTTP/1.1 200 OK</D:status>\n"
    "\t\t\t</D:propstat>\n"
    "\t\t</D:response>\n"
    "\t</D:multistatus>"
)


def propfind_body(path: str, test_file: TestFile) -> bytes:
    """Pelican's 207 body for a test file: ``path`` is the cleaned object path."""
    return _PROPFIND_TEMPLATE.format(
        href=escape(path),
        length=len(test_file_body()),
        modified=format_datetime(test_file.created_at, usegmt=True),
    ).encode()
