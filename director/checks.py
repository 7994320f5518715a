"""System checks: bad settings are explained at start-up (``manage.py check``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.core import checks

from director.trust.tokens import wlcg_audience
from director.wire.types import ServerKind


def check_director_settings(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    messages: list[checks.CheckMessage] = []
    if settings.DIRECTOR_DEFAULT_RESPONSE not in tuple(ServerKind):
        messages.append(
            checks.Error(
                f"DIRECTOR_DEFAULT_RESPONSE={settings.DIRECTOR_DEFAULT_RESPONSE!r} is not valid.",
                hint="Use 'cache' (the default) or 'origin'.",
                id="director.E001",
            )
        )
    external = settings.DIRECTOR_EXTERNAL_URL
    if external and not external.startswith(("http://", "https://")):
        messages.append(
            checks.Error(
                f"DIRECTOR_EXTERNAL_URL={external!r} is not an http(s) URL.",
                hint="For example https://director.example.org",
                id="director.E002",
            )
        )
    for name in ("DIRECTOR_REGISTRY_URL", "DIRECTOR_FEDERATION_DISCOVERY_URL"):
        value = getattr(settings, name)
        if value and not value.startswith(("http://", "https://")):
            messages.append(  # a warning: the director still starts and serves redirects
                checks.Warning(
                    f"{name}={value!r} is not an http(s) URL: no advertisement can be "
                    "verified (503) until it is.",
                    hint="For example https://registry.example.org (Pelican's base URL).",
                    id="director.W006",
                )
            )
    for audience in settings.DIRECTOR_ADVERTISE_AUDIENCES:
        if not wlcg_audience(audience):
            messages.append(
                checks.Error(
                    f"DIRECTOR_ADVERTISE_AUDIENCES: {audience!r} is not an http(s) URL.",
                    hint="Comma-separated URLs this director is reached by, e.g. "
                    "https://director.example.org,https://osdf-director.example.org:8443",
                    id="director.E005",
                )
            )
    from director.locate import parse_networks, parse_region

    try:
        parse_networks(settings.DIRECTOR_TRUSTED_PROXIES)
    except ValueError as error:
        messages.append(
            checks.Error(
                f"DIRECTOR_TRUSTED_PROXIES: {error}.",
                hint="A comma-separated list of addresses or CIDRs, e.g. 10.0.0.0/8,::1",
                id="director.E003",
            )
        )
    try:
        parse_region(settings.DIRECTOR_DEFAULT_REGION)
    except ValueError as error:
        messages.append(
            checks.Error(
                f"DIRECTOR_DEFAULT_REGION={settings.DIRECTOR_DEFAULT_REGION!r}: {error}.",
                hint="lat_min,lat_max,long_min,long_max, e.g. 30,50,-125,-65",
                id="director.E004",
            )
        )
    messages.extend(_registry_lifetimes())
    messages.extend(_registry_query_interval())
    return messages


# The registry client serves its cached keys and approvals this long while the registry
# fails (director.remote.registry.RegistryTiming.max_stale); polls should be more frequent.
MAX_QUERY_INTERVAL = 900.0


def _registry_query_interval() -> list[checks.CheckMessage]:
    interval = settings.DIRECTOR_REGISTRY_QUERY_INTERVAL
    if interval <= MAX_QUERY_INTERVAL:
        return []
    return [
        checks.Warning(
            f"DIRECTOR_REGISTRY_QUERY_INTERVAL={interval:g}: a registry downtime or a change "
            "of a cache's allowed prefixes would take effect only after that many seconds.",
            hint="Pelican's director polls every 60 s (the default); use at most "
            f"{MAX_QUERY_INTERVAL:g}.",
            id="director.W019",
        )
    ]


# A server polling its record every minute refreshes last_seen_at every 10 minutes
# (director.federation.registry.LAST_SEEN_RESOLUTION): a shorter inactivity timeout
# would expire servers that are alive.
LAST_SEEN_SLACK = 660.0


def _registry_lifetimes() -> list[checks.CheckMessage]:
    messages: list[checks.CheckMessage] = []
    timeout = settings.DIRECTOR_INACTIVE_REGISTRATION_TIMEOUT
    if timeout < LAST_SEEN_SLACK:
        messages.append(
            checks.Error(
                f"DIRECTOR_INACTIVE_REGISTRATION_TIMEOUT={timeout:g} would expire pending "
                "servers that still ask for their server record (it is recorded to 10 "
                "minutes).",
                hint=f"Use at least {LAST_SEEN_SLACK:g} seconds; Pelican's default is 1200.",
                id="director.E011",
            )
        )
    lifetime = settings.DIRECTOR_REGISTRY_CHALLENGE_SECONDS
    if lifetime > 3600:
        messages.append(
            checks.Warning(
                f"DIRECTOR_REGISTRY_CHALLENGE_SECONDS={lifetime:g}: a registry challenge "
                "lives over an hour.",
                hint="A Pelican server commits within seconds of its init; the default is 300.",
                id="director.W011",
            )
        )
    return messages


def check_issuer_keys(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """The federation issuer's stored keys can be read (director.federation.keystore):
    the passphrase settings, then each encrypted key. Skipped while the database cannot
    be read (not migrated yet, or down: reported elsewhere)."""
    from django.db import DatabaseError, connection

    from director.federation import keystore

    hint = (
        f"Give the passphrase the keys were encrypted with in {keystore.SETTING} or "
        f"{keystore.FILE_SETTING} (one of them); see the README, Keys at rest."
    )
    try:
        secret = keystore.passphrase()
    except keystore.KeyStoreError as error:
        return [checks.Error(error.problem + ".", hint=hint, id="director.E061")]
    messages: list[checks.CheckMessage] = []
    if secret is not None and len(secret) < keystore.SHORT_PASSPHRASE:
        messages.append(
            checks.Warning(
                f"The issuer key passphrase is shorter than {keystore.SHORT_PASSPHRASE} "
                "characters: a stolen backup's keys could be guessed.",
                hint="Use a random one, e.g. `openssl rand -base64 32`.",
                id="director.W061",
            )
        )
    if _sqlite_file_missing(connection.settings_dict):
        return messages  # nothing stored yet, and a check must not create the file
    opened_here = connection.connection is None
    try:
        unreadable = keystore.problems()
    except DatabaseError:
        return messages
    finally:
        if opened_here:
            connection.close()
    messages.extend(
        checks.Error(problem + ".", hint=hint, id="director.E062") for problem in unreadable
    )
    return messages


def _sqlite_file_missing(database: dict[str, Any]) -> bool:
    name = str(database.get("NAME") or "")
    return (
        str(database.get("ENGINE", "")).endswith("sqlite3")
        and name != ":memory:"
        and not name.startswith("file:")
        and not Path(name).exists()
    )


def check_federation_identity(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """The federation's names (director.federation.issuer): its discovery URL is the
    ``iss`` of every token minted here, so it must be a bare URL, as Pelican requires."""
    from urllib.parse import urlsplit

    messages: list[checks.CheckMessage] = []
    jwks = settings.DIRECTOR_FEDERATION_JWKS_URL
    if jwks and not jwks.startswith(("http://", "https://")):
        messages.append(
            checks.Error(
                f"DIRECTOR_FEDERATION_JWKS_URL={jwks!r} is not an http(s) URL.",
                hint="The jwks_uri of the federation's discovery document, e.g. "
                "https://osg-htc.org/osdf/public_signing_key.jwks",
                id="director.E071",
            )
        )
    discovery = settings.DIRECTOR_FEDERATION_DISCOVERY_URL
    if discovery.startswith(("http://", "https://")):  # else director.W006
        parts = urlsplit(discovery)
        path = parts.path.removesuffix("/.well-known/pelican-configuration")
        if path.strip("/") or parts.query or parts.fragment or not parts.hostname:
            messages.append(
                checks.Error(
                    f"DIRECTOR_FEDERATION_DISCOVERY_URL={discovery!r} is not a bare URL: "
                    "it is the issuer of every token this director mints, and Pelican's "
                    "servers refuse a discovery URL with a path.",
                    hint="Give scheme, host and port only, e.g. https://osg-htc.org",
                    id="director.E072",
                )
            )
    return messages


def check_deployment(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """Only with ``manage.py check --deploy``: a laptop needs no secret key, nor a name."""
    messages: list[checks.CheckMessage] = []
    if settings.SECRET_KEY == settings.INSECURE_DEFAULT_SECRET_KEY:
        messages.append(
            checks.Warning(
                "DJANGO_SECRET_KEY is not set: admin sessions are signed with a public key.",
                hint="Set DJANGO_SECRET_KEY to a long random value in production.",
                id="director.W001",
            )
        )
    if not settings.DIRECTOR_EXTERNAL_URL:
        messages.append(
            checks.Warning(
                "DIRECTOR_EXTERNAL_URL is not set: advertise tokens are checked against the "
                "Host each request names, and getFedToken mints no tokens (503) unless "
                "DIRECTOR_FEDERATION_DISCOVERY_URL names the federation's issuer.",
                hint="Set DIRECTOR_EXTERNAL_URL to this director's public URL, e.g. "
                "https://director.example.org (DIRECTOR_ADVERTISE_AUDIENCES for more names).",
                id="director.W002",
            )
        )
    return messages


def register() -> None:
    checks.register(check_director_settings, "director")
    checks.register(check_deployment, "director", deploy=True)
    checks.register(check_issuer_keys, "director")
    checks.register(check_federation_identity, "director")
