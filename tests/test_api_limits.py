"""What the director API refuses before doing any work: an unknown registration token before
the body is read, an oversized advertisement, a prefix lookup whose path escapes the root."""

from __future__ import annotations

import http.client
import json

import requests


def test_an_unknown_token_is_refused_before_the_body_is_read(live_director):
    answer = requests.post(
        f"{live_director.url}/api/v1.0/director/registerOrigin",
        data=b'{"name": ',  # malformed, and never parsed
        headers={"Authorization": "Bearer junk", "Content-Type": "application/json"},
        timeout=5,
    )

    assert answer.status_code == 403
    assert answer.json()["msg"] == "The token is not a live registration token"


def test_an_oversized_advertisement_is_refused_with_413(live_director):
    secret = live_director.token_for("/origins/origin-a")
    answer = requests.post(
        f"{live_director.url}/api/v1.0/director/registerOrigin",
        data=b" " * (1024 * 1024 + 1),
        headers={"Authorization": f"Bearer {secret}", "Content-Type": "application/json"},
        timeout=10,
    )

    assert answer.status_code == 413
    assert answer.json()["status"] == "error"


def test_the_prefix_lookup_cleans_its_path(live_director):
    # http.client sends the path as written (requests would resolve the dots itself).
    connection = http.client.HTTPConnection(live_director.url.removeprefix("http://"), timeout=5)
    connection.request("GET", "/api/v1.0/director/namespaces/prefix/a/../../etc")
    answer = connection.getresponse()

    assert answer.status == 400
    assert "escapes the root" in json.loads(answer.read())["msg"]
