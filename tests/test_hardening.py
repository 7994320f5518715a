"""What a hostile client, a hostile advertisement or a slow peer cannot do."""

from __future__ import annotations

import base64
import datetime as dt
import http.client
import json
import socket
import time

import gevent
import pytest
import requests
from django.core.exceptions import ValidationError
from django.core.management import call_command
from helpers import caps, make_ad, namespace_ad, stat_config

from director.models import Namespace, RegistrationToken, Server, StatSettings
from director.ops.wsgiserver import DirectorHandler, make_server
from director.stat import Outcome, StatEngine, StatResult, StatTarget

PROTECTED = caps(Read=True)


def issuer_ad(**issuer: object) -> dict[str, object]:
    return make_ad(
        "origin-a",
        "origin",
        "http://127.0.0.1:1",
        namespaces=[namespace_ad("/ns", Caps=PROTECTED, **issuer)],
    )


@pytest.mark.parametrize(
    ("issuer", "field"),
    [
        (
            {"token-issuer": [{"issuer": "https://a.example\r\nX-Evil: 1", "base-paths": []}]},
            "namespaces.0.token-issuer.0.issuer",
        ),
        (
            {"token-issuer": [{"issuer": {"Scheme": "https", "Host": "a\r\nb"}}]},
            "namespaces.0.token-issuer.0.issuer",
        ),
        ({"token-issuer": [{"issuer": "https://日本.example"}]}, "namespaces.0.token-issuer"),
        (
            {"token-generation": [{"strategy": "OAuth2, x=1", "issuer": "https://a.example"}]},
            "namespaces.0.token-generation.0.strategy",
        ),
        (
            {"token-issuer": [{"issuer": "https://a.example", "base-paths": ["/a;b"]}]},
            "namespaces.0.token-issuer.0.base-paths.0",
        ),
    ],
)
def test_an_ad_whose_values_would_break_response_headers_is_refused(live_director, issuer, field):
    answer = live_director.advertise(issuer_ad(**issuer))

    assert answer.status_code == 400, answer.text
    assert field in answer.json()["msg"]
    assert not Server.objects.exists()


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"data-url": "http://日本.example:8443"}, "data-url"),
        ({"version": "7" * 101}, "version"),
        ({"storageType": "posix\x00"}, "storageType"),
        ({"name": "a\x00b"}, "name"),
    ],
)
def test_values_that_do_not_fit_the_registry_are_a_400_not_a_500(live_director, fields, field):
    ad = make_ad("origin-a", "origin", "http://127.0.0.1:1")
    ad.update(fields)

    answer = live_director.advertise(ad)

    assert answer.status_code == 400, answer.text
    assert f"field '{field}'" in answer.json()["msg"]


def test_a_namespace_with_a_comma_is_refused(live_director):
    answer = live_director.advertise(
        make_ad("origin-a", "origin", "http://127.0.0.1:1", namespaces=[namespace_ad("/a,b")])
    )

    assert answer.status_code == 400
    assert "must not contain ," in answer.json()["msg"]


def test_an_expiry_in_year_9999_is_cut_to_seven_days(live_director):
    now = dt.datetime.now(dt.UTC)
    ad = make_ad(
        "origin-a",
        "origin",
        "http://127.0.0.1:1",
        now=(now - dt.timedelta(hours=1)).isoformat(),
        expiry="9999-12-31T23:59:59-14:00",
    )

    answer = live_director.advertise(ad)

    assert answer.status_code == 200, answer.text
    expires = Server.objects.get(name="origin-a").expires_at
    assert dt.timedelta(days=6, hours=23) < expires - now <= dt.timedelta(days=7, minutes=1)


def test_an_unknown_downtime_class_is_refused(live_director):
    downtime = {"id": 1, "class": "WHENEVER", "startTime": 0, "endTime": -1}
    answer = live_director.advertise(
        make_ad("origin-a", "origin", "http://127.0.0.1:1", downtimes=[downtime])
    )

    assert answer.status_code == 400
    assert "downtimes.0.class" in answer.json()["msg"]


def test_a_namespace_edited_in_the_admin_gets_the_same_checks(db):
    server = Server.objects.create(name="o", kind="origin", data_url="http://127.0.0.1:1")
    namespace = Namespace(
        server=server, path="/ns", token_issuers=[{"issuer": "https://a\r\nb", "base-paths": []}]
    )

    with pytest.raises(ValidationError, match="token-issuer"):
        namespace.full_clean()


# --- which namespaces a token may advertise ------------------------------------------------


def test_a_token_limited_to_namespaces_cannot_claim_another(live_director):
    _, secret = RegistrationToken.issue("/origins/origin-a", namespaces=["/mine"])
    ad = make_ad(
        "origin-a",
        "origin",
        "http://127.0.0.1:1",
        namespaces=[namespace_ad("/mine/data"), namespace_ad("/theirs")],
    )

    refused = live_director.advertise(ad, token=secret)
    ad["namespaces"] = [namespace_ad("/mine"), namespace_ad("/mine/data")]
    accepted = live_director.advertise(ad, token=secret)

    assert refused.status_code == 403
    assert "/theirs" in refused.json()["msg"] and "/mine/data" not in refused.json()["msg"]
    assert accepted.status_code == 200, accepted.text
    assert sorted(Namespace.objects.values_list("path", flat=True)) == ["/mine", "/mine/data"]


def test_a_limited_cache_token_still_serves_the_pelican_paths(live_director):
    _, secret = RegistrationToken.issue("/caches/cache-a", namespaces=["/mine"])
    ad = make_ad(
        "cache-a",
        "cache",
        "http://127.0.0.1:1",
        namespaces=[namespace_ad("/mine"), namespace_ad("/pelican/monitoring")],
    )

    assert live_director.advertise(ad, token=secret).status_code == 200


def test_issuetoken_records_the_namespaces_and_refuses_bad_ones(db, capsys):
    call_command("issuetoken", "/origins/site", "--namespace", "/a", "--namespace", "/b/c/")
    token = RegistrationToken.objects.get()
    assert token.allowed_namespaces() == ["/a", "/b/c"]
    assert token.allows_namespace("/a/x") and not token.allows_namespace("/ab")
    with pytest.raises(Exception, match="must start with '/'"):
        call_command("issuetoken", "/origins/site2", "--namespace", "relative")


# --- registration cannot be used to make the director work for nothing --------------------


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


# --- clients --------------------------------------------------------------------------------


def test_a_token_built_to_exhaust_the_json_parser_is_just_not_a_jwt(live_director):
    live_director.register("origin-a", "origin", "http://127.0.0.1:1")
    payload = base64.urlsafe_b64encode(b"[" * 3000).rstrip(b"=").decode()

    answer = live_director.get(
        "/api/v1.0/director/origin/test/f", headers={"Authorization": f"Bearer a.{payload}.c"}
    )

    assert answer.status_code == 307


def test_the_prefix_lookup_cleans_its_path(live_director):
    # http.client sends the path as written (requests would resolve the dots itself).
    connection = http.client.HTTPConnection(live_director.url.removeprefix("http://"), timeout=5)
    connection.request("GET", "/api/v1.0/director/namespaces/prefix/a/../../etc")
    answer = connection.getresponse()

    assert answer.status == 400
    assert "escapes the root" in json.loads(answer.read())["msg"]


@pytest.mark.parametrize(
    "name",
    ["director-test-0001-01-01T00:00:00+01:00.txt", "self-test-9999-12-31T23:59:59-01:00.txt"],
)
def test_a_health_test_name_at_the_edge_of_time_is_a_400(live_director, name):
    answer = live_director.request("PROPFIND", f"/api/v1.0/director/healthTest/x/{name}")

    assert answer.status_code == 400


def test_the_propfind_href_is_escaped(live_director):
    answer = live_director.request(
        "PROPFIND", "/api/v1.0/director/healthTest/a<b>&/director-test-2026-01-01T00:00:00Z.txt"
    )

    assert answer.status_code == 207
    assert "a&lt;b&gt;&amp;/director-test" in answer.text


def test_a_redirect_deadline_that_cuts_every_stat_short_is_refused(db):
    row = StatSettings.load()
    row.stat_timeout, row.redirect_timeout = 2.0, 2.05

    with pytest.raises(ValidationError, match="hung server would never be ejected"):
        row.full_clean()


# --- the server -----------------------------------------------------------------------------


@pytest.fixture
def tiny_server():
    def app(environ: dict, start_response: object) -> list[bytes]:
        start_response("200 OK", [("Content-Length", "2")])  # type: ignore[operator]
        return [b"ok"]

    server = make_server("127.0.0.1", 0, app, connections=2, keepalive_timeout=0.5)
    original = DirectorHandler.header_timeout
    DirectorHandler.header_timeout = 0.6
    server.start()
    yield server
    server.stop(timeout=0.5)
    DirectorHandler.header_timeout = original


def test_clients_dripping_their_headers_cannot_hold_the_connection_slots(tiny_server):
    port = tiny_server.server_port

    def drip() -> str:
        connection = socket.create_connection(("127.0.0.1", port))
        try:
            for byte in b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: 1\r\n":
                connection.sendall(bytes([byte]))
                gevent.sleep(0.3)
            return "held"
        except OSError:
            return "closed"
        finally:
            connection.close()

    dripping = [gevent.spawn(drip) for _ in range(2)]  # every slot of the server
    gevent.sleep(1.0)
    started = time.monotonic()
    answer = requests.get(f"http://127.0.0.1:{port}/", timeout=5)

    assert answer.text == "ok"
    assert time.monotonic() - started < 2.0
    gevent.joinall(dripping, timeout=20)
    assert [greenlet.value for greenlet in dripping] == ["closed", "closed"]


def test_an_idle_connection_is_closed_after_the_keepalive_timeout(tiny_server):
    connection = socket.create_connection(("127.0.0.1", tiny_server.server_port))
    connection.settimeout(5)
    started = time.monotonic()

    assert connection.recv(10) == b""
    assert 0.4 < time.monotonic() - started < 2.0


# --- the stat engine ------------------------------------------------------------------------


def test_a_stat_greenlet_killed_before_it_ran_gives_everything_back():
    def never_called(url: str, token: str, timeout: float) -> StatResult:
        raise AssertionError("the HEAD must not run")

    engine = StatEngine(stat_config(concurrency_limit=1), probe_factory=lambda *_: never_called)
    target = StatTarget("s", "origin", "http://127.0.0.1:1")
    pool = engine.pool_for(target)
    answer = engine._start(pool, ("/x", ""), "http://127.0.0.1:1/x", "", time.monotonic() + 5, True)
    pool.group.kill(block=True)  # before the hub ever ran it
    gevent.sleep(0)

    assert pool.bulkhead.active == 0
    assert pool.inflight == {}
    assert answer.get(timeout=1).outcome is Outcome.PENDING
