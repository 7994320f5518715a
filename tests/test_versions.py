from __future__ import annotations

import pytest

from director.wire.versions import (
    MIN_ADVERTISE_VERSIONS,
    MIN_REDIRECT_VERSIONS,
    parse_user_agent,
    supports_feature,
    user_agent_problem,
    user_agent_version,
    version_core,
)


@pytest.mark.parametrize(
    "user_agent",
    [
        "pelican-client/7.0.0",
        "pelican-client/7.0.1",
        "pelican-client/7.22.3",
        "pelican-client/10.0.0",
        "pelican-origin/7.9.0",
        "pelican-origin/7.10.0",
        "pelican-origin/8.0.0",
        "pelican-cache/7.8.2",
        "pelican-cache/7.8.10",
        "pelican-cache/7.9.0",
    ],
)
def test_recent_enough_pelican_user_agents_are_accepted(user_agent):
    assert user_agent_problem(user_agent, MIN_REDIRECT_VERSIONS) == ""


@pytest.mark.parametrize(
    ("user_agent", "problem"),
    [
        ("pelican-client/6.9.9", "The client version 6.9.9 is older than 7.0.0"),
        ("pelican-client/0.0.1", "The client version 0.0.1 is older than 7.0.0"),
        ("pelican-origin/7.8.9", "The origin version 7.8.9 is older than 7.9.0"),
        ("pelican-cache/7.8.1", "The cache version 7.8.1 is older than 7.8.2"),
        ("pelican-cache/6.99.99", "The cache version 6.99.99 is older than 7.8.2"),
    ],
)
def test_old_pelican_user_agents_are_refused(user_agent, problem):
    assert user_agent_problem(user_agent, MIN_REDIRECT_VERSIONS) == problem


def test_another_pelican_service_is_refused():
    assert user_agent_problem("pelican-director/7.1.0", MIN_REDIRECT_VERSIONS) == (
        "Unsupported service 'director' in User-Agent 'pelican-director/7.1.0'"
    )


def test_a_client_may_not_advertise():
    assert user_agent_problem("pelican-client/7.20.0", MIN_ADVERTISE_VERSIONS) == (
        "Unsupported service 'client' in User-Agent 'pelican-client/7.20.0'"
    )


@pytest.mark.parametrize(
    "user_agent",
    [
        "",
        "curl/8.5.0",
        "Mozilla/5.0 (X11; Linux x86_64)",
        "pelican-client/6.0.0 project/htcondor",
        "pelican-client/6.0.0-rc.1",
        "pelican-client/6.0",
        "pelican-client/v6.0.0",
        "pelican-client2/1.0.0",
        "xpelican-client/1.0.0",
        "pelican-client/6.0.0 ",
    ],
)
def test_unparseable_user_agents_skip_the_check(user_agent):
    assert parse_user_agent(user_agent) is None
    assert user_agent_problem(user_agent, MIN_REDIRECT_VERSIONS) == ""


def test_a_user_agent_over_50_characters_skips_the_check():
    user_agent = "pelican-client/" + "0" * 31 + "6.0.0"  # 51 characters, version 6.0.0
    assert len(user_agent) == 51
    assert user_agent_problem(user_agent, MIN_REDIRECT_VERSIONS) == ""


def test_a_user_agent_of_exactly_50_characters_is_checked():
    user_agent = "pelican-client/" + "0" * 30 + "6.0.0"
    assert len(user_agent) == 50
    assert user_agent_problem(user_agent, MIN_REDIRECT_VERSIONS) == (
        "The client version 6.0.0 is older than 7.0.0"
    )


def test_a_long_unknown_service_name_is_not_rejected():
    user_agent = "pelican-" + "x" * 40 + "/1.0.0"
    assert len(user_agent) > 50
    assert user_agent_problem(user_agent, MIN_REDIRECT_VERSIONS) == ""


def test_parse_user_agent_returns_service_and_numeric_version():
    assert parse_user_agent("pelican-origin/7.10.3") == ("origin", (7, 10, 3))


def test_user_agent_version_is_the_dotted_version_or_empty():
    assert user_agent_version("pelican-cache/7.08.2") == "7.8.2"
    assert user_agent_version("curl/8.5.0") == ""


# -- server features (Pelican's features package) ----------------------------------------------
@pytest.mark.parametrize(
    ("version", "core"),
    [
        ("v7.16.0", (7, 16, 0)),
        ("7.16", (7, 16)),
        ("v7.10-rc.0", (7, 10)),
        ("7.16.0+build.5", (7, 16, 0)),
        ("7.16rc1", (7, 16)),
        ("", None),
        ("unknown", None),
        ("invalid_version", None),
    ],
)
def test_a_version_reads_as_go_version_reads_it(version, core):
    assert version_core(version) == core


@pytest.mark.parametrize(
    ("kind", "version", "supported"),
    [
        ("cache", "v7.16.0", True),
        ("cache", "v7.16.0-rc.1", True),  # a release candidate counts as its release
        ("cache", "7.16", True),
        ("cache", "v7.20.1", True),
        ("cache", "v7.15.999", False),
        ("cache", "7.0", False),
        ("cache", "", None),
        ("cache", "unknown", None),
        ("origin", "v7.16.0", True),
        ("registry", "v7.16.0", None),
    ],
)
def test_cache_authz_is_in_pelican_7_16_and_later(kind, version, supported):
    assert supports_feature("CacheAuthz", kind, version) is supported


def test_a_feature_this_director_does_not_know_cannot_be_told():
    assert supports_feature("TimeTravel", "cache", "v9.0.0") is None
