"""Director health tests (reference 7), bounded like everything else.

1. One director process per database runs them: it holds a lease row
   (``HealthTestLease``), renewed every 5 s and lasting 15 s, so several processes or
   hosts do not test every server several times over.
2. Every ``health_test_interval`` (15 s) each routable server whose ad does not say
   ``directorTest: true`` is tested, with at most one test in flight per server, at most
   ``MAX_CONCURRENT_TESTS`` in all, each under a ``health_test_timeout`` deadline.
   - origin: PUT, GET, DELETE of ``/pelican/monitoring/directorTest/director-test-<time>.txt``;
     passes when the bytes read back match.
   - cache: GET ``/pelican/monitoring/directorTest/<director>/<day>/director-test-<time>.txt``,
     which the cache pulls through this director from its own health-test endpoint;
     passes when the body is the test text.
3. Test greenlets touch no database: they hand results to the loop greenlet, which
   records them (``healthStatus``) and rebuilds the routing snapshot only when a
   server's verdict or its weight penalty changes.

Tokens and reports (reference 7.2, 7.4): the origin test carries a token of the
federation issuer (``director.federation.issuer``; scopes ``storage.read:/
storage.modify:/``, audience the data URL twice, one minute), so an origin that requires
tokens for writes accepts it; after each test the result is POSTed to the server's
``/api/v1.0/origin|cache/directorTest`` with a ``pelican.director_test_report`` token, as
Pelican's director does. The tokens are minted by the loop greenlet (which may read the
keys from the database), never by a test greenlet. Their ``iss`` is the federation's
(``issuer.federation_issuer``: DIRECTOR_FEDERATION_DISCOVERY_URL, else this director's
URL). Without an issuer URL (none of DIRECTOR_FEDERATION_DISCOVERY_URL,
DIRECTOR_EXTERNAL_URL and a serving address) tests run without tokens and nothing is
reported.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import time
import uuid
from dataclasses import dataclass

import gevent
import requests
from django.db import IntegrityError, close_old_connections, transaction
from django.db.models import Q
from django.utils import timezone
from gevent.pool import Pool
from requests.adapters import HTTPAdapter

from director import __version__, registry
from director.federation import issuer, standing
from director.models import HealthStatus, HealthTestLease, Server
from director.serving.supervisor import SupervisedLoop
from director.serving.traffic import Buckets
from director.snapshot import DirectorSettings, ServerKey, ServerView
from director.trust import tokens
from director.wire import healthfiles
from director.wire.gotime import go_rfc3339
from director.wire.paths import go_path_escape
from director.wire.types import ServerKind

logger = logging.getLogger(__name__)

MAX_CONCURRENT_TESTS = 20
# Health-test durations (seconds): a test takes a few ms on a healthy server and ends by
# its health_test_timeout (10 s) on a hung one.
TEST_DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
TICK = 1.0
LEASE_SECONDS = 15.0
LEASE_RENEW_SECONDS = 5.0
USER_AGENT = f"pelican-director/{__version__}"
REPORT_USER_AGENT = f"pelican-director{__version__}"  # Pelican's, without the slash


@dataclass(frozen=True)
class TestOutcome:
    server: ServerKey
    passed: bool
    message: str
    finished_at: dt.datetime


class _Deadline:
    def __init__(self, seconds: float) -> None:
        self.ends_at = time.monotonic() + seconds

    def left(self) -> float:
        left = self.ends_at - time.monotonic()
        if left <= 0:
            raise requests.Timeout("out of time")
        return left


def _read_some(answer: requests.Response, limit: int) -> bytes:
    """At most ``limit`` bytes of the body, then the connection is closed: a server
    answering with a huge body cannot fill the director's memory."""
    try:
        return answer.raw.read(limit, decode_content=True) or b""
    finally:
        answer.close()


@dataclass(frozen=True)
class TestTokens:
    """The bearer tokens of one test: for the origin's PUT/GET/DELETE, for the report."""

    transfer: str = ""
    report: str = ""


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def origin_test(
    session: requests.Session, server: ServerView, timeout: float, token: str = ""
) -> tuple[bool, str]:
    """PUT, GET and DELETE a test object; pass when the GET returns the PUT bytes."""
    deadline = _Deadline(timeout)
    url = server.url + go_path_escape(healthfiles.origin_test_path(timezone.now()))
    body = healthfiles.TEST_TEXT.encode()
    auth = _bearer(token)
    answer = session.put(url, data=body, headers=auth, timeout=deadline.left(), stream=True)
    answer.close()
    if answer.status_code > 299:
        return False, f"PUT {url} answered {answer.status_code}"
    answer = session.get(url, headers=auth, timeout=deadline.left(), stream=True)
    read_back = _read_some(answer, len(body) + 1)
    passed = answer.status_code <= 299 and read_back == body
    deleted = session.delete(url, headers=auth, timeout=deadline.left(), stream=True)
    deleted.close()
    if answer.status_code > 299:
        return False, f"GET {url} answered {answer.status_code}"
    if not passed:
        return False, f"GET {url} returned {len(read_back)} bytes that differ from those PUT"
    if deleted.status_code > 299:
        return False, f"DELETE {url} answered {deleted.status_code}"
    return True, "PUT, GET and DELETE of the test object succeeded"


def cache_test(
    session: requests.Session, server: ServerView, director_name: str, timeout: float
) -> tuple[bool, str]:
    """GET a director-test object through the cache; pass when the text comes back."""
    deadline = _Deadline(timeout)
    path = healthfiles.cache_test_path(director_name, timezone.now())
    url = server.url + go_path_escape(path)
    answer = session.get(url, timeout=deadline.left(), stream=True)
    content = _read_some(answer, len(healthfiles.TEST_TEXT) + 2)
    if answer.status_code != 200:
        return False, f"GET {url} answered {answer.status_code}"
    if content.rstrip(b"\n") != healthfiles.TEST_TEXT.encode():
        return False, f"GET {url} returned other bytes than the test text"
    return True, "GET of the test object through the cache succeeded"


def run_test(
    session: requests.Session,
    server: ServerView,
    director_name: str,
    timeout: float,
    token: str = "",
) -> tuple[bool, str]:
    """One whole test under one deadline; failures are values, never exceptions."""
    test = (
        (lambda: origin_test(session, server, timeout, token))
        if server.kind is ServerKind.ORIGIN
        else (lambda: cache_test(session, server, director_name, timeout))
    )
    try:
        verdict: tuple[bool, str] = gevent.with_timeout(
            timeout, test, timeout_value=(False, f"no verdict within {timeout:g} s")
        )
    except requests.Timeout:
        return False, f"no answer within {timeout:g} s"
    except requests.RequestException as error:
        return False, f"transport error: {type(error).__name__}"
    return verdict


REPORT_PATHS = {
    ServerKind.ORIGIN: "/api/v1.0/origin/directorTest",
    ServerKind.CACHE: "/api/v1.0/cache/directorTest",
}
REPORT_TIMEOUT = 5.0


def report_body(
    server: ServerView, passed: bool, message: str, at: dt.datetime
) -> dict[str, object]:
    """Pelican's report (``server_structs.DirectorTestResult``)."""
    if passed:
        text = f"Director test cycle succeeded at {go_rfc3339(at)}"
    else:
        text = f"Director file transfer test cycle failed for server: {server.url} {message}"
    return {
        "status": "ok" if passed else "error",
        "message": text,
        "timestamp": int(at.timestamp()),
    }


def report(
    session: requests.Session, server: ServerView, body: dict[str, object], token: str
) -> bool:
    """POST the result to the server's directorTest endpoint; True on 200 (failures are
    only logged: a server without the endpoint is still tested)."""
    url = server.web_url.rstrip("/") + REPORT_PATHS[server.kind]
    try:
        answer = session.post(
            url,
            json=body,
            headers={**_bearer(token), "User-Agent": REPORT_USER_AGENT},
            timeout=REPORT_TIMEOUT,
        )
        answer.close()
    except requests.RequestException as error:
        logger.info("health test report to %s failed: %s", url, type(error).__name__)
        return False
    if answer.status_code != 200:
        logger.info("health test report to %s answered %s", url, answer.status_code)
    return answer.status_code == 200


class HealthTester:
    """Owner of this process's health-test loop and of its (bounded) test greenlets."""

    def __init__(self, director_name: str, issuer_url: str = "") -> None:
        self.director_name = director_name
        # The federation's discovery URL when it lives elsewhere, else this director's.
        self.issuer_url = issuer.federation_issuer(issuer_url)
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.session = requests.Session()
        adapter = HTTPAdapter(pool_maxsize=MAX_CONCURRENT_TESTS, max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers["User-Agent"] = USER_AGENT
        self._pool = Pool(MAX_CONCURRENT_TESTS)
        self._running: set[ServerKey] = set()
        self._last_started: dict[ServerKey, float] = {}
        self._outcomes: list[TestOutcome] = []
        self._lease_checked_at = float("-inf")
        self._lease_held = False
        self._loop = SupervisedLoop("director-health-tests", logger, label="health tests")
        # For /metrics: (name, web URL, kind, Succeeded|Failed) -> tests; kind -> durations.
        # (name, web URL, kind, test status, report status) -> runs
        self.runs: dict[tuple[str, str, str, str, str], int] = {}
        self.durations: dict[str, Buckets] = {}

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        self._loop.start(self._run)

    def stop(self) -> None:
        self._loop.stop()
        self._pool.kill(timeout=2)

    def _run(self) -> None:
        while True:
            try:
                self.tick()
            except Exception:
                logger.exception("health tests: one round failed; continuing")
            finally:
                close_old_connections()
            gevent.sleep(TICK)

    # -- one round -------------------------------------------------------------------------
    def tick(self) -> None:
        """Record finished tests, then start the tests that are due."""
        self.record_outcomes()
        snapshot = registry.current()
        settings = snapshot.settings
        if settings.health_test_interval <= 0 or not self.hold_lease():
            return
        now = time.monotonic()
        wall = time.time()
        due = [
            (key, server)
            for key, server in snapshot.servers.items()
            if server.health_tests
            and server.routable(wall)
            and key not in self._running
            and now - self._last_started.get(key, float("-inf")) >= settings.health_test_interval
        ]
        # One query a round, at the moment of testing: a server whose registration is
        # denied or deleted gets no test and no token, whatever the snapshot says.
        withdrawn = standing.withdrawn(key for key, _ in due) if due else set()
        for key, server in due:
            if key in withdrawn:
                self._last_started[key] = now  # asked again an interval later, not every tick
                continue
            if self._pool.full():
                break
            self._running.add(key)
            self._last_started[key] = now
            self._pool.spawn(self._test, server, settings, self.tokens_for(server))
        for key in set(self._last_started) - set(snapshot.servers):
            del self._last_started[key]
        for run in [run for run in self.runs if (run[2], run[0]) not in snapshot.servers]:
            del self.runs[run]

    def tokens_for(self, server: ServerView) -> TestTokens:
        """The federation issuer's tokens for one test (reference pelican-trust 3.4, 3.5)."""
        if not self.issuer_url:
            return TestTokens()
        signer = issuer.signer()
        lifetime = issuer.HEALTH_TEST_TOKEN_LIFETIME
        transfer = ""
        if server.kind is ServerKind.ORIGIN:
            transfer = signer.mint(
                issuer=self.issuer_url,
                subject=self.issuer_url,
                audience=[server.url, server.url],
                scopes=[f"{tokens.STORAGE_READ}:/", f"{tokens.STORAGE_MODIFY}:/"],
                lifetime=lifetime,
            )
        report_token = ""
        if server.web_url:
            report_token = signer.mint(
                issuer=self.issuer_url,
                subject="director",
                audience=[server.web_url],
                scopes=[tokens.DIRECTOR_TEST_REPORT],
                lifetime=lifetime,
            )
        return TestTokens(transfer, report_token)

    def _test(
        self, server: ServerView, settings: DirectorSettings, test_tokens: TestTokens
    ) -> None:
        started = time.monotonic()
        try:
            passed, message = run_test(
                self.session,
                server,
                self.director_name,
                settings.health_test_timeout,
                test_tokens.transfer,
            )
            elapsed = time.monotonic() - started  # the test alone, not its report
            finished = timezone.now()
            reported = "NotReported"  # no issuer, or a server without a web URL
            if test_tokens.report:
                body = report_body(server, passed, message, finished)
                sent = report(self.session, server, body, test_tokens.report)
                reported = "Succeeded" if sent else "Failed"
        finally:
            self._running.discard(server.key)
        kind = server.kind.value
        run = (server.name, server.web_url, kind, "Succeeded" if passed else "Failed", reported)
        self.runs[run] = self.runs.get(run, 0) + 1
        buckets = self.durations.get(kind)
        if buckets is None:
            buckets = self.durations[kind] = Buckets(TEST_DURATION_BUCKETS)
        buckets.observe(elapsed)
        self._outcomes.append(TestOutcome(server.key, passed, message, finished))

    def hold_lease(self) -> bool:
        """True while this process holds the health-test lease (checked every 5 s)."""
        now = time.monotonic()
        if now - self._lease_checked_at < LEASE_RENEW_SECONDS:
            return self._lease_held
        self._lease_checked_at = now
        moment = timezone.now()
        until = moment + dt.timedelta(seconds=LEASE_SECONDS)
        free = Q(holder=self.holder) | Q(expires_at__isnull=True) | Q(expires_at__lt=moment)
        updated = (
            HealthTestLease.objects.filter(pk=1)
            .filter(free)
            .update(holder=self.holder, expires_at=until)
        )
        if not updated and not HealthTestLease.objects.filter(pk=1).exists():
            try:
                with transaction.atomic():
                    HealthTestLease.objects.create(pk=1, holder=self.holder, expires_at=until)
                updated = 1
            except IntegrityError:
                updated = 0
        if bool(updated) != self._lease_held:
            logger.info("health tests: %s the lease", "took" if updated else "do not hold")
        self._lease_held = bool(updated)
        return self._lease_held

    def record_outcomes(self) -> None:
        """Store finished tests; rebuild routing when a verdict or a penalty changes."""
        outcomes, self._outcomes = self._outcomes, []
        if not outcomes:
            return
        snapshot = registry.current()
        settings = snapshot.settings
        changed: list[int] = []
        with transaction.atomic():
            for outcome in outcomes:
                kind, name = outcome.server
                server = Server.objects.filter(kind=kind, name=name).first()
                if server is None:
                    continue
                routed = snapshot.servers.get(outcome.server)
                before = (server.health_status, routed.status_weight if routed else None)
                server.health_status = HealthStatus.OK if outcome.passed else HealthStatus.ERROR
                server.health_message = outcome.message[:500]
                server.health_checked_at = outcome.finished_at
                if outcome.passed:
                    server.health_failing_since = None
                elif server.health_failing_since is None:
                    server.health_failing_since = outcome.finished_at
                Server.objects.filter(pk=server.pk).update(
                    health_status=server.health_status,
                    health_message=server.health_message,
                    health_checked_at=server.health_checked_at,
                    health_failing_since=server.health_failing_since,
                )
                if not outcome.passed:
                    logger.warning("health test of %s failed: %s", server.name, outcome.message)
                # Compared with the weight routing uses now, so that a penalty whose grace
                # ran out between two failed tests reaches routing at the next one.
                weight = registry.effective_status_weight(server, settings, timezone.now())
                after = (server.health_status, weight if routed else None)
                if after[0] != before[0] or not _same(after[1], before[1]):
                    changed.append(server.pk)
            if changed:
                registry.registry_changed(changed)


def _same(a: float | None, b: float | None) -> bool:
    return a is None or b is None or abs(a - b) < 1e-9


tester: HealthTester | None = None


def start(director_name: str, issuer_url: str = "") -> HealthTester:
    global tester
    if tester is None:
        tester = HealthTester(director_name, issuer_url)
    tester.start()
    return tester
