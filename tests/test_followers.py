"""What follows the settings (director.ops.followers): a saved settings row reaches the
stat engine in every process, and the load shedder once a process serves."""

from __future__ import annotations

import pytest
from helpers import configure_director

from director import presence, registry
from director.ops import followers
from director.serving.shedding import shedder


def test_the_stat_engine_follows_a_settings_change_in_every_process(db):
    configure_director(stat_timeout=1.25)
    assert presence.engine.config.stat_timeout == 1.25
    configure_director(stat_timeout=2.0)
    assert presence.engine.config.stat_timeout == 2.0


@pytest.fixture
def serving_followers(monkeypatch):
    """The shedder and the registry's listeners as they were before the test."""
    monkeypatch.setattr(registry, "_listeners", list(registry._listeners))
    for name in ("target", "interval", "deadline", "enabled", "congested", "run_since"):
        monkeypatch.setattr(shedder, name, getattr(shedder, name))


def test_a_serving_process_s_shedder_follows_the_settings_from_the_start(db, serving_followers):
    configure_director(shed_queue_target=0.025, shed_queue_interval=0.2, redirect_timeout=3.0)
    followers.follow_while_serving()  # the snapshot was built before: the shedder gets it now
    assert (shedder.target, shedder.interval, shedder.deadline) == (0.025, 0.2, 3.0)
    configure_director(shed_queue_target=0.0)
    assert not shedder.enabled
