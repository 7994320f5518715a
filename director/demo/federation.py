"""The local demo federation of ``make run``: two origins and two caches on loopback.

The origins serve files from a generated data folder; the caches pull objects through the
director. All four join the Pelican way (``director.demo.pelican``): each holds an issuer
key (kept in ``demo-keys/`` beside the data), registers its prefix (and the origins the
``/demo`` namespace) with the director's registry, is approved by this set-up as an
administrator would, and advertises every minute with a token signed by its key. The two
origins export one namespace, so they share one key, as Pelican requires (a namespace's
ads are verified against the keys registered for it). With Pelican registration turned
off (DIRECTOR_PELICAN_REGISTRATION=0) they use registration tokens instead.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from pathlib import Path

import gevent
import requests
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from director.demo.fileserver import FileServer
from director.demo.pelican import PelicanIdentity, load_or_create_key
from director.federation.registry import decide
from director.models import RegistrationStatus, RegistrationToken, Server
from director.registry import registry_changed
from director.serving.supervisor import SupervisedLoop
from director.wire.types import ServerKind

logger = logging.getLogger(__name__)

DEMO_TOKEN_DESCRIPTION = "demo federation (make run)"
DEMO_APPROVER = "demo set-up (make run)"
ORIGINS_KEY = "demo-origins"  # the origins' shared key: both export /demo
DEMO_NAMESPACE = "/demo"
AD_LIFETIME = dt.timedelta(minutes=10)
ADVERTISE_INTERVAL = 60.0
# (name, kind, latitude, longitude): places whose order from a client is easy to check.
DEMO_SERVERS = (
    ("demo-origin-madison", ServerKind.ORIGIN, 43.0731, -89.4012),
    ("demo-origin-lincoln", ServerKind.ORIGIN, 40.8136, -96.7026),
    ("demo-cache-chicago", ServerKind.CACHE, 41.8781, -87.6298),
    ("demo-cache-sandiego", ServerKind.CACHE, 32.7157, -117.1611),
)
DEMO_FILES = {
    "demo/hello.txt": b"Hello from the director demo federation!\n",
    "demo/data/numbers.csv": b"n,square\n"
    + b"".join(f"{n},{n * n}\n".encode() for n in range(1, 11)),
}


def write_demo_data(data_dir: Path) -> None:
    for relative, content in DEMO_FILES.items():
        target = data_dir / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)


@dataclass
class DemoServer:
    name: str
    kind: ServerKind
    latitude: float
    longitude: float
    server: FileServer
    secret: str = ""
    identity: PelicanIdentity | None = None

    @property
    def registry_prefix(self) -> str:
        return f"/{self.kind}s/{self.name}"


@dataclass
class DemoFederation:
    """Owner of the demo servers and of the one greenlet that re-advertises them."""

    director_url: str
    data_dir: Path
    # The demo's CA when the director also serves TLS: its caches follow redirects to
    # the director's HTTPS URL (its external URL), e.g. for the health-test objects.
    ca_file: Path | None = None
    members: list[DemoServer] = field(default_factory=list)
    token_pks: list[int] = field(default_factory=list)
    _advertiser: SupervisedLoop = field(
        default_factory=lambda: SupervisedLoop("demo-advertiser", logger, label="demo advertiser")
    )

    def start(self) -> DemoFederation:
        write_demo_data(self.data_dir)
        pelican = settings.DIRECTOR_PELICAN_REGISTRATION
        secrets_by_name, self.token_pks = ({}, []) if pelican else _issue_tokens()
        for name, kind, latitude, longitude in DEMO_SERVERS:
            if kind is ServerKind.ORIGIN:
                server = FileServer(root=self.data_dir, name=name)
            else:
                server = FileServer(
                    name=name,
                    upstream_director=self.director_url,
                    upstream_ca=str(self.ca_file) if self.ca_file is not None else None,
                )
            member = DemoServer(
                name, kind, latitude, longitude, server.start(), secrets_by_name.get(name, "")
            )
            if pelican:
                key_name = ORIGINS_KEY if kind is ServerKind.ORIGIN else name
                key = load_or_create_key(self.data_dir.parent / "demo-keys" / f"{key_name}.pem")
                member.identity = PelicanIdentity(key, name, self.director_url)
            self.members.append(member)
        if pelican:
            self.register_all()
        self.advertise_all()
        self._advertiser.start(self._readvertise)
        return self

    def ad_for(self, member: DemoServer) -> dict[str, object]:
        now = timezone.now()
        caps = {
            "PublicRead": True,
            "Read": True,
            "Write": False,
            "Listing": True,
            "FallBackRead": True,
            "Copies": False,
        }
        return {
            "name": member.name,
            "registry-prefix": member.registry_prefix,
            "data-url": member.server.url,
            "web-url": member.server.url,
            "capabilities": caps,
            "namespaces": [{"Caps": caps, "path": DEMO_NAMESPACE}],
            "coordinate": {"Lat": member.latitude, "Long": member.longitude, "Source": "declared"},
            "status": "ok",
            "version": "7.20.0",
            "now": now.isoformat(),
            "expiry": (now + AD_LIFETIME).isoformat(),
            # The demo servers take the director's health tests (PUT/GET/DELETE on the
            # origins, a pull-through GET on the caches).
            "directorTest": False,
        }

    def register_all(self) -> None:
        """Register every prefix with the registry, then approve them (the demo's own
        administrator: a real federation approves in the admin or with approvenamespace)."""
        registered = []
        for member in self.members:
            assert member.identity is not None
            prefixes = [member.registry_prefix]
            if member.kind is ServerKind.ORIGIN:
                prefixes.append(DEMO_NAMESPACE)
            registered += [prefix for prefix in prefixes if member.identity.register(prefix)]
        decide(registered, RegistrationStatus.APPROVED, DEMO_APPROVER)

    def advertise_all(self) -> None:
        for member in self.members:
            endpoint = "registerOrigin" if member.kind is ServerKind.ORIGIN else "registerCache"
            bearer = (
                member.identity.advertise_token(self.director_url)
                if member.identity is not None
                else member.secret
            )
            try:
                answer = requests.post(
                    f"{self.director_url}/api/v1.0/director/{endpoint}",
                    json=self.ad_for(member),
                    headers={
                        "Authorization": f"Bearer {bearer}",
                        "User-Agent": f"pelican-{member.kind}/7.20.0",
                    },
                    timeout=10,
                )
            except requests.RequestException as error:
                logger.warning("demo: %s could not advertise: %s", member.name, error)
                continue
            if answer.status_code != 200:
                logger.warning("demo: %s advertisement refused: %s", member.name, answer.text)

    def _readvertise(self) -> None:
        while True:
            gevent.sleep(ADVERTISE_INTERVAL)
            self.advertise_all()

    def stop(self) -> None:
        self._advertiser.stop()
        for member in self.members:
            member.server.stop(timeout=0.5)
        # Let the demo servers leave routing now rather than in ten minutes, and revoke
        # this run's tokens (only these: another demo on the same database keeps its own).
        with transaction.atomic():
            members = Server.objects.filter(name__in=[m.name for m in self.members])
            servers = list(members.values_list("pk", flat=True))
            members.update(expires_at=timezone.now())
            registry_changed(servers)
            RegistrationToken.objects.filter(pk__in=self.token_pks).update(
                revoked_at=timezone.now()
            )


def _issue_tokens() -> tuple[dict[str, str], list[int]]:
    """Fresh tokens for this run's demo servers (their secrets, their keys). Earlier runs'
    tokens are left alone: a second ``make run`` on the same database revoked the first
    one's, and the first one's ads were refused until it restarted."""
    with transaction.atomic():
        issued = {
            name: RegistrationToken.issue(
                f"/{kind}s/{name}", DEMO_TOKEN_DESCRIPTION, [DEMO_NAMESPACE]
            )
            for name, kind, _, _ in DEMO_SERVERS
        }
    return {name: secret for name, (_, secret) in issued.items()}, [
        token.pk for token, _ in issued.values()
    ]
