"""Shared fixtures: a real director on 127.0.0.1:0, real file servers (builders: helpers.py).

gevent is already patched by the ``director_project.gevent_pytest`` plugin (pyproject).
Tests that talk to ``live_director`` need committed data: the fixture pulls in
``transactional_db`` so that every greenlet's own database connection sees it.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gevent
import pytest
import requests
from django.core.wsgi import get_wsgi_application
from gevent.event import Event
from gevent.pool import Pool
from gevent.pywsgi import WSGIServer
from helpers import CACHE_UA, CITY_RECORDS, ORIGIN_UA, configure_director, make_ad, write_mmdb
from openapi_support import JSONDict
from processes import origin_server, postgres_url, spawn  # noqa: F401  (fixtures)

from director import geo, locate, registry
from director.demo.fileserver import FileServer
from director.federation import issuer
from director.federation.refusals import refused_ads
from director.geo import OnceLog
from director.models import RegistrationToken, StatSettings
from director_project.api import api


def pytest_collection_finish(session: pytest.Session) -> None:
    """Move everything imported so far (Django, the project, the test modules) out of the
    collector's reach: a full collection over it held the event loop ~0.17 s on a 2-core
    machine, longer than the windows some stat-engine tests reason about."""
    gc.collect()
    gc.freeze()


@pytest.fixture(autouse=True)
def _fresh_registry_snapshot() -> Iterator[None]:
    """Each test starts without a snapshot (nor the issuer keys read before, nor the
    refused advertisements counted per address): the database was flushed or rolled back."""
    registry.reset()
    issuer.forget()
    refused_ads.clear()
    yield
    registry.reset()
    issuer.forget()
    refused_ads.clear()


@pytest.fixture
def hang_guard() -> Iterator[None]:
    """A bug must fail a test, never hang the suite (the stat-engine unit tests use it for
    every test: ``pytestmark = pytest.mark.usefixtures("hang_guard")``)."""
    guard = gevent.Timeout(5.0, AssertionError("test blocked for 5 s"))
    guard.start()
    try:
        yield
    finally:
        guard.close()


@pytest.fixture
def gate() -> Iterator[Event]:
    """Blocks FakeProbes until set; set at teardown so no greenlet outlives its test."""
    event = Event()
    yield event
    event.set()


@pytest.fixture
def fresh_once_log(monkeypatch: pytest.MonkeyPatch) -> OnceLog:
    """A new "log once" memory per test: what an earlier test logged must not hide ours
    (every test of tests/test_geo*.py uses it)."""
    log = OnceLog()
    monkeypatch.setattr(geo, "once", log)
    monkeypatch.setattr(registry, "once", log)
    return log


@pytest.fixture
def city_db(tmp_path: Path) -> Path:
    return write_mmdb(tmp_path / "GeoLite2-City.mmdb", CITY_RECORDS)


@pytest.fixture
def locate_settings(settings) -> Iterator[object]:
    """Django settings whose GeoIP and proxy values the cached helpers re-read."""

    def clear() -> None:
        locate.trusted_proxies.cache_clear()
        locate.locator.cache_clear()
        locate.geoip_database.cache_clear()

    clear()
    yield settings
    clear()


@pytest.fixture(scope="module")
def document() -> JSONDict:
    """The OpenAPI document as /api/openapi.json serves it (status codes as strings)."""
    parsed: JSONDict = json.loads(json.dumps(api.get_openapi_schema()))
    return parsed


@pytest.fixture
def director_settings(db: None) -> Callable[..., StatSettings]:
    configure_director()
    return configure_director


@dataclass
class LiveDirector:
    """The director served for real on loopback, plus helpers to feed it ads."""

    url: str
    server: WSGIServer
    tokens: dict[str, str] = field(default_factory=dict)

    def token_for(self, registry_prefix: str) -> str:
        if registry_prefix not in self.tokens:
            self.tokens[registry_prefix] = RegistrationToken.issue(registry_prefix)[1]
        return self.tokens[registry_prefix]

    def advertise(
        self, ad: dict[str, Any], *, token: str | None = None, **kw: Any
    ) -> requests.Response:
        kind = "origin" if ad["registry-prefix"].startswith("/origins/") else "cache"
        endpoint = "registerOrigin" if kind == "origin" else "registerCache"
        secret = token if token is not None else self.token_for(ad["registry-prefix"])
        headers = {"User-Agent": ORIGIN_UA if kind == "origin" else CACHE_UA}
        if secret:
            headers["Authorization"] = f"Bearer {secret}"
        headers.update(kw.pop("headers", {}))
        return requests.post(
            f"{self.url}/api/v1.0/director/{endpoint}", json=ad, headers=headers, timeout=10, **kw
        )

    def register(self, name: str, kind: str, data_url: str, **kw: Any) -> dict[str, Any]:
        ad = make_ad(name, kind, data_url, **kw)
        answer = self.advertise(ad)
        assert answer.status_code == 200, answer.text
        return ad

    def get(self, path: str, **kw: Any) -> requests.Response:
        kw.setdefault("allow_redirects", False)
        kw.setdefault("timeout", 10)
        return requests.get(f"{self.url}{path}", **kw)

    def request(self, method: str, path: str, **kw: Any) -> requests.Response:
        kw.setdefault("allow_redirects", False)
        kw.setdefault("timeout", 10)
        return requests.request(method, f"{self.url}{path}", **kw)


@pytest.fixture
def live_director(transactional_db: None, settings: Any) -> Iterator[LiveDirector]:
    """Named by its URL (DIRECTOR_EXTERNAL_URL), as a deployment is: it mints tokens
    with that issuer and accepts advertise tokens for that audience."""
    configure_director()
    server = WSGIServer(("127.0.0.1", 0), get_wsgi_application(), spawn=Pool(500), log=None)
    server.start()
    url = f"http://127.0.0.1:{server.server_port}"
    settings.DIRECTOR_EXTERNAL_URL = url
    try:
        yield LiveDirector(url=url, server=server)
    finally:
        server.stop(timeout=1)


@pytest.fixture
def file_servers() -> Iterator[Callable[..., FileServer]]:
    """Factory of started FileServers (origins and caches), all stopped after the test."""
    started: list[FileServer] = []

    def start(files: dict[str, bytes] | None = None, **kw: Any) -> FileServer:
        server = FileServer(files, **kw).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop(timeout=0.2)
