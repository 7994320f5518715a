"""System checks: bad settings are explained at start-up (``manage.py check``)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks


def check_director_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    messages: list[checks.CheckMessage] = []
    if settings.DIRECTOR_DEFAULT_RESPONSE not in ("cache", "origin"):
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
    return messages


def check_deployment(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Only with ``manage.py check --deploy``: a laptop needs no secret key."""
    if settings.SECRET_KEY == settings.INSECURE_DEFAULT_SECRET_KEY:
        return [
            checks.Warning(
                "DJANGO_SECRET_KEY is not set: admin sessions are signed with a public key.",
                hint="Set DJANGO_SECRET_KEY to a long random value in production.",
                id="director.W001",
            )
        ]
    return []


def register() -> None:
    checks.register(check_director_settings, "director")
    checks.register(check_deployment, "director", deploy=True)
