"""``DirectorSettings``: the director's tunable parameters, frozen, with every setting's
default, bounds and help written once (``setting``); ``DEFAULT_SETTINGS`` and
``SETTING_FIELDS`` read from it.

Plain Python, no Django; a ``Snapshot`` carries the settings of its generation.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import TypeVar

from director.wire.types import (
    SortMethod,
)

_T = TypeVar("_T")


def setting(
    default: _T, help_text: str = "", *, minimum: float | None = None, maximum: float | None = None
) -> _T:
    """A settings field: its default, its bounds and its help, written once.

    (A ``dataclasses.Field`` at run time; typed as its default, as ``field()`` itself is.)
    """
    metadata = {"help_text": help_text, "minimum": minimum, "maximum": maximum}
    return field(default=default, metadata=metadata)


@dataclass(frozen=True, slots=True)
class DirectorSettings:
    """The director's tunable parameters, frozen: the one place their defaults, bounds
    and help texts are written.

    The defaults are Pelican's (``Director.*``, reference section 5) where Pelican has the
    parameter, and ours for the bounds it lacks. The ``StatSettings`` model derives its
    fields from these (``director.models``), the stat engine's ``StatConfig`` is derived
    from them (``director.presence.stat_config``), and the README's settings table is
    checked against them by the tests.
    """

    stat_timeout: float = setting(2.0, "Seconds one HEAD may take.", minimum=0.01)
    stat_concurrency_limit: int = setting(100, "HEADs in flight per server.", minimum=1)
    stat_max_wait: float = setting(
        0.1,
        "Seconds a stat may wait for a free slot before the server counts as saturated.",
        minimum=0.0,
    )
    stat_max_waiters: int = setting(
        10, "Stats that may wait for a slot per server; beyond: saturated at once."
    )
    redirect_timeout: float = setting(
        2.5, "Hard deadline of a redirect request, in seconds.", minimum=0.01
    )
    cache_presence_ttl: float = setting(60.0, "Seconds a stat answer is kept.", minimum=0.0)
    cache_presence_capacity: int = setting(2000, "Stat answers kept per server.", minimum=1)
    check_origin_presence: bool = setting(True)
    check_cache_presence: bool = setting(True)
    assume_presence_at_single_origin: bool = setting(True)
    max_stat_responses: int = setting(
        1, "The redirect returns once this many servers answered present.", minimum=1
    )
    sort_method: SortMethod = setting(SortMethod.DISTANCE)
    startup_grace: float = setting(
        300.0,
        "Seconds after start during which an unknown path gets 429 instead of 404; 0 disables.",
        minimum=0.0,
    )
    filter_caches_in_error_state: bool = setting(
        True, "Leave caches whose status is critical or shutting down out of redirects."
    )
    ejection_consecutive_failures: int = setting(
        5, "Consecutive timeouts, errors or 5xx that eject a server.", minimum=1
    )
    ejection_base_time: float = setting(
        30.0, "Seconds of the first ejection; multiplied by the times ejected.", minimum=0.0
    )
    ejection_max_time: float = setting(
        300.0, "Upper bound of one ejection, in seconds.", minimum=0.0
    )
    adaptive_working_set: int = setting(
        6,
        "Adaptive sort: the nearest servers that are statted and sampled (at least 3).",
        minimum=3,
    )
    status_ewma_time_constant: float = setting(
        300.0, "Seconds: time constant of the status weight's moving average.", minimum=1.0
    )
    health_test_interval: float = setting(
        15.0,
        "Seconds between director health tests of one server; 0 turns them off.",
        minimum=0.0,
    )
    health_test_timeout: float = setting(
        10.0, "Deadline of one whole health test (all its requests).", minimum=0.1
    )
    health_failure_grace: float = setting(
        60.0,
        "Seconds of failing health tests before the server's weight is lowered.",
        minimum=0.0,
    )
    health_failure_weight: float = setting(
        0.1,
        "Factor on the status weight of a server failing its health tests.",
        minimum=0.0,
        maximum=1.0,
    )
    max_inflight_requests: int = setting(
        1000,
        "Requests one process serves at once; beyond that it answers 429 with Retry-After: 1.",
        minimum=1,
    )
    shed_queue_target: float = setting(
        0.015,
        "Seconds a request may wait to be read (its queueing delay, from the kernel) "
        "while the process is congested; beyond it the request gets 429 at once. "
        "0 turns shedding off.",
        minimum=0.0,
    )
    shed_queue_interval: float = setting(
        0.05,
        "Seconds that requests must keep waiting longer than shed_queue_target before "
        "the process counts as congested (and without any for congestion to end).",
        minimum=0.01,
    )


DEFAULT_SETTINGS = DirectorSettings()
SETTING_FIELDS = {item.name: item for item in fields(DirectorSettings)}
