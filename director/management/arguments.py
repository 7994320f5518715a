"""Argument checks shared by the diagnostics commands (exit status 2 on bad input)."""

from __future__ import annotations

from django.core.management.base import CommandError

from director.wire.paths import PathError, clean_path


def object_path(raw: str) -> str:
    """An absolute object path, cleaned as the redirect path cleans it."""
    if not raw.startswith("/"):
        raise CommandError(f"The path must start with '/': {raw!r}", returncode=2)
    try:
        return clean_path(raw)
    except PathError as error:
        raise CommandError(f"Bad path {raw!r}: {error}", returncode=2) from None
