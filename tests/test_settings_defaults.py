"""The director's settings have one source of defaults: ``snapshot.DirectorSettings``."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from django.db.migrations.loader import MigrationLoader

from director import presence
from director.models import StatSettings
from director.snapshot import DEFAULT_SETTINGS, DirectorSettings
from director.wire.types import SortMethod

README = Path(__file__).resolve().parent.parent / "README.md"
SETTING_NAMES = [item.name for item in dataclasses.fields(DirectorSettings)]
MODEL_ONLY_FIELDS = {"id", "updated_at"}


def test_the_settings_row_has_exactly_the_fields_of_the_dataclass() -> None:
    model_fields = {field.name for field in StatSettings._meta.concrete_fields}
    assert model_fields - MODEL_ONLY_FIELDS == set(SETTING_NAMES)


@pytest.mark.parametrize("name", SETTING_NAMES)
def test_a_fresh_settings_row_has_the_dataclass_default(name: str) -> None:
    assert getattr(StatSettings(), name) == getattr(DEFAULT_SETTINGS, name)


@pytest.mark.parametrize("name", SETTING_NAMES)
def test_the_migrations_give_the_column_the_dataclass_default(name: str) -> None:
    """The model derives its defaults from the dataclass, so the row agrees by
    construction; the migrated schema is what a database really has."""
    state = MigrationLoader(None, ignore_no_migrations=True).project_state()
    migrated = state.models["director", "statsettings"].get_field(name)
    assert migrated.default == getattr(DEFAULT_SETTINGS, name)


def test_an_unsaved_row_turns_into_the_default_settings() -> None:
    assert StatSettings().as_settings() == DEFAULT_SETTINGS
    assert isinstance(StatSettings().as_settings().sort_method, SortMethod)


@pytest.mark.django_db
def test_without_a_stored_row_the_current_settings_are_the_defaults() -> None:
    assert StatSettings.current() == DEFAULT_SETTINGS


@pytest.mark.django_db
def test_a_stored_row_is_read_back_field_by_field() -> None:
    row = StatSettings.load()
    row.stat_timeout = 1.25
    row.sort_method = SortMethod.ADAPTIVE
    row.save()
    assert StatSettings.current() == dataclasses.replace(
        DEFAULT_SETTINGS, stat_timeout=1.25, sort_method=SortMethod.ADAPTIVE
    )


def test_a_redirect_deadline_that_cuts_every_stat_short_is_refused(db):
    row = StatSettings.load()
    row.stat_timeout, row.redirect_timeout = 2.0, 2.05

    with pytest.raises(ValidationError, match="hung server would never be ejected"):
        row.full_clean()


def test_the_stat_engine_config_is_derived_from_the_settings() -> None:
    changed = dataclasses.replace(
        DEFAULT_SETTINGS,
        stat_timeout=1.5,
        stat_concurrency_limit=7,
        stat_max_wait=0.25,
        stat_max_waiters=3,
        cache_presence_ttl=9.0,
        cache_presence_capacity=11,
        ejection_consecutive_failures=2,
        ejection_base_time=4.0,
        ejection_max_time=8.0,
    )
    config = presence.stat_config(changed)
    assert dataclasses.astuple(config) == (1.5, 7, 0.25, 3, 9.0, 11, 2, 4.0, 8.0)
    policy = config.ejection_policy()
    assert (policy.threshold, policy.base_time, policy.max_time) == (2, 4.0, 8.0)


def _readme_settings_table() -> dict[str, str]:
    """{field: default as written} from the README's "Settings stored in the database" table.

    A row may name several fields ("`a` / `b`") with as many defaults ("1 / 2").
    """
    text = README.read_text()
    start = text.index("Settings stored in the database")
    table: dict[str, str] = {}
    for line in text[start:].splitlines()[2:]:
        if not line.startswith("|"):
            if table:
                break
            continue
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        names = re.findall(r"`(\w+)`", cells[0])
        defaults = [value.strip() for value in cells[1].split(" / ")]
        if not names or cells[0].startswith("---"):
            continue
        assert len(names) == len(defaults), f"README row {line!r}: names and defaults differ"
        table.update(zip(names, defaults, strict=True))
    return table


def _documented_value(written: str, like: object) -> object:
    """The README's text for a default, read as a value of the default's type."""
    if isinstance(like, bool):
        assert written in ("on", "off"), written
        return written == "on"
    if isinstance(like, SortMethod):
        return SortMethod(written.strip("`"))
    number = written.removesuffix(" s")  # durations are written with their unit
    return type(like)(number)


def test_the_readme_documents_every_setting_with_its_default() -> None:
    documented = _readme_settings_table()
    assert set(documented) == set(SETTING_NAMES)
    for name in SETTING_NAMES:
        default = getattr(DEFAULT_SETTINGS, name)
        assert _documented_value(documented[name], default) == default, name


def test_every_environment_variable_read_by_the_settings_is_in_the_readme() -> None:
    """Each ``env_*("NAME", default)`` of director_project/settings.py has a row (or a
    mention) in the README."""
    source = (README.parent / "director_project" / "settings.py").read_text()
    names = set(re.findall(r'env_\w+\(\s*"([A-Z_]+)"', source))
    assert "DIRECTOR_CONSOLE_PUBLIC" in names
    text = README.read_text()
    missing = sorted(name for name in names if f"`{name}`" not in text)
    assert missing == []
