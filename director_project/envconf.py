"""Typed readers for environment variables, and the DATABASE_URL parser.

Settings come from the environment only. Each reader raises ImproperlyConfigured with
the variable's name when a value cannot be parsed, so a typo fails at start-up with a
message instead of silently taking a default.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str) -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean (use 1/0, true/false)")


def env_float(name: str, default: float, *, minimum: float | None = None) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a number") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name}={raw!r} must be at least {minimum}")
    return value


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not an integer") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name}={raw!r} must be at least {minimum}")
    return value


def env_list(name: str, default: list[str] | None = None) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return list(default or [])
    return [item.strip() for item in raw.split(",") if item.strip()]


def _postgres_options(
    query: list[tuple[str, str]], connect_timeout: float, statement_timeout: float, pool_size: int
) -> dict[str, object]:
    milliseconds = max(1, round(statement_timeout * 1000))
    server = (
        f"-c statement_timeout={milliseconds} -c lock_timeout={milliseconds} "
        f"-c idle_in_transaction_session_timeout={milliseconds * 2}"
    )
    options: dict[str, object] = {"connect_timeout": max(1, math.ceil(connect_timeout))}
    given = dict(query)
    if "options" in given:
        given["options"] = f"{server} {given['options']}"
    else:
        given["options"] = server
    options.update(given)
    # Connections are kept in a pool (psycopg_pool, through Django) instead of opened per
    # request: opening one cost ~8 ms of an ad's ~35 here. CONN_MAX_AGE stays 0, as
    # Django requires with a pool; an idle connection is closed after a minute.
    options["pool"] = {
        "min_size": 1,
        "max_size": pool_size,
        "timeout": connect_timeout,
        "max_idle": 60.0,
    }
    return options


def database_from_url(
    url: str,
    base_dir: Path,
    *,
    connect_timeout: float = 3.0,
    statement_timeout: float = 5.0,
    pool_size: int = 55,
) -> dict[str, object]:
    """Turn ``sqlite:///path`` or ``postgres://user:pw@host:port/name`` into a DATABASES entry.

    A relative SQLite path is taken relative to the repository root. Query parameters of a
    PostgreSQL URL (``sslmode=require``...) become connection options. PostgreSQL gets a
    ``connect_timeout`` and, on the server, ``statement_timeout``, ``lock_timeout`` and
    ``idle_in_transaction_session_timeout`` (seconds in, whole seconds/milliseconds out);
    an ``options`` parameter of the URL is kept after ours, so it may override them. Its
    connections come from a pool of at most ``pool_size`` per process.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    common: dict[str, object] = {"CONN_MAX_AGE": 0, "ATOMIC_REQUESTS": False}
    if scheme == "sqlite":
        raw_path = unquote(parts.path)
        if parts.netloc:  # sqlite://relative/path
            raw_path = parts.netloc + raw_path
        elif raw_path.startswith("/") and not raw_path.startswith("//"):
            # sqlite:///db.sqlite3 names a relative path, sqlite:////abs/db an absolute one.
            raw_path = raw_path[1:]
        elif raw_path.startswith("//"):
            raw_path = raw_path[1:]
        if not raw_path:
            raise ImproperlyConfigured(f"DATABASE_URL={url!r} names no SQLite file")
        path = Path(raw_path)
        if not path.is_absolute():
            path = base_dir / path
        return {
            **common,
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(path),
            # Wait for a writer instead of failing at once; the wait blocks the process
            # (a C sleep), so it is kept short and writes are kept out of hot paths.
            # WAL with synchronous=NORMAL: a commit writes the log without an fsync (one
            # per checkpoint), where the rollback journal's fsyncs held the event loop
            # ~2.5 ms per advertisement; readers and the writer no longer block each
            # other. A power loss may drop the last commits (ads come back every minute).
            "OPTIONS": {
                "timeout": 5,
                "transaction_mode": "IMMEDIATE",
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
        }
    if scheme in {"postgres", "postgresql", "pgsql"}:
        name = unquote(parts.path.lstrip("/"))
        if not name:
            raise ImproperlyConfigured(f"DATABASE_URL={url!r} names no database")
        return {
            **common,
            "ENGINE": "django.db.backends.postgresql",
            "NAME": name,
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            "HOST": parts.hostname or "",
            "PORT": str(parts.port or ""),
            "OPTIONS": _postgres_options(
                parse_qsl(parts.query), connect_timeout, statement_timeout, pool_size
            ),
        }
    raise ImproperlyConfigured(
        f"DATABASE_URL={url!r}: unsupported scheme {scheme!r} (use sqlite:/// or postgres://)"
    )
