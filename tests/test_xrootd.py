"""The director with real XRootD servers: an XrdHttp origin and an XCache (Debian's
xrootd 5.5), the software Pelican's origins and caches are built on.

One director process (``manage.py serve``, its own SQLite file, health tests every
second), one origin and one XCache are started once for the module, on 127.0.0.1. The
cache fetches misses over HTTP from the director, which redirects them to the origin (the
director answers root-path reads from origins here), or to its own health-test files.
Skipped, with the reason, only when XRootD is not installed (``tests/xrootd_peers.py``).
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests
from director_process import DirectorProcess
from helpers import CACHE_UA, ORIGIN_UA, caps, make_ad, namespace_ad
from processes import poll_until, run_manage
from xrootd_peers import XRootDServer, missing_xrootd

from director.demo.fileserver import crc32c

MISSING = missing_xrootd()
pytestmark = pytest.mark.skipif(bool(MISSING), reason=MISSING)

NAMESPACE = "/xrd"
DATA = os.urandom(200 * 1024)
FILE = f"{NAMESPACE}/data.bin"
DIRECTORY = f"{NAMESPACE}/dir"
ORIGIN_CAPS = caps(PublicRead=True, Read=True, Write=True, Listing=True, FallBackRead=True)
CACHE_CAPS = caps(PublicRead=True, Read=True)
THRESHOLD = 5  # ejection_consecutive_failures (the default)
SETTINGS = {
    # Room on a busy machine: these tests are about answers, not speed (XCache's first
    # look at a path goes through the director and the origin).
    "stat_timeout": 5.0,
    "redirect_timeout": 12.0,
    "health_test_interval": 1.0,
    # Every request stats: no single-origin shortcut, no remembered answers; the adaptive
    # sort stats the cache too.
    "assume_presence_at_single_origin": False,
    "cache_presence_ttl": 0.0,
    "sort_method": "adaptive",
    "ejection_consecutive_failures": THRESHOLD,
}
HEALTH_DEADLINE = 60.0  # seconds for both servers' health tests to pass: a busy machine
HTTP_TIMEOUT = 15.0


@dataclass
class Federation:
    director: DirectorProcess
    origin: XRootDServer
    cache: XRootDServer

    def get(self, path: str, **kw: Any) -> requests.Response:
        """GET from the director, following redirects unless told not to."""
        kw.setdefault("timeout", HTTP_TIMEOUT)
        return requests.get(f"{self.director.url}{path}", **kw)

    def redirect(self, path: str) -> requests.Response:
        """The director's own answer to GET ``path``."""
        return self.get(path, allow_redirects=False)

    def debug(self, path: str) -> tuple[requests.Response, dict[str, Any]]:
        """The director's 307 to GET ``path`` and its debug body (each stat's outcome)."""
        answer = self.get(path, allow_redirects=False, headers={"X-Pelican-Debug": "true"})
        assert answer.status_code == 307, answer.text
        return answer, answer.json()

    def stat(self, path: str) -> tuple[int, dict[tuple[str, str], Any]]:
        """``manage.py stat PATH --json`` on the director's database: (exit status, rows
        by (kind, name))."""
        done = run_manage("stat", path, "--json", env=self.director.env)
        assert done.stdout, done.stderr
        document = json.loads(done.stdout)
        return done.returncode, {(row["kind"], row["name"]): row for row in document["servers"]}


def advertise(director: DirectorProcess, ad: dict[str, Any]) -> None:
    kind = "origin" if ad["registry-prefix"].startswith("/origins/") else "cache"
    answer = requests.post(
        f"{director.url}/api/v1.0/director/register{kind.title()}",
        json=ad,
        headers={
            "Authorization": f"Bearer {director.tokens[ad['registry-prefix']]}",
            "User-Agent": ORIGIN_UA if kind == "origin" else CACHE_UA,
        },
        timeout=HTTP_TIMEOUT,
    )
    assert answer.status_code == 200, answer.text


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Federation]:
    director = DirectorProcess(
        tmp_path_factory.mktemp("xrootd-director"),
        env={"DIRECTOR_DEFAULT_RESPONSE": "origin", "DIRECTOR_NAME": "xrootd-test-director"},
        **SETTINGS,
    )
    origin = XRootDServer("origin")
    cache = XRootDServer("cache", director="")  # the director URL, once it serves
    try:
        director.start(["/origins/xrootd-origin", "/caches/xrootd-cache"])
        (origin.data / NAMESPACE.strip("/") / "dir").mkdir(parents=True)
        (origin.data / FILE.strip("/")).write_bytes(DATA)
        (origin.data / DIRECTORY.strip("/") / "inside.txt").write_bytes(b"inside\n")
        origin.start()
        cache.values["director"] = director.url
        cache.start()
        advertise(
            director,
            make_ad(
                "xrootd-origin",
                "origin",
                origin.url,
                namespaces=[namespace_ad(NAMESPACE, Caps=ORIGIN_CAPS)],
                capabilities=ORIGIN_CAPS,
            ),
        )
        advertise(
            director,
            make_ad(
                "xrootd-cache",
                "cache",
                cache.url,
                namespaces=[namespace_ad(NAMESPACE, Caps=CACHE_CAPS)],
                capabilities=CACHE_CAPS,
            ),
        )
        yield Federation(director, origin, cache)
    finally:
        director.stop()
        cache.remove()
        origin.remove()


def test_the_director_stat_reports_a_file_present_with_size_and_checksum_at_both_servers(
    federation: Federation,
) -> None:
    status, rows = federation.stat(FILE)
    assert status == 0
    origin, cache = rows[("origin", "xrootd-origin")], rows[("cache", "xrootd-cache")]
    assert (origin["outcome"], origin["status"], origin["size"]) == ("present", 200, len(DATA))
    # XRootD sends crc32c in base64; the director reports it in hex, as the IANA spells it.
    assert origin["checksum"] == f"crc32c={crc32c(DATA):08x}"
    assert origin["detail"] == ""
    # XCache answers 405 to a HEAD that asks for a digest: asked again without, it is there.
    assert (cache["outcome"], cache["status"], cache["size"]) == ("present", 200, len(DATA))
    assert cache["detail"] == "asked again without Want-Digest after HTTP 405"


def test_a_missing_object_is_absent_at_the_origin_and_at_the_cache(
    federation: Federation,
) -> None:
    path = f"{NAMESPACE}/no-such-object"
    refused = federation.redirect(f"/api/v1.0/director/origin{path}")
    assert refused.status_code == 404
    assert refused.json()["msg"].startswith(f"No sources reported possession of the object {path}")
    # A cache request: the caches answer for the object, the origin is not asked.
    answer, debug = federation.debug(f"/api/v1.0/director/object{path}")
    assert answer.headers["Location"] == f"{federation.cache.url}{path}"
    assert debug["stat"] == {"xrootd-cache": "absent"}
    assert federation.get(f"/api/v1.0/director/object{path}").status_code == 404  # XCache's


def test_a_directory_is_present_at_the_origin_and_at_the_cache_not_an_error(
    federation: Federation,
) -> None:
    """XRootD answers a digest HEAD on a directory with 409 (XCache with 405), and after a
    couple of those not at all; the plain HEAD says it exists."""
    answer, debug = federation.debug(f"/api/v1.0/director/origin{DIRECTORY}")
    assert answer.headers["Location"] == f"{federation.origin.url}{DIRECTORY}"
    assert debug["stat"] == {"xrootd-origin": "present"}
    answer, debug = federation.debug(f"/api/v1.0/director/object{DIRECTORY}")
    assert answer.headers["Location"] == f"{federation.cache.url}{DIRECTORY}"
    assert debug["stat"] == {"xrootd-cache": "present"}


def test_a_download_through_the_origin_redirect_is_the_file_byte_for_byte(
    federation: Federation,
) -> None:
    answer = federation.get(f"/api/v1.0/director/origin{FILE}")
    assert answer.status_code == 200
    assert answer.history[0].status_code == 307
    assert answer.history[0].headers["Location"] == f"{federation.origin.url}{FILE}"
    assert answer.content == DATA


def test_an_object_request_is_served_by_xcache_which_pulls_it_through_the_director(
    federation: Federation,
) -> None:
    answer = federation.get(f"/api/v1.0/director/object{FILE}")
    assert answer.status_code == 200
    assert answer.history[0].status_code == 307
    assert answer.history[0].headers["Location"] == f"{federation.cache.url}{FILE}"
    assert answer.content == DATA
    assert (federation.cache.data / FILE.strip("/")).is_file()  # now held by the cache


def test_a_put_and_a_delete_through_the_origin_route_reach_the_xrootd_origin(
    federation: Federation,
) -> None:
    path = f"{NAMESPACE}/uploads/{uuid.uuid4().hex}.txt"
    body = b"written through the director\n"
    url = f"{federation.director.url}/api/v1.0/director/origin{path}"
    put = requests.put(url, data=body, timeout=HTTP_TIMEOUT)  # 307 keeps method and body
    assert put.status_code in (200, 201), put.text
    assert put.history[0].headers["Location"] == f"{federation.origin.url}{path}"
    stored = federation.origin.data / path.strip("/")
    assert stored.read_bytes() == body
    deleted = requests.delete(url, timeout=HTTP_TIMEOUT)
    assert deleted.status_code in (200, 204), deleted.text
    assert not stored.exists()


def test_the_directors_health_tests_pass_against_the_origin_and_the_cache(
    federation: Federation,
) -> None:
    def all_ok() -> dict[str, str] | None:
        servers = federation.get("/api/v1.0/director_ui/servers").json()
        states = {server["name"]: server["healthStatus"] for server in servers}
        return states if set(states.values()) == {"OK"} and len(states) == 2 else None

    states, _ = poll_until(all_ok, HEALTH_DEADLINE, interval=0.5)
    servers = federation.get("/api/v1.0/director_ui/servers").json()
    assert states, [(s["name"], s["healthStatus"], s["healthMessage"]) for s in servers]


def test_requests_for_directories_and_missing_objects_eject_no_healthy_server(
    federation: Federation,
) -> None:
    """Twice the ejection threshold of each, every request statting (no remembered
    answers): the origin on the origin route, the cache on the object route (adaptive)."""
    for number in range(2 * THRESHOLD):
        assert federation.redirect(f"/api/v1.0/director/origin{DIRECTORY}").status_code == 307
        missing = federation.redirect(f"/api/v1.0/director/origin{NAMESPACE}/missing-{number}")
        assert missing.status_code == 404
        assert federation.redirect(f"/api/v1.0/director/object{DIRECTORY}").status_code == 307
        missing = federation.redirect(f"/api/v1.0/director/object{NAMESPACE}/missing-{number}")
        assert missing.status_code == 307  # to the cache, which answers 404 itself
    pools = federation.director.pools()
    for name in ("xrootd-origin", "xrootd-cache"):
        pool = pools[name]
        assert (pool["ejectedUntil"], pool["timesEjected"], pool["consecutiveFailures"]) == (
            None,
            0,
            0,
        ), pool
        assert pool["outcomes"].get("error", 0) == 0, pool
    assert federation.director.health()["status"] == "ok"
    found = federation.redirect(f"/api/v1.0/director/origin{FILE}")
    assert found.headers["Location"] == f"{federation.origin.url}{FILE}"
