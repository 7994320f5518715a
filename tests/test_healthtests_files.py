"""The director's own health test files (reference 7): GET, HEAD and PROPFIND under
/api/v1.0/director/healthTest, Pelican's 400 for a bad name, and the origin route to them."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

import pytest
import requests
from helpers import TEST_BODY

STAMP = "2024-05-06T07:08:09Z"
CACHE_TEST_PATH = (
    f"/pelican/monitoring/directorTest/some-director/2024-05-06/director-test-{STAMP}.txt"
)


def raw_exchange(url: str, request: bytes) -> bytes:
    """Send ``request`` as is and read everything until the server closes."""
    address = urlsplit(url)
    with socket.create_connection((address.hostname, address.port), timeout=5) as conn:
        conn.sendall(request)
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


# --- the director's health test files -----------------------------------------------------------


def test_the_health_test_file_get_answers_the_test_text_and_a_newline(live_director):
    answer = live_director.get(f"/api/v1.0/director/healthTest{CACHE_TEST_PATH}")

    assert answer.status_code == 200
    assert answer.content == TEST_BODY + b"\n"


def test_the_health_test_file_head_answers_the_length_and_no_body(live_director):
    path = f"/api/v1.0/director/healthTest{CACHE_TEST_PATH}"

    reply = raw_exchange(
        live_director.url,
        f"HEAD {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode(),
    )

    head, _, body = reply.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode().split("\r\n")
    headers = {key.lower(): value.strip() for key, value in (h.split(":", 1) for h in header_lines)}
    assert status_line.split()[1] == "200"
    assert headers["content-length"] == str(len(TEST_BODY) + 1)
    assert body == b""


def test_the_health_test_file_propfind_is_pelicans_multistatus_byte_for_byte(live_director):
    answer = live_director.request(
        "PROPFIND", f"/api/v1.0/director/healthTest{CACHE_TEST_PATH}", headers={"Depth": "0"}
    )

    assert answer.status_code == 207
    assert answer.headers["Content-Type"] == "text/plain; charset=utf-8"  # as Pelican's
    assert answer.text == (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '\t<D:multistatus xmlns:D="DAV:" xmlns:ns1="http://apache.org/dav/props/" '
        'xmlns:ns0="DAV:">\n'
        '\t\t<D:response xmlns:lp1="DAV:" xmlns:lp2="http://apache.org/dav/props/" '
        'xmlns:lp3="LCGDM:">\n'
        f"\t\t\t<D:href>{CACHE_TEST_PATH}</D:href>\n"
        "\t\t\t<D:propstat>\n"
        "\t\t\t\t<D:prop>\n"
        f"\t\t\t\t\t<lp1:getcontentlength>{len(TEST_BODY) + 1}</lp1:getcontentlength>\n"
        "\t\t\t\t\t<lp1:getlastmodified>Mon, 06 May 2024 07:08:09 GMT</lp1:getlastmodified>\n"
        "\t\t\t\t\t<lp1:iscollection>0</lp1:iscollection>\n"
        "\t\t\t\t\t<lp1:executable>F</lp1:executable>\n"
        "\t\t\t\t</D:prop>\n"
        "\t\t\t\t<D:status>HTTP/1.1 200 OK</D:status>\n"
        "\t\t\t</D:propstat>\n"
        "\t\t</D:response>\n"
        "\t</D:multistatus>"
    )


def test_a_self_test_name_with_an_offset_is_served_with_its_time_in_gmt(live_director):
    answer = live_director.request(
        "PROPFIND",
        "/api/v1.0/director/healthTest/pelican/monitoring/self-test-2024-05-06T09:08:09+02:00.txt",
    )

    assert answer.status_code == 207
    assert "<lp1:getlastmodified>Mon, 06 May 2024 07:08:09 GMT</lp1:getlastmodified>" in answer.text


@pytest.mark.parametrize(
    ("path", "message"),
    [
        # Pelican's TestGetHealthTestFile cases (director_test.go), then some of ours.
        ("/", "Path parameter is not a valid health test path: /"),
        ("/foo/bar", "Path parameter is not a valid health test path: /foo/bar"),
        (
            "/pelican/monitoring",
            "Path parameter is not a valid health test path: /pelican/monitoring",
        ),
        (
            "/pelican/monitoring/selfTest/testfile",
            "Test file name is missing file extension: /pelican/monitoring/selfTest/testfile",
        ),
        (
            "/pelican/monitoring/directorTest/testfile",
            "Test file name is missing file extension: /pelican/monitoring/directorTest/testfile",
        ),
        (
            "/pelican/monitoring/selfTest/self-test-123123123123123.txt",
            "Invalid timestamp in file name: '123123123123123'. Should conform to "
            "2006-01-02T15:04:05Z07:00 format (RFC 3339)",
        ),
        (
            "/pelican/monitoring/directorTest/director-test-123123123123123.txt",
            "Invalid timestamp in file name: '123123123123123'. Should conform to "
            "2006-01-02T15:04:05Z07:00 format (RFC 3339)",
        ),
        ("/pelican/monitoring/hello.txt", "File name does not have a valid prefix: hello.txt"),
        (
            "/pelican/monitoring/director-test-2024-05-06T07:08:09.txt",
            "Invalid timestamp in file name: '2024-05-06T07:08:09'. Should conform to "
            "2006-01-02T15:04:05Z07:00 format (RFC 3339)",
        ),
        (
            "/pelican/monitoring/other-test-2024-05-06T07:08:09Z.txt",
            "File name does not have a valid prefix: other-test-2024-05-06T07:08:09Z.txt",
        ),
    ],
)
def test_a_health_test_file_with_a_bad_name_is_a_400_with_pelicans_message(
    live_director, path, message
):
    answer = live_director.get(f"/api/v1.0/director/healthTest{path}")

    assert answer.status_code == 400
    assert answer.json() == {"status": "error", "msg": message}


@pytest.mark.parametrize(
    "name",
    ["director-test-0001-01-01T00:00:00+01:00.txt", "self-test-9999-12-31T23:59:59-01:00.txt"],
)
def test_a_health_test_name_at_the_edge_of_time_is_a_400(live_director, name):
    answer = live_director.request(
        "PROPFIND", f"/api/v1.0/director/healthTest/pelican/monitoring/x/{name}"
    )

    assert answer.status_code == 400


def test_the_propfind_href_is_escaped(live_director):
    answer = live_director.request(
        "PROPFIND",
        "/api/v1.0/director/healthTest/pelican/monitoring/a<b>&/"
        "director-test-2026-01-01T00:00:00Z.txt",
    )

    assert answer.status_code == 207
    assert "<D:href>/pelican/monitoring/a&lt;b&gt;&amp;/director-test" in answer.text


def test_the_origin_route_sends_monitoring_paths_to_the_directors_own_test_files(live_director):
    answer = live_director.get(f"/api/v1.0/director/origin{CACHE_TEST_PATH}")

    assert answer.status_code == 307
    assert answer.headers["Location"] == (
        f"{live_director.url}/api/v1.0/director/healthTest{CACHE_TEST_PATH}"
    )
    assert answer.headers["X-Pelican-Namespace"] == (
        "namespace=/pelican/monitoring, require-token=false"
    )
    followed = requests.get(answer.headers["Location"], timeout=5)
    assert followed.content == TEST_BODY + b"\n"


@pytest.mark.parametrize("kind", ["selfTest/self", "directorTest/director"])
def test_pelicans_own_health_test_files_are_served(live_director, kind):
    """Pelican's TestGetHealthTestFile 200 and 207 cases."""
    path = f"/pelican/monitoring/{kind}-test-2006-01-02T15:04:10Z.txt"
    answer = live_director.get(f"/api/v1.0/director/healthTest{path}")
    assert (answer.status_code, answer.content) == (200, TEST_BODY + b"\n")
    listed = live_director.request("PROPFIND", f"/api/v1.0/director/healthTest{path}")
    assert listed.status_code == 207
    assert f"\t\t\t<D:href>{path}</D:href>\n" in listed.text
    assert "<lp1:getcontentlength>67</lp1:getcontentlength>" in listed.text
    assert "<lp1:getlastmodified>Mon, 02 Jan 2006 15:04:10 GMT</lp1:getlastmodified>" in listed.text
