"""The benchmark tools measure what they claim (small numbers; no speed claims here)."""

from __future__ import annotations

import json
from collections.abc import Iterable

import gevent
import gevent.socket
import pytest

from bench import report
from bench.loadgen import OpenLoop
from bench.scenarios import _wrk_seconds, fitted_growth, latency_summary, percentile
from director.demo.fileserver import FileServer


@pytest.fixture
def server():
    started = FileServer(name="bench-target").start()
    started.behaviour.any_path = b"x"
    yield started
    started.stop(timeout=0.2)


def port_of(server: FileServer) -> int:
    return server.port


def test_the_generator_sends_at_the_offered_rate_and_records_every_request(server):
    result = OpenLoop("127.0.0.1", port_of(server)).run(100, 0.5, lambda i: f"/p/{i}")

    assert len(result.records) == 50
    assert {record[2] for record in result.records} == {200}
    assert all(record[3] == "" for record in result.records)
    assert result.dropped == 0
    assert 80 <= result.achieved_rate <= 120
    intended = sorted(record[0] for record in result.records)
    assert intended[1] - intended[0] == pytest.approx(0.01, abs=1e-9)


def test_latency_counts_from_the_intended_send_time_so_a_stall_is_not_hidden(server):
    """Coordinated omission: the server answers after 0.3 s; requests due meanwhile keep
    their own send times, and each waits the full 0.3 s."""
    server.behaviour.delay = 0.3
    result = OpenLoop("127.0.0.1", port_of(server)).run(40, 0.5, lambda i: f"/p/{i}")

    latencies = [record[1] for record in result.records]
    assert len(latencies) == 20
    assert min(latencies) >= 0.3


def test_a_429_without_retry_after_is_counted_apart(server):
    server.behaviour.status = 429
    result = OpenLoop("127.0.0.1", port_of(server)).run(20, 0.25, lambda i: f"/p/{i}")

    assert {record[2] for record in result.records} == {-429}


def test_a_server_that_does_not_answer_in_time_is_a_client_time_out(server):
    server.behaviour.hang = True
    server.behaviour.hang_seconds = 2
    generator = OpenLoop("127.0.0.1", port_of(server), header_timeout=0.2)
    result = generator.run(10, 0.2, lambda i: f"/p/{i}")

    assert [record[3] for record in result.records] == ["timeout", "timeout"]


def test_requests_beyond_the_connection_cap_are_counted_dropped_not_sent(server):
    server.behaviour.hang = True
    server.behaviour.hang_seconds = 2
    generator = OpenLoop("127.0.0.1", port_of(server), header_timeout=0.5, max_concurrency=2)
    result = generator.run(20, 0.5, lambda i: f"/p/{i}")

    assert result.dropped == 8
    assert [record[3] for record in result.records] == ["timeout", "timeout"]
    assert result.achieved_rate < 20 * 0.5


def test_a_kept_alive_connection_the_server_closed_is_retried_on_a_fresh_one():
    """A server that answers one request per connection and closes it when the next
    one comes, without an answer (as a keep-alive time-out racing a request does):
    every request still gets its answer, on a fresh connection."""
    listener = gevent.socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    accepted = []

    def answer_once(connection: gevent.socket.socket) -> None:
        with connection:
            data = b""
            while b"\r\n\r\n" not in data:
                data += connection.recv(4096)
            connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            connection.recv(4096)  # the next request: closed unanswered

    def serve() -> None:
        while True:
            connection, _ = listener.accept()
            accepted.append(connection)
            gevent.spawn(answer_once, connection)

    server = gevent.spawn(serve)
    try:
        port = listener.getsockname()[1]
        result = OpenLoop("127.0.0.1", port).run(4, 1.0, lambda i: f"/p/{i}")
    finally:
        server.kill()
        listener.close()

    assert [record[2:] for record in result.records] == [(200, "")] * 4
    assert len(accepted) == 4


def test_the_soak_growth_is_the_fitted_line_over_the_window():
    times = [float(t) for t in range(10)]
    assert fitted_growth(times, [5.0] * 10) == 0.0
    assert fitted_growth(times, [2.0 * t for t in times]) == pytest.approx(18.0)
    noisy = [100.0 + (3.0 if t % 2 else -3.0) for t in range(10)]
    assert abs(fitted_growth(times, noisy)) < 3.0


def test_wrk_durations_and_percentiles_are_read_as_seconds():
    assert [_wrk_seconds(text) for text in ("250.00us", "3.20ms", "1.50s", "2.00m")] == [
        pytest.approx(0.00025),
        pytest.approx(0.0032),
        1.5,
        120.0,
    ]
    values = [float(v) for v in range(1, 1001)]
    assert percentile(values, 0.99) == 990.0
    assert latency_summary(values)["p999"] == 999.0
    assert latency_summary(values)["max"] == 1000.0


def _result(name: str, targets: Iterable[tuple[str, bool]]) -> dict[str, object]:
    return {
        "scenario": name,
        "machine": {"cores": 2, "cpu": "test cpu", "python": "3.11", "gevent": "x", "django": "y"},
        "targets": [
            {"name": label, "target": "t", "measured": 1.5, "ok": ok} for label, ok in targets
        ],
        "series": {"t": [0, 1], "greenlets": [5, 6], "rss_mb": [10, 11]},
    }


def test_the_readme_table_marks_every_missed_target(tmp_path, monkeypatch):
    monkeypatch.setattr(report, "RESULTS", tmp_path)
    (tmp_path / "fan-out.json").write_text(
        json.dumps(_result("fan-out", [("p50", True), ("p99", False)]))
    )

    text = report.section()

    assert "Measured on 2 cores (test cpu), Python 3.11" in text
    assert "| fan-out | p50: t | 1.5 | yes |" in text
    assert "| fan-out | p99: t | 1.5 | **MISSED** |" in text
    assert "![fan-out](bench/results/fan-out.png)" in text
