"""DATABASE_URL to a DATABASES entry: paths, and PostgreSQL's timeouts and pool."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from director_project.envconf import database_from_url

BASE = Path("/srv/director")


def test_a_relative_sqlite_path_is_under_the_repository_in_wal_mode():
    entry = database_from_url("sqlite:///db.sqlite3", BASE)
    assert entry["NAME"] == "/srv/director/db.sqlite3"
    assert "journal_mode=WAL" in entry["OPTIONS"]["init_command"]
    assert entry["CONN_MAX_AGE"] == 0


def test_an_absolute_sqlite_path_is_kept():
    assert database_from_url("sqlite:////var/lib/d.db", BASE)["NAME"] == "/var/lib/d.db"


def test_postgres_gets_its_timeouts_and_a_bounded_pool():
    entry = database_from_url(
        "postgres://user:pw@db:6432/reg?sslmode=require",
        BASE,
        connect_timeout=2.5,
        statement_timeout=4.0,
        pool_size=12,
    )
    options = entry["OPTIONS"]
    assert (entry["HOST"], entry["PORT"], entry["NAME"], entry["USER"]) == (
        "db",
        "6432",
        "reg",
        "user",
    )
    assert options["connect_timeout"] == 3  # whole seconds, rounded up
    assert options["sslmode"] == "require"
    assert "-c statement_timeout=4000" in options["options"]
    assert "-c lock_timeout=4000" in options["options"]
    assert options["pool"]["max_size"] == 12
    assert entry["CONN_MAX_AGE"] == 0


def test_the_url_s_own_options_come_after_ours_so_they_win():
    entry = database_from_url("postgres://db/reg?options=-c%20statement_timeout%3D100", BASE)
    assert entry["OPTIONS"]["options"].endswith("-c statement_timeout=100")


@pytest.mark.parametrize("url", ["mysql://x/y", "postgres://db/", "sqlite://"])
def test_a_bad_url_names_itself(url):
    with pytest.raises(ImproperlyConfigured, match="DATABASE_URL="):
        database_from_url(url, BASE)
