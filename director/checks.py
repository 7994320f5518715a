"""System checks: bad settings are explained at start-up (``manage.py check``)."""

from __future__ import annotations

from collections.abc import Sequence
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
                "DIRECTOR_EXTERNAL_URL is not set: getFedToken mints no tokens (503), and "
                "advertise tokens are checked against the Host each request names.",
                hint="Set DIRECTOR_EXTERNAL_URL to this director's public URL, e.g. "
                "https://director.example.org (DIRECTOR_ADVERTISE_AUDIENCES for more names).",
                id="director.W002",
            )
        )
    return messages


def register() -> None:
    checks.register(check_director_settings, "director")
    checks.register(check_deployment, "director", deploy=True)
