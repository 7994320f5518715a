"""Unit tests of the stat engine's HEAD probe (director/stat/probe.py): ``classify``, and
``HeadProbe`` against a real file server on loopback (also as the engine's default probe).

No Django and no database. Every wait has a deadline, and the ``hang_guard`` fixture fails
any test that blocks for 5 s.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import gevent
import pytest
from gevent.pywsgi import WSGIServer
from gevent.server import StreamServer
from helpers import AT_ONCE, settle, stat, stat_config
from requests.structures import CaseInsensitiveDict

from director.demo.fileserver import FileServer, crc32c
from director.stat import Outcome, StatEngine, StatResult, StatTarget
from director.stat.probe import PLAIN_HEADS_FOR, HeadProbe, classify

pytestmark = pytest.mark.usefixtures("hang_guard")  # a bug fails a test, never hangs it


# -- classify ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("status", "headers", "expected"),
    [
        pytest.param(
            200,
            CaseInsensitiveDict({"content-length": "11", "DIGEST": "crc32c=0a1b2c3d", "age": "42"}),
            StatResult(Outcome.PRESENT, 200, 0.25, size=11, checksum="crc32c=0a1b2c3d", age=42),
            id="200-length-digest-age",
        ),
        pytest.param(
            200,
            {"Content-Length": "0"},
            StatResult(Outcome.PRESENT, 200, 0.25, size=0),
            id="200-empty-object",
        ),
        pytest.param(
            200,
            {"Content-Length": "5", "Age": "soon"},
            StatResult(Outcome.PRESENT, 200, 0.25, size=5, age=None),
            id="200-invalid-age-ignored",
        ),
        pytest.param(
            200,
            {},
            StatResult(Outcome.ERROR, 200, 0.25, detail="200 without a valid Content-Length"),
            id="200-without-length",
        ),
        pytest.param(
            200,
            {"Content-Length": "lots"},
            StatResult(Outcome.ERROR, 200, 0.25, detail="200 without a valid Content-Length"),
            id="200-invalid-length",
        ),
        pytest.param(
            200,
            {"Content-Length": "-1"},
            StatResult(Outcome.ERROR, 200, 0.25, detail="negative Content-Length"),
            id="200-negative-length",
        ),
        pytest.param(404, {}, StatResult(Outcome.ABSENT, 404, 0.25), id="404-absent"),
        pytest.param(401, {}, StatResult(Outcome.DENIED, 401, 0.25), id="401-denied"),
        pytest.param(403, {}, StatResult(Outcome.DENIED, 403, 0.25), id="403-denied"),
        pytest.param(
            500,
            {},
            StatResult(Outcome.ERROR, 500, 0.25, server_fault=True, detail="HTTP 500"),
            id="500-server-fault",
        ),
        pytest.param(
            503,
            {},
            StatResult(Outcome.ERROR, 503, 0.25, server_fault=True, detail="HTTP 503"),
            id="503-server-fault",
        ),
        pytest.param(
            405,
            {},
            StatResult(Outcome.ERROR, 405, 0.25, server_fault=False, detail="HTTP 405"),
            id="405-not-a-server-fault",
        ),
        pytest.param(
            409,
            {},
            StatResult(Outcome.ERROR, 409, 0.25, server_fault=False, detail="HTTP 409"),
            id="409-not-a-server-fault",
        ),
        pytest.param(
            200,
            {"Content-Length": "13", "Digest": "crc32c=EC3JDw=="},
            StatResult(Outcome.PRESENT, 200, 0.25, size=13, checksum="crc32c=102dc90f"),
            id="200-base64-crc32c-as-hex",
        ),
    ],
)
def test_classify_turns_a_head_answer_into_an_outcome(
    status: int, headers: dict[str, str], expected: StatResult
) -> None:
    assert classify(status, headers, 0.25) == expected


# -- HeadProbe against a real server ----------------------------------------------------------
DATA = b"hello, pelican\n"


@pytest.fixture
def probe() -> Iterator[HeadProbe]:
    head = HeadProbe("pelican-director/9.9.9", pool_size=2)
    yield head
    head.close()


def test_head_probe_reports_present_with_size_and_checksum_and_sends_no_token_unasked(
    file_servers: Callable[..., FileServer], probe: HeadProbe
) -> None:
    server = file_servers({"/test/hello.txt": DATA})
    result = probe(f"{server.url}/test/hello.txt", "", 1.0)
    assert result.outcome is Outcome.PRESENT
    assert (result.status_code, result.size) == (200, len(DATA))
    assert result.checksum == f"crc32c={crc32c(DATA):08x}"
    assert result.age is None and not result.server_fault
    assert server.count("HEAD") == 1
    seen = server.seen_headers[-1]
    assert seen["method"] == "HEAD" and seen["path"] == "/test/hello.txt"
    assert seen["User-Agent"] == "pelican-director/9.9.9"
    assert seen["Want-Digest"] == "crc32c"
    assert "Authorization" not in seen


def test_head_probe_sends_the_token_as_bearer_and_is_denied_without_the_right_one(
    file_servers: Callable[..., FileServer], probe: HeadProbe
) -> None:
    server = file_servers({"/test/hello.txt": DATA})
    server.behaviour.required_token = "secret"
    granted = probe(f"{server.url}/test/hello.txt", "secret", 1.0)
    assert (granted.outcome, granted.size) == (Outcome.PRESENT, len(DATA))
    assert server.seen_headers[-1]["Authorization"] == "Bearer secret"
    refused = probe(f"{server.url}/test/hello.txt", "wrong", 1.0)
    assert (refused.outcome, refused.status_code, refused.server_fault) == (
        Outcome.DENIED,
        403,
        False,
    )
    assert server.seen_headers[-1]["Authorization"] == "Bearer wrong"
    anonymous = probe(f"{server.url}/test/hello.txt", "", 1.0)
    assert (anonymous.outcome, anonymous.status_code) == (Outcome.DENIED, 403)
    assert "Authorization" not in server.seen_headers[-1]
    # Each refusal was asked again without Want-Digest (Pelican's retry), with the token.
    assert server.count("HEAD") == 5


def test_a_404_answer_leaves_the_pooled_connection_usable_for_the_next_head(
    file_servers: Callable[..., FileServer], probe: HeadProbe
) -> None:
    server = file_servers({"/test/hello.txt": DATA})
    for _ in range(3):
        assert probe(f"{server.url}/test/hello.txt", "", 1.0).outcome is Outcome.PRESENT
        assert probe(f"{server.url}/test/missing.txt", "", 1.0).outcome is Outcome.ABSENT
    result = probe(f"{server.url}/test/hello.txt", "", 1.0)
    assert (result.outcome, result.detail) == (Outcome.PRESENT, "")
    assert server.count("HEAD") == 7


@pytest.mark.parametrize(
    ("path", "behaviour", "status"),
    [
        pytest.param("/test/hello.txt", {}, b"200", id="200"),
        pytest.param("/test/missing.txt", {}, b"404", id="404"),
        pytest.param("/test/hello.txt", {"required_token": "t"}, b"403", id="403"),
        pytest.param("/test/hello.txt", {"status": 500}, b"500", id="500"),
    ],
)
def test_file_server_answers_head_without_a_body_so_pooled_connections_stay_usable(
    file_servers: Callable[..., FileServer], path: str, behaviour: dict[str, object], status: bytes
) -> None:
    server = file_servers({"/test/hello.txt": DATA})
    for name, value in behaviour.items():
        setattr(server.behaviour, name, value)
    received = b""
    with socket.create_connection(("127.0.0.1", server.port), timeout=1.0) as connection:
        connection.sendall(f"HEAD {path} HTTP/1.1\r\nHost: test\r\n\r\n".encode())
        connection.settimeout(0.1)  # keep-alive: read whatever comes until it goes quiet
        with contextlib.suppress(TimeoutError):
            while chunk := connection.recv(4096):
                received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 " + status)
    assert body == b""


def test_head_probe_reports_absent_for_404(
    file_servers: Callable[..., FileServer], probe: HeadProbe
) -> None:
    server = file_servers({})
    result = probe(f"{server.url}/test/nothing.txt", "", 1.0)
    assert (result.outcome, result.status_code, result.server_fault) == (
        Outcome.ABSENT,
        404,
        False,
    )


def test_head_probe_reports_a_500_as_an_error_that_is_the_servers_fault(
    file_servers: Callable[..., FileServer], probe: HeadProbe
) -> None:
    server = file_servers({"/test/hello.txt": DATA})
    server.behaviour.status = 500
    result = probe(f"{server.url}/test/hello.txt", "", 1.0)
    assert (result.outcome, result.status_code, result.server_fault) == (Outcome.ERROR, 500, True)


def test_head_probe_times_out_on_a_hanging_server_within_its_timeout(
    file_servers: Callable[..., FileServer], probe: HeadProbe
) -> None:
    server = file_servers({"/test/hello.txt": DATA})
    server.behaviour.hang = True
    server.behaviour.hang_seconds = 3.0
    started = time.monotonic()
    result = probe(f"{server.url}/test/hello.txt", "", 0.2)
    elapsed = time.monotonic() - started
    assert result.outcome is Outcome.TIMEOUT and result.server_fault
    assert 0.19 <= elapsed < 0.2 + AT_ONCE  # its timeout, not the server's 3 s
    assert server.count("HEAD") == 1


def test_head_probe_reports_connection_refused_as_an_error_that_is_the_servers_fault(
    probe: HeadProbe,
) -> None:
    with socket.socket() as sock:  # a port that was free a moment ago and is closed now
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    started = time.monotonic()
    result = probe(f"http://127.0.0.1:{port}/test/hello.txt", "", 1.0)
    assert result.outcome is Outcome.ERROR and result.server_fault
    assert result.status_code is None
    assert result.detail.startswith("transport error")
    assert time.monotonic() - started < 0.5


def test_engine_default_probe_stats_a_real_server(
    file_servers: Callable[..., FileServer],
) -> None:
    server = file_servers({"/test/dir/hello world.txt": DATA})
    engine = StatEngine(stat_config(stat_timeout=0.3, concurrency_limit=2), user_agent="ua/1")
    target = StatTarget("real", "origin", server.url)
    results = stat(engine, [target], "/test/dir/hello world.txt")
    assert results["real"].outcome is Outcome.PRESENT
    assert results["real"].size == len(DATA)
    assert server.seen_headers[-1]["User-Agent"] == "ua/1"
    assert server.seen_headers[-1]["path"] == "/test/dir/hello world.txt"
    assert stat(engine, [target], "/test/missing.txt")["real"].outcome is Outcome.ABSENT
    settle(engine)
    engine.configure(engine.config, [])  # closes the probe's session


@pytest.fixture
def bloated_server() -> Iterator[str]:
    """A real server whose HEAD answer is 200 with 1 MiB of headers (20 of 50 KiB)."""
    header = b"X-Padding: " + b"a" * 50_000 + b"\r\n"
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n" + header * 20 + b"\r\n"

    def handle(connection: socket.socket, address: object) -> None:
        connection.recv(65536)
        connection.sendall(answer)
        connection.close()

    server = StreamServer(("127.0.0.1", 0), handle)
    server.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.stop(timeout=1)


def test_a_head_answer_with_a_megabyte_of_headers_is_an_error_of_the_server(
    bloated_server: str, probe: HeadProbe
) -> None:
    result = probe(f"{bloated_server}/test/hello.txt", "", 5.0)
    assert (result.outcome, result.status_code, result.server_fault) == (Outcome.ERROR, 200, True)
    assert "bytes of headers" in result.detail


# -- the second HEAD without Want-Digest (XCache: 405, XRootD on a directory: 409) ------------
class DigestShy:
    """A real server that answers a HEAD asking for a digest with ``refusal`` (after
    ``refusal_delay`` s), and a plain HEAD with ``plain`` (after ``plain_delay`` s)."""

    def __init__(self, refusal: int, plain: int = 200) -> None:
        self.refusal = refusal
        self.plain = plain
        self.refusal_delay = 0.0
        self.plain_delay = 0.0
        self.heads: list[str | None] = []  # the Want-Digest of each HEAD, in order
        self.server = WSGIServer(("127.0.0.1", 0), self.app, log=None, error_log=None)

    def app(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        want = environ.get("HTTP_WANT_DIGEST")
        self.heads.append(want)
        status, delay = (
            (self.refusal, self.refusal_delay) if want else (self.plain, self.plain_delay)
        )
        gevent.sleep(delay)
        headers = [("Content-Length", "5" if status == 200 else "0")]
        start_response(f"{status} Whatever", headers)
        return []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"


@pytest.fixture
def digest_shy() -> Iterator[Callable[..., DigestShy]]:
    started: list[DigestShy] = []

    def start(refusal: int, plain: int = 200) -> DigestShy:
        server = DigestShy(refusal, plain)
        server.server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.server.stop(timeout=0.2)


@pytest.mark.parametrize("refusal", [405, 409, 403, 500])
def test_an_answer_other_than_2xx_or_404_is_asked_again_once_without_want_digest(
    digest_shy: Callable[..., DigestShy], probe: HeadProbe, refusal: int
) -> None:
    server = digest_shy(refusal)
    result = probe(f"{server.url}/test/hello.txt", "", 1.0)
    assert (result.outcome, result.status_code, result.size) == (Outcome.PRESENT, 200, 5)
    assert not result.server_fault
    assert result.detail == f"asked again without Want-Digest after HTTP {refusal}"
    assert server.heads == ["crc32c", None]


@pytest.mark.parametrize(("plain", "outcome"), [(200, Outcome.PRESENT), (404, Outcome.ABSENT)])
def test_a_2xx_or_404_answer_is_not_asked_again(
    digest_shy: Callable[..., DigestShy], probe: HeadProbe, plain: int, outcome: Outcome
) -> None:
    server = digest_shy(refusal=plain, plain=plain)
    assert probe(f"{server.url}/test/hello.txt", "", 1.0).outcome is outcome
    assert server.heads == ["crc32c"]


def test_a_5xx_to_both_heads_is_an_error_that_is_the_servers_fault(
    digest_shy: Callable[..., DigestShy], probe: HeadProbe
) -> None:
    server = digest_shy(refusal=503, plain=502)
    result = probe(f"{server.url}/test/hello.txt", "", 1.0)
    assert (result.outcome, result.status_code, result.server_fault) == (Outcome.ERROR, 502, True)
    assert server.heads == ["crc32c", None]


def test_a_4xx_to_both_heads_is_an_answer_about_the_object_not_a_fault(
    digest_shy: Callable[..., DigestShy], probe: HeadProbe
) -> None:
    server = digest_shy(refusal=405, plain=409)
    result = probe(f"{server.url}/test/dir", "", 1.0)
    assert (result.outcome, result.status_code, result.server_fault) == (Outcome.ERROR, 409, False)


def test_a_second_head_gets_only_what_is_left_of_the_budget_and_a_cut_one_is_no_verdict(
    digest_shy: Callable[..., DigestShy], probe: HeadProbe
) -> None:
    server = digest_shy(refusal=405)
    server.refusal_delay = 0.15
    server.plain_delay = 3.0
    started = time.monotonic()
    result = probe(f"{server.url}/test/hello.txt", "", 0.4)  # budget: the one timeout
    elapsed = time.monotonic() - started
    assert result.outcome is Outcome.TIMEOUT and not result.server_fault
    assert 0.39 <= elapsed < 0.4 + AT_ONCE  # 0.15 + what was left, not 0.15 + 0.4
    assert server.heads == ["crc32c", None]


def test_a_digest_head_that_gets_no_answer_is_asked_again_without_want_digest(
    digest_shy: Callable[..., DigestShy], probe: HeadProbe
) -> None:
    """XRootD 5.5 after a couple of digest HEADs on a directory: no answer at all."""
    server = digest_shy(refusal=405)
    server.refusal_delay = 3.0
    started = time.monotonic()
    result = probe(f"{server.url}/test/hello.txt", "", 0.2, 0.6)
    elapsed = time.monotonic() - started
    assert (result.outcome, result.size, result.server_fault) == (Outcome.PRESENT, 5, False)
    assert result.detail == "asked again without Want-Digest after no answer in 0.2 s"
    assert 0.19 <= elapsed < 0.2 + AT_ONCE
    assert server.heads == ["crc32c", None]


def test_no_answer_to_either_head_is_a_timeout_that_is_the_servers_fault(
    digest_shy: Callable[..., DigestShy], probe: HeadProbe
) -> None:
    server = digest_shy(refusal=405)
    server.refusal_delay = server.plain_delay = 3.0
    started = time.monotonic()
    result = probe(f"{server.url}/test/hello.txt", "", 0.2, 0.4)
    elapsed = time.monotonic() - started
    assert result.outcome is Outcome.TIMEOUT and result.server_fault
    assert 0.39 <= elapsed < 0.4 + AT_ONCE
    assert server.heads == ["crc32c", None]


def test_a_server_that_failed_a_digest_head_is_sent_plain_heads_for_a_while(
    digest_shy: Callable[..., DigestShy], probe: HeadProbe
) -> None:
    server = digest_shy(refusal=405)
    probe(f"{server.url}/test/hello.txt", "", 1.0)
    assert server.heads == ["crc32c", None]
    later = probe(f"{server.url}/test/hello.txt", "", 1.0)
    assert (later.outcome, later.detail) == (Outcome.PRESENT, "")
    assert server.heads == ["crc32c", None, None]  # one plain HEAD
    assert probe.plain_heads_until - time.monotonic() > PLAIN_HEADS_FOR - AT_ONCE - 1.0
    probe.plain_heads_until = time.monotonic()  # the while is over: a digest is asked again
    probe(f"{server.url}/test/hello.txt", "", 1.0)
    assert server.heads[3:] == ["crc32c", None]


def test_a_server_answering_4xx_is_never_ejected_and_one_answering_5xx_is(
    digest_shy: Callable[..., DigestShy],
) -> None:
    """XRootD on a directory: 409 to the digest HEAD, then a 4xx again. Six stats in a
    row (the threshold is 5) leave it in service; six 5xx eject the other."""
    directory = digest_shy(refusal=409, plain=405)
    broken = digest_shy(refusal=500, plain=503)
    engine = StatEngine(stat_config(stat_timeout=1.0), user_agent="ua/1")
    targets = [StatTarget("directory", "origin", directory.url)]
    targets.append(StatTarget("broken", "origin", broken.url))
    for _ in range(6):
        results = stat(engine, targets, "/test/dir", want_present=2)
        assert results["directory"].outcome is Outcome.ERROR
    pools = {state.name: state for state in engine.states()}
    assert (pools["directory"].ejected, pools["directory"].consecutive_failures) == (False, 0)
    assert pools["broken"].ejected and pools["broken"].times_ejected == 1
    settle(engine)
    engine.configure(engine.config, [])
