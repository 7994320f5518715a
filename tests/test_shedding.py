"""Load shedding on queueing delay (director/ops/shedding.py): the rule on a fake clock,
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

from director.ops import wsgiserver
from director.ops.health import assess
from director.ops.shedding import LoadShedder, shedder
from director.ops.wsgiserver import make_server, request_wait


def test_a_standing_queue_sheds_after_the_interval_and_one_good_sample_ends_it():
    clock = FakeClock()
    rule = LoadShedder(clock=clock)
    rule.configure(target=0.05, interval=0.5, deadline=2.5)
    for _ in range(5):  # 0.4 s above target: a burst, not a standing queue
        rule.observe(0.2)
        assert not rule.shedding
        clock.advance(0.1)
    rule.observe(0.06)  # 0.5 s above target
    assert rule.shedding and rule.refusal(0.0) == "queue"
    rule.observe(0.05)  # at the target: the queue drained
    assert not rule.shedding and rule.refusal(0.0) == ""
    rule.observe(0.2)  # above again: the interval starts over
    clock.advance(0.25)
    rule.observe(0.2)
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
    shedder.shedding, shedder.above_since = False, None


def test_a_standing_queue_gets_429_before_the_application_and_health_still_answers(server):
    url, waits, clock = server
    shedder.configure(target=0.05, interval=0.5, deadline=60.0)
    with requests.Session() as session:
        waits["seconds"] = 0.2  # every request waited 200 ms: a queue
        assert session.get(f"{url}/api/v1.0/director/origin/x", timeout=20).content == b"served"
        clock.advance(0.5)  # ... for the interval
        refused = session.get(f"{url}/api/v1.0/director/origin/x", timeout=20)
        assert refused.status_code == 429
        assert refused.headers["Retry-After"] == "1"
        assert refused.headers["Content-Type"].startswith("application/json")
        body = json.loads(refused.content)
        assert body["status"] == "error" and "overloaded" in body["msg"]
        for exempt in ("/api/v1.0/health", "/metrics"):
            assert session.get(url + exempt, timeout=20).content == b"served"
        reasons = assess(1000).reasons
        assert any("shedding new requests" in reason for reason in reasons), reasons
        waits["seconds"] = 0.01  # the queue drained: the next request is served
        assert session.get(f"{url}/api/v1.0/director/origin/x", timeout=20).content == b"served"
    assert shedder.shed_total.get("queue", 0) >= 1


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
