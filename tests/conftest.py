"""Shared fixtures: a real director on 127.0.0.1:0, real file servers, registry builders.

gevent is already patched by the ``director_project.gevent_pytest`` plugin (pyproject).
Tests that talk to ``live_director`` need committed data: the fixture pulls in
``transactional_db`` so that every greenlet's own database connection sees it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
from django.core.wsgi import get_wsgi_application
from django.utils import timezone
from gevent.pool import Pool
from gevent.pywsgi import WSGIServer

from director import registry
from director.demo.fileserver import FileServer
from director.models import Namespace, RegistrationToken, Server, Source, StatSettings

PUBLIC_CAPS = {
    "PublicRead": True,
    "Read": True,
    "Write": False,
    "Listing": False,
    "FallBackRead": False,
    "Copies": False,
}
ORIGIN_UA = "pelican-origin/7.20.0"
CACHE_UA = "pelican-cache/7.20.0"


@pytest.fixture(autouse=True)
def _fresh_registry_snapshot() -> Iterator[None]:
    """Each test starts without a snapshot: the database was flushed or rolled back."""
    registry.reset()
    yield
    registry.reset()


def caps(**flags: bool) -> dict[str, bool]:
    """Wire capabilities, e.g. caps(PublicRead=True, Read=True)."""
    base = dict.fromkeys(PUBLIC_CAPS, False)
    base.update(flags)
    return base


def namespace_ad(path: str, **extra: Any) -> dict[str, Any]:
    """A NamespaceAd; public readable unless ``Caps`` is given."""
    return {"Caps": extra.pop("Caps", PUBLIC_CAPS), "path": path, **extra}


def make_ad(
    name: str,
    kind: str,
    data_url: str,
    namespaces: list[dict[str, Any]] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """A Pelican advertisement body with a ten-minute expiry."""
    now = timezone.now()
    ad: dict[str, Any] = {
        "name": name,
        "registry-prefix": f"/{kind}s/{name}",
        "data-url": data_url,
        "web-url": data_url,
        "capabilities": PUBLIC_CAPS,
        "namespaces": namespaces if namespaces is not None else [namespace_ad("/test")],
        "status": "ok",
        "version": "7.20.0",
        "now": now.isoformat(),
        "expiry": (now + dt.timedelta(minutes=10)).isoformat(),
    }
    ad.update(fields)
    return ad


def configure_director(**overrides: Any) -> StatSettings:
    """Save the settings row (start-up grace off unless given) and rebuild the snapshot."""
    row = StatSettings.load()
    row.startup_grace = 0.0
    for name, value in overrides.items():
        setattr(row, name, value)
    row.full_clean()
    row.save()
    registry.rebuild()
    return row


def create_server(
    name: str,
    kind: str,
    data_url: str,
    namespaces: dict[str, dict[str, bool]] | None = None,
    *,
    rebuild: bool = True,
    **fields: Any,
) -> Server:
    """An admin-defined server with namespaces {path: capability fields}, via the ORM."""
    capability_fields = {
        key: fields.pop(key)
        for key in ("public_reads", "reads", "writes", "listings", "direct_reads", "copies")
        if key in fields
    }
    server = Server.objects.create(
        name=name,
        kind=kind,
        data_url=data_url,
        source=Source.ADMIN,
        **({"public_reads": True, "reads": True} | capability_fields),
        **fields,
    )
    for path, ns_caps in (namespaces or {"/test": {}}).items():
        Namespace.objects.create(
            server=server, path=path, **({"public_reads": True, "reads": True} | ns_caps)
        )
    if rebuild:
        registry.rebuild()
    return server


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
def live_director(transactional_db: None) -> Iterator[LiveDirector]:
    configure_director()
    server = WSGIServer(("127.0.0.1", 0), get_wsgi_application(), spawn=Pool(500), log=None)
    server.start()
    try:
        yield LiveDirector(url=f"http://127.0.0.1:{server.server_port}", server=server)
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
