"""Load shedding on queueing delay (director/serving/shedding.py): the rule on a fake clock,
each request's wait as the kernel reports it, and the WSGI server answering 429 before
the application (a standing queue, a request past its deadline, a connection too many)."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import gevent
import pytest
import requests
from helpers import FakeClock, wait_until

from director.ops.health import assess
from director.serving import wsgiserver
from director.serving.shedding import REQUEST_WAIT_ENVIRON, LoadShedder, shedder
from director.serving.wsgiserver import make_server, request_wait


def test_a_run_of_long_waits_lasting_the_interval_congests_and_only_long_waits_are_refused():
    clock = FakeClock()
    rule = LoadShedder(clock=clock)
    rule.configure(target=0.02, interval=0.1, deadline=2.5)
    for step in range(10):  # 90 ms of long waits, short ones among them: not yet
        rule.observe(0.2)
        rule.observe(0.0)  # the newest of a batch, served first: says nothing
        assert not rule.shedding, step
        clock.advance(0.01)
    clock.advance(0.001)
    rule.observe(0.03)  # 101 ms into the run
    assert rule.shedding
    assert rule.refusal(0.021) == "queue"
    assert rule.refusal(0.02) == ""  # waited no more than the target: served


def test_while_congested_a_turn_of_the_loop_admits_new_requests_only_in_its_first_half_target():
    """The event loop serves each batch newest first: without this bound one turn could
    admit young requests for ever while the old ones of the next batch wait."""
    clock = FakeClock()
    rule = LoadShedder(clock=clock)
    rule.configure(target=0.02, interval=0.1, deadline=2.5)
    rule.turn_began()
    clock.advance(0.03)  # 30 ms into a turn, not congested: a burst is served
    assert rule.refusal(0.0) == ""
    for _ in range(12):
        rule.observe(0.2)
        clock.advance(0.01)
    rule.turn_began()
    clock.advance(0.009)
    assert rule.refusal(0.001) == ""  # 9 ms into the turn: admitted
    clock.advance(0.002)
    assert rule.refusal(0.001) == "queue"  # 11 ms into it: the rest waits for the next
    rule.turn_began()
    assert rule.refusal(0.001) == ""


def test_a_pause_without_long_waits_breaks_the_run():
    clock = FakeClock()
    rule = LoadShedder(clock=clock)
    rule.configure(target=0.02, interval=0.1, deadline=2.5)
    for _ in range(8):
        rule.observe(0.2)
        clock.advance(0.01)
    clock.advance(0.03)  # 30 ms with no long wait: a burst ended, the run starts over
    for _ in range(8):
        rule.observe(0.2)
        assert not rule.shedding
        clock.advance(0.01)


def test_congestion_ends_once_no_request_waited_long_for_the_interval():
    clock = FakeClock()
    rule = LoadShedder(clock=clock)
    rule.configure(target=0.02, interval=0.1, deadline=2.5)
    for _ in range(12):
        rule.observe(0.2)
        clock.advance(0.01)
    assert rule.shedding
    for _ in range(9):  # short waits only: drained, but not yet for the interval
        rule.observe(0.005)
        clock.advance(0.01)
    assert rule.shedding
    clock.advance(0.01)
    assert not rule.shedding and rule.refusal(0.5) == ""
    # ... and without any request at all (the load stopped): health must not stay stuck.
    for _ in range(12):
        rule.observe(0.2)
        clock.advance(0.01)
    assert rule.shedding
    clock.advance(0.1)
    assert not rule.shedding


def test_a_request_past_its_deadline_is_refused_even_without_a_queue():
    rule = LoadShedder(clock=FakeClock())
    rule.configure(target=0.0, interval=0.5, deadline=2.5)  # queue shedding off
    for _ in range(20):
        rule.observe(10.0)
    assert not rule.shedding
    assert rule.refusal(2.4) == "" and rule.refusal(2.6) == "deadline"


def test_a_requests_wait_is_read_from_the_kernel():
    """request_wait on real sockets: the time since the request's bytes arrived."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    client = socket.create_connection(listener.getsockname())
    try:
        client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        gevent.sleep(1.0)  # the request waits in the backlog and the socket buffer
        accepted, _ = listener.accept()
        with accepted:
            assert 0.95 <= request_wait(accepted) <= 30.0
            accepted.recv(1024)
            client.sendall(b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n")
            gevent.sleep(0.05)
            assert request_wait(accepted) < 0.9  # the next request: its own wait
    finally:
        client.close()
        listener.close()


@pytest.fixture
def server(monkeypatch) -> Iterator[tuple[str, dict[str, float], FakeClock]]:
    """The director's WSGI server before a trivial app, the kernel's wait of each request
    set by the test, and the shedder on a clock of the test's."""
    waits = {"seconds": 0.0}
    monkeypatch.setattr(wsgiserver, "request_wait", lambda sock: waits["seconds"])
    clock = FakeClock()
    monkeypatch.setattr(shedder, "clock", clock)

    def app(environ: dict, start_response) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"served"]

    served = make_server("127.0.0.1", 0, app, connections=2, keepalive_timeout=5.0, overflow=2)
    served.start()
    yield f"http://127.0.0.1:{served.server_port}", waits, clock
    served.stop(timeout=1)
    shedder.configure(0.05, 0.5, 2.5)
    shedder.congested, shedder.run_since = False, None


def _congest(url: str, waits: dict[str, float], clock: FakeClock) -> None:
    """Requests that each waited 200 ms, 10 ms apart, for the interval (0.1 s)."""
    shedder.configure(target=0.02, interval=0.1, deadline=60.0)
    waits["seconds"] = 0.2
    with requests.Session() as session:
        for _ in range(12):  # the 12th is 110 ms into the run: the first refused
            session.get(f"{url}/api/v1.0/director/origin/x", timeout=20)
            clock.advance(0.01)
    assert shedder.shedding


def test_a_standing_queue_gets_429_before_the_application_and_health_still_answers(server):
    url, waits, clock = server
    _congest(url, waits, clock)
    shed_before = shedder.shed_total.get("queue", 0)
    with requests.Session() as session:
        for _ in range(2):  # the prepared answer keeps the connection: twice on it
            refused = session.get(f"{url}/api/v1.0/director/origin/x", timeout=20)
            assert refused.status_code == 429
            assert refused.headers["Retry-After"] == "1"
            assert refused.headers["Content-Type"].startswith("application/json")
            assert "Connection" not in refused.headers
            body = json.loads(refused.content)
            assert body["status"] == "error" and "overloaded" in body["msg"]
        for exempt in ("/api/v1.0/health", "/metrics"):
            assert session.get(url + exempt, timeout=20).content == b"served"
        reasons = assess(1000).reasons
        assert any("shedding new requests" in reason for reason in reasons), reasons
        waits["seconds"] = 0.01  # a request that waited less than the target: served
        assert session.get(f"{url}/api/v1.0/director/origin/x", timeout=20).content == b"served"
    assert shedder.shed_total["queue"] == shed_before + 2


@pytest.mark.parametrize(
    ("request_bytes", "why"),
    [
        (b"POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc", "an unread body"),
        (b"GET /x HTTP/1.0\r\nHost: h\r\n\r\n", "HTTP/1.0"),
        (b"GET /x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", "the client asks"),
    ],
)
def test_a_refusal_closes_the_connection_when_keeping_it_would_be_wrong(server, request_bytes, why):
    url, waits, clock = server
    _congest(url, waits, clock)
    port = int(url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=20) as client:
        client.sendall(request_bytes)
        answer = b""
        while chunk := client.recv(65536):  # read until the director closes
            answer += chunk
    head = answer.split(b"\r\n\r\n", 1)[0]
    assert head.startswith(b"HTTP/1.1 429 "), why
    assert b"\r\nConnection: close" in head, why


def test_the_server_passes_each_requests_wait_on_to_the_application(monkeypatch):
    monkeypatch.setattr(wsgiserver, "request_wait", lambda sock: 0.4)

    def app(environ: dict, start_response) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [str(environ[REQUEST_WAIT_ENVIRON]).encode()]

    served = make_server("127.0.0.1", 0, app, connections=2, keepalive_timeout=5.0)
    served.start()
    try:
        answer = requests.get(f"http://127.0.0.1:{served.server_port}/x", timeout=20)
    finally:
        served.stop(timeout=1)
    assert answer.content == b"0.4"


def test_a_request_that_waited_past_its_deadline_is_not_started(server):
    url, waits, _ = server
    shedder.configure(target=0.0, interval=0.5, deadline=2.5)  # queue shedding off
    with requests.Session() as session:
        waits["seconds"] = 3.0
        first = session.get(f"{url}/x", timeout=20)
        assert first.status_code == 429 and "deadline" in first.json()["msg"]
        waits["seconds"] = 0.0
        assert session.get(f"{url}/x", timeout=20).content == b"served"  # same connection


def test_connections_beyond_the_pool_get_a_429_and_are_closed_not_left_in_the_backlog(server):
    url, _, _ = server
    held = [requests.Session() for _ in range(2)]  # both connection slots, kept alive
    try:
        for session in held:
            assert session.get(f"{url}/x", timeout=20).content == b"served"
        extra = requests.get(f"{url}/x", timeout=20)
        assert extra.status_code == 429
        assert extra.headers["Connection"] == "close"
        assert "connection limit" in extra.json()["msg"]
    finally:
        for session in held:
            session.close()
    wait_until(lambda: requests.get(f"{url}/x", timeout=20).status_code == 200, 20.0, "slots")
