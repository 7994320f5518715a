"""Builders shared by the tests (fixtures stay in conftest.py)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from director.presence import stat_config as stat_config_for
from director.snapshot import DEFAULT_SETTINGS
from director.stat import StatConfig


def stat_config(**overrides: Any) -> StatConfig:
    """The stat engine's configuration under the default settings, with ``overrides``."""
    return replace(stat_config_for(DEFAULT_SETTINGS), **overrides)
