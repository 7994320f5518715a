"""The console's numbers (director.serving.traffic): totals counted per answer, rings written
per sample, bounded memory. A clock is passed in: no test waits."""

from __future__ import annotations

from director.serving.traffic import (
    PROCESS_SLOTS,
    PROCESS_STEP,
    SERVER_SLOTS,
    Buckets,
    PoolCounts,
    Ring,
    Traffic,
    answer_class,
)

T0 = 1_000_000.0  # a multiple of 60 and of 10: slot boundaries fall on round numbers
CHICAGO = ("cache", "chicago")
MADISON = ("origin", "madison")
GONE = ("cache", "gone")
A = ("origin", "a")


def test_a_ring_keeps_its_slots_and_zeroes_the_ones_it_skips() -> None:
    ring = Ring(4, 10.0)
    ring.add(T0, 1)
    ring.add(T0 + 5, 2)  # same slot
    ring.add(T0 + 10, 5)
    assert ring.series(T0 + 10) == [0, 0, 3, 5]
    # 20 s of silence, then a write: the skipped slot reads 0, the oldest fell off.
    ring.add(T0 + 40, 7)
    assert ring.series(T0 + 40) == [5, 0, 0, 7]
    # Reading later moves the window on without writing.
    assert ring.series(T0 + 60) == [0, 7, 0, 0]
    assert ring.series(T0 + 1000) == [0, 0, 0, 0]


def test_a_ring_never_grows_and_a_clock_step_back_writes_the_newest_slot() -> None:
    ring = Ring(3, 1.0)
    for second in range(1000):
        ring.add(T0 + second, 1)
    assert len(ring.values) == 3
    ring.add(T0 + 500, 10)  # the clock went back
    assert ring.series(T0 + 999) == [1, 1, 11]


def test_a_ring_keeps_the_maximum_when_asked() -> None:
    ring = Ring(2, 10.0)
    for lag in (0.01, 0.3, 0.02):
        ring.put_max(T0, lag)
    assert ring.series(T0) == [0, 0.3]


def test_answer_classes() -> None:
    assert [answer_class(code) for code in (307, 200, 404, 429, 500, 503, 400, 405)] == [
        "redirect",
        "redirect",
        "404",
        "429",
        "5xx",
        "5xx",
        "other",
        "other",
    ]


def test_answers_are_counted_by_route_destination_and_status() -> None:
    traffic = Traffic()
    traffic.answered("object", 307, 0.002, "cache", CHICAGO)
    traffic.answered("object", 307, 0.003, "cache", CHICAGO)
    traffic.answered("origin", 404, 0.004, "origin")
    traffic.answered("object", 429, 0.0001)  # the front door: no destination given
    traffic.answered("admin", 200, 0.05)  # not a redirect route: a duration only
    assert traffic.answers == {
        ("object", "cache", 307): 2,
        ("origin", "origin", 404): 1,
        ("object", "cache", 429): 1,
    }
    assert traffic.server_redirects == {CHICAGO: 2}
    assert sum(traffic.durations["object"].counts) == 3
    assert traffic.durations["admin"].total == 0.05


def test_histogram_buckets_are_cumulative_with_inf_last() -> None:
    buckets = Buckets((0.01, 0.1))
    for value in (0.005, 0.01, 0.05, 3.0):
        buckets.observe(value)
    assert buckets.cumulative() == [("0.01", 2), ("0.1", 3), ("+Inf", 4)]
    assert buckets.total == 3.065


def test_a_sample_writes_differences_into_the_process_and_server_rings() -> None:
    traffic = Traffic()
    for _ in range(3):
        traffic.answered("object", 307, 0.001, "cache", CHICAGO)
    traffic.answered("origin", 404, 0.001, "origin")
    pool = PoolCounts(MADISON, {"present": 4, "timeout": 1}, {"present": 1}, 2.5, 4)
    traffic.sample(T0, [pool], shed_total=2, loop_lag=0.02, servers=[CHICAGO, MADISON])
    series = traffic.process_series(T0)
    assert len(series["answers_redirect"]) == PROCESS_SLOTS
    assert series["answers_redirect"][-1] == 3
    assert series["answers_404"][-1] == 1
    assert series["answers_429"][-1] == 2  # shed before the application
    assert series["stat_present"][-1] == 3  # fresh ones only: 1 of 4 was cached
    assert series["stat_failed"][-1] == 1
    assert series["loop_lag"][-1] == 0.02

    # The next sample writes only what happened since.
    traffic.answered("object", 307, 0.001, "cache", CHICAGO)
    pool = PoolCounts(MADISON, {"present": 5, "timeout": 1}, {"present": 1}, 3.0, 5)
    traffic.sample(T0 + PROCESS_STEP, [pool], 2, 0.0, [CHICAGO, MADISON])
    series = traffic.process_series(T0 + PROCESS_STEP)
    assert series["answers_redirect"][-2:] == [3, 1]
    assert series["answers_429"][-1] == 0
    assert series["stat_present"][-1] == 1

    madison = traffic.server_series(MADISON, T0 + PROCESS_STEP)
    assert madison is not None and len(madison["present"]) == SERVER_SLOTS
    assert madison["present"][-1] == 4  # both samples fell in one minute
    assert madison["heads"][-1] == 5 and madison["latency_sum"][-1] == 3.0
    chicago = traffic.server_series(CHICAGO, T0 + PROCESS_STEP)
    assert chicago is not None and chicago["redirects"][-1] == 4


def test_servers_that_leave_the_registry_leave_the_rings() -> None:
    traffic = Traffic()
    traffic.answered("object", 307, 0.001, "cache", GONE)
    traffic.sample(T0, [PoolCounts(GONE, {"present": 1}, {}, 0.1, 1)], 0, 0.0, [GONE])
    assert traffic.server_series(GONE, T0) is not None
    traffic.sample(T0 + PROCESS_STEP, [], 0, 0.0, [])
    assert traffic.server_series(GONE, T0 + PROCESS_STEP) is None
    assert GONE not in traffic.server_redirects


def test_a_pool_made_anew_does_not_count_backwards() -> None:
    traffic = Traffic()
    traffic.sample(T0, [PoolCounts(A, {"present": 10}, {}, 1.0, 10)], 0, 0.0, [A])
    traffic.sample(T0 + 60, [PoolCounts(A, {"present": 2}, {}, 0.2, 2)], 0, 0.0, [A])
    series = traffic.server_series(A, T0 + 60)
    assert series is not None
    assert series["present"][-2:] == [10, 0]
    assert min(series["heads"]) == 0


def test_an_origin_and_a_cache_sharing_a_name_are_counted_apart() -> None:
    traffic = Traffic()
    origin, cache = ("origin", "shared"), ("cache", "shared")
    traffic.answered("origin", 307, 0.001, "origin", origin)
    for _ in range(2):
        traffic.answered("object", 307, 0.001, "cache", cache)
    pools = [
        PoolCounts(origin, {"present": 1}, {}, 0.1, 1),
        PoolCounts(cache, {"absent": 3}, {}, 0.3, 3),
    ]
    traffic.sample(T0, pools, 0, 0.0, [origin, cache])
    assert traffic.server_redirects == {origin: 1, cache: 2}
    origin_series = traffic.server_series(origin, T0)
    cache_series = traffic.server_series(cache, T0)
    assert origin_series is not None and cache_series is not None
    assert (origin_series["redirects"][-1], origin_series["present"][-1]) == (1, 1)
    assert (cache_series["redirects"][-1], cache_series["absent"][-1]) == (2, 3)
    # The cache leaves the registry: the origin of the same name keeps its history.
    traffic.sample(T0 + PROCESS_STEP, pools[:1], 0, 0.0, [origin])
    assert traffic.server_series(cache, T0 + PROCESS_STEP) is None
    assert traffic.server_series(origin, T0 + PROCESS_STEP) is not None
    assert list(traffic.server_redirects) == [origin]
