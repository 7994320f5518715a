"""The demo file servers' data plane (director/demo/fileserver.py, webdav.py): byte
ranges, HEAD with size and digest, WebDAV PROPFIND with XRootD's properties over a data
folder and in-memory objects, and a cache that passes ranges, HEADs and PROPFINDs of what
it does not hold through the director to an origin. The same servers serve ``make run``;
tests/test_pelicanfs.py drives them with a real client."""

from __future__ import annotations

import email.utils
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import requests
from helpers import caps, namespace_ad

from director.demo.fileserver import FileServer, crc32c
from director.demo.webdav import RangeNotSatisfiable, byte_range

HELLO = b"Hello from the director demo federation!\n"  # 41 bytes
NUMBERS = b"n,square\n1,1\n2,4\n"
LISTED = caps(PublicRead=True, Read=True, Listing=True)
DAV = "{DAV:}"


@pytest.mark.parametrize(
    ("header", "selected"),
    [
        (None, None),
        ("bytes=0-4", (0, 4)),
        ("bytes=6-", (6, 40)),
        ("bytes=-5", (36, 40)),
        ("bytes=-100", (0, 40)),
        ("bytes=30-100", (30, 40)),
        ("bytes=0-0", (0, 0)),
        ("bytes=0-1,5-6", None),  # several ranges: the whole object
        ("items=0-4", None),
        ("bytes=4-2", None),
        ("bytes=x-2", None),
        ("bytes=5", None),
    ],
)
def test_a_range_header_selects_one_range_or_none(header, selected):
    assert byte_range(header, len(HELLO)) == selected


@pytest.mark.parametrize(
    ("header", "size"),
    [("bytes=41-", 41), ("bytes=100-", 41), ("bytes=50-60", 41), ("bytes=-0", 41), ("bytes=0-", 0)],
)
def test_a_range_past_the_end_is_not_satisfiable(header, size):
    with pytest.raises(RangeNotSatisfiable):
        byte_range(header, size)


@pytest.fixture
def origin(tmp_path: Path, file_servers) -> FileServer:
    (tmp_path / "data" / "demo" / "sub").mkdir(parents=True)
    (tmp_path / "data" / "demo" / "hello.txt").write_bytes(HELLO)
    (tmp_path / "data" / "demo" / "sub" / "numbers.csv").write_bytes(NUMBERS)
    return file_servers({"/mem/a/b.txt": b"in memory"}, root=tmp_path / "data", name="origin")


def propfind(url: str, depth: str) -> tuple[int, dict[str, dict[str, str]]]:
    """The status, and each response's href -> its properties (text; "collection" for a
    collection's resourcetype)."""
    answer = requests.request("PROPFIND", url, headers={"Depth": depth}, timeout=10)
    if answer.status_code != 207:
        return answer.status_code, {}
    assert answer.headers["Content-Type"].startswith("application/xml")
    found: dict[str, dict[str, str]] = {}
    for response in ET.fromstring(answer.content).iter(f"{DAV}response"):
        prop = response.find(f"{DAV}propstat/{DAV}prop")
        assert prop is not None
        kind = prop.find(f"{DAV}resourcetype")
        assert kind is not None
        found[response.findtext(f"{DAV}href", "")] = {
            "size": prop.findtext(f"{DAV}getcontentlength", ""),
            "modified": prop.findtext(f"{DAV}getlastmodified", ""),
            "type": "collection" if kind.find(f"{DAV}collection") is not None else "object",
        }
    return 207, found


def test_ranges_are_answered_206_with_their_content_range_and_416_past_the_end(origin):
    url = f"{origin.url}/demo/hello.txt"

    ranged = requests.get(url, headers={"Range": "bytes=6-9"}, timeout=10)
    suffix = requests.get(url, headers={"Range": "bytes=-6"}, timeout=10)
    past = requests.get(url, headers={"Range": "bytes=41-"}, timeout=10)
    several = requests.get(url, headers={"Range": "bytes=0-1,3-4"}, timeout=10)

    assert ranged.status_code == 206
    assert ranged.content == b"from"
    assert ranged.headers["Content-Range"] == "bytes 6-9/41"
    assert ranged.headers["Content-Length"] == "4"
    assert suffix.content == HELLO[-6:]
    assert suffix.headers["Content-Range"] == "bytes 35-40/41"
    assert past.status_code == 416
    assert past.headers["Content-Range"] == "bytes */41"
    assert several.status_code == 200 and several.content == HELLO


def test_head_gives_the_size_the_date_and_the_digest_asked_for(origin):
    url = f"{origin.url}/demo/hello.txt"

    head = requests.head(url, headers={"Want-Digest": "crc32c"}, timeout=10)
    plain = requests.head(url, timeout=10)

    assert head.status_code == 200
    assert head.headers["Content-Length"] == str(len(HELLO))
    assert head.headers["Accept-Ranges"] == "bytes"
    assert head.headers["Digest"] == f"crc32c={crc32c(HELLO):08x}"
    assert email.utils.parsedate_to_datetime(head.headers["Last-Modified"]).tzinfo is not None
    assert "Digest" not in plain.headers
    assert head.content == b""


def test_propfind_describes_an_object_and_lists_a_folder_one_level_deep(origin):
    status_file, file_props = propfind(f"{origin.url}/demo/hello.txt", "0")
    status_info, info_props = propfind(f"{origin.url}/demo/hello.txt", "1")
    status_dir, dir_itself = propfind(f"{origin.url}/demo", "0")
    status_list, listing = propfind(f"{origin.url}/demo/", "1")

    assert status_file == status_info == status_dir == status_list == 207
    assert file_props == info_props
    assert file_props["/demo/hello.txt"]["size"] == str(len(HELLO))
    assert file_props["/demo/hello.txt"]["type"] == "object"
    assert email.utils.parsedate_to_datetime(file_props["/demo/hello.txt"]["modified"])
    assert list(dir_itself) == ["/demo/"]
    assert dir_itself["/demo/"]["type"] == "collection"
    assert sorted(listing) == ["/demo/", "/demo/hello.txt", "/demo/sub/"]
    assert listing["/demo/sub/"]["type"] == "collection"


def test_propfind_lists_in_memory_objects_as_collections_too(origin):
    _, listing = propfind(f"{origin.url}/mem", "1")

    assert sorted(listing) == ["/mem/", "/mem/a/"]
    assert {props["type"] for props in listing.values()} == {"collection"}
    _, deeper = propfind(f"{origin.url}/mem/a", "1")
    assert deeper["/mem/a/b.txt"] == {**deeper["/mem/a/b.txt"], "size": "9", "type": "object"}


def test_propfind_of_a_missing_path_is_404_and_of_an_object_as_a_collection_500(origin):
    # pelicanfs's isdir asks "<path>/": XRootD answers 500 for an object.
    assert propfind(f"{origin.url}/demo/nope.txt", "0")[0] == 404
    assert propfind(f"{origin.url}/demo/hello.txt/", "0")[0] == 500
    assert propfind(f"{origin.url}/../etc", "1")[0] in (400, 404)


def test_a_folder_gets_an_html_listing_on_get_and_409_on_head(origin):
    listing = requests.get(f"{origin.url}/demo/sub", timeout=10)
    head = requests.head(f"{origin.url}/demo/sub", timeout=10)

    assert listing.status_code == 200
    assert listing.headers["Cache-Control"] == "no-store"
    assert b'href="/demo/sub/numbers.csv"' in listing.content
    assert head.status_code == 409


@pytest.fixture
def through_cache(live_director, origin, file_servers) -> tuple[FileServer, FileServer]:
    live_director.register(
        "origin",
        "origin",
        origin.url,
        capabilities=LISTED,
        namespaces=[namespace_ad("/demo", Caps=LISTED)],
    )
    cache = file_servers(name="cache", upstream_director=live_director.url)
    live_director.register(
        "cache",
        "cache",
        cache.url,
        capabilities=LISTED,
        namespaces=[namespace_ad("/demo", Caps=LISTED)],
    )
    return origin, cache


def test_a_cache_passes_ranges_and_heads_of_what_it_does_not_hold_to_the_origin(through_cache):
    origin, cache = through_cache
    url = f"{cache.url}/demo/hello.txt"

    head = requests.head(url, headers={"Want-Digest": "crc32c"}, timeout=10)
    ranged = requests.get(url, headers={"Range": "bytes=6-9"}, timeout=10)
    past = requests.get(url, headers={"Range": "bytes=100-"}, timeout=10)

    # As XCache: the origin's answer, without Age (the cache does not hold it) ...
    assert head.status_code == 200
    assert head.headers["Content-Length"] == str(len(HELLO))
    assert head.headers["Digest"] == f"crc32c={crc32c(HELLO):08x}"
    assert "Age" not in head.headers
    assert ranged.status_code == 206
    assert (ranged.content, ranged.headers["Content-Range"]) == (b"from", "bytes 6-9/41")
    assert past.status_code == 416
    assert cache.objects == {}  # ... and nothing kept
    assert origin.count("HEAD") == 1 and origin.count("GET") == 2


def test_a_cache_keeps_what_it_pulled_and_serves_ranges_of_it_itself(through_cache):
    origin, cache = through_cache
    url = f"{cache.url}/demo/hello.txt"

    whole = requests.get(url, timeout=10)
    ranged = requests.get(url, headers={"Range": "bytes=0-4"}, timeout=10)

    assert whole.content == HELLO
    assert ranged.status_code == 206 and ranged.content == b"Hello"
    assert "Age" in ranged.headers
    assert origin.count("GET") == 1


def test_a_cache_answers_propfind_and_listings_from_the_origin_and_keeps_neither(through_cache):
    _, cache = through_cache

    status, listing = propfind(f"{cache.url}/demo", "1")
    _, missing = propfind(f"{cache.url}/demo/nope.txt", "0")
    html = requests.get(f"{cache.url}/demo/sub", timeout=10)

    assert status == 207
    assert sorted(listing) == ["/demo/", "/demo/hello.txt", "/demo/sub/"]
    assert missing == {}
    assert html.status_code == 200 and b"numbers.csv" in html.content
    assert cache.objects == {}
