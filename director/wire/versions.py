"""User-Agent version gates (reference 1.4 step 2 and 1.6 step 2)."""

from __future__ import annotations

import re

from director.wire.types import ServerKind

# pelican-<letters>/<n>.<n>.<n>, nothing else: a suffix makes it unparseable.
_USER_AGENT = re.compile(r"pelican-([A-Za-z]+)/(\d+)\.(\d+)\.(\d+)")
MAX_USER_AGENT_LENGTH = 50

# By the service a User-Agent names: "client", or a server kind.
MIN_ADVERTISE_VERSIONS: dict[str, tuple[int, int, int]] = {
    ServerKind.ORIGIN: (7, 9, 0),
    ServerKind.CACHE: (7, 8, 2),
}
MIN_REDIRECT_VERSIONS: dict[str, tuple[int, int, int]] = {
    "client": (7, 0, 0),
    **MIN_ADVERTISE_VERSIONS,
}


def parse_user_agent(user_agent: str) -> tuple[str, tuple[int, int, int]] | None:
    """(service, version) when the User-Agent is exactly ``pelican-<svc>/<x.y.z>``."""
    if len(user_agent) > MAX_USER_AGENT_LENGTH:
        return None
    match = _USER_AGENT.fullmatch(user_agent)
    if match is None:
        return None
    return match.group(1), (int(match.group(2)), int(match.group(3)), int(match.group(4)))


def user_agent_problem(user_agent: str, minimums: dict[str, tuple[int, int, int]]) -> str:
    """A message when a recognised Pelican User-Agent is too old or of the wrong service."""
    parsed = parse_user_agent(user_agent)
    if parsed is None:
        return ""
    service, version = parsed
    minimum = minimums.get(service)
    if minimum is None:
        return f"Unsupported service {service!r} in User-Agent {user_agent!r}"
    if version < minimum:
        wanted = ".".join(map(str, minimum))
        return f"The {service} version {'.'.join(map(str, version))} is older than {wanted}"
    return ""


def user_agent_version(user_agent: str) -> str:
    parsed = parse_user_agent(user_agent)
    return ".".join(map(str, parsed[1])) if parsed else ""


# Pelican's server features (features/resources/feature-version-compatibility.yaml): the
# first Pelican version of each server kind that has it, and no upper bound.
FEATURE_MIN_VERSIONS: dict[str, dict[str, tuple[int, ...]]] = {
    "CacheAuthz": {ServerKind.ORIGIN: (7, 16), ServerKind.CACHE: (7, 16)},
}
# hashicorp/go-version's grammar (what Pelican parses an ad's version with): an optional
# "v", numeric segments, a pre-release and build metadata, which do not count.
_GO_VERSION = re.compile(
    r"v?(\d+(?:\.\d+)*?)"
    r"(?:-\d+[0-9A-Za-z\-~]*(?:\.[0-9A-Za-z\-~]+)*|-?[A-Za-z\-~]+[0-9A-Za-z\-~]*(?:\.[0-9A-Za-z\-~]+)*)?"
    r"(?:\+[0-9A-Za-z\-~]+(?:\.[0-9A-Za-z\-~]+)*)?"
)


def version_core(version: str) -> tuple[int, ...] | None:
    """The numeric segments of a Pelican version ("v7.16.0-rc.1" -> (7, 16, 0)), or None
    when Go's parser would not read it ("", "unknown")."""
    match = _GO_VERSION.fullmatch(version)
    return tuple(int(part) for part in match.group(1).split(".")) if match else None


def supports_feature(feature: str, kind: str, version: str) -> bool | None:
    """Whether a server of ``kind`` at ``version`` has ``feature`` (Pelican's
    ``ServerSupportsFeature``): None when that cannot be known (no or no readable
    version, an unknown feature or kind). A release candidate counts as its release."""
    minimum = FEATURE_MIN_VERSIONS.get(feature, {}).get(kind)
    core = version_core(version)
    if minimum is None or core is None:
        return None
    width = max(len(core), len(minimum))
    return core + (0,) * (width - len(core)) >= minimum + (0,) * (width - len(minimum))
