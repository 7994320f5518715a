from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from director.snapshot import (
    DirectorSettings,
    DowntimeWindow,
    Entry,
    NamespaceView,
    ServerView,
    Snapshot,
    prefix_key,
)
from director.wire.types import Capability, ServerKind, ServerStatus

NOW = 1_700_000_000.0
PUBLIC = Capability.PUBLIC_READS | Capability.READS


def server(name: str, kind: ServerKind = ServerKind.ORIGIN, **fields) -> ServerView:
    return ServerView(
        name=name, kind=kind, url=f"https://{name}.example.org", capabilities=PUBLIC, **fields
    )


def namespace(path: str) -> NamespaceView:
    return NamespaceView(path=path, capabilities=PUBLIC)


def build(*servers: tuple[ServerView, list[str]]) -> Snapshot:
    return Snapshot.build(
        7,
        DirectorSettings(),
        [(srv, [namespace(path) for path in paths]) for srv, paths in servers],
    )


def names(entries: tuple[Entry, ...]) -> list[str]:
    return [entry.server.name for entry in entries]


# build


def test_build_keys_namespaces_with_one_trailing_slash():
    snapshot = build((server("o"), ["/foo", "/foo/bar", "/"]))
    assert sorted(snapshot.by_prefix) == ["/", "/foo/", "/foo/bar/"]


def test_build_puts_origins_before_caches_each_in_name_order():
    snapshot = build(
        (server("c-cache", ServerKind.CACHE), ["/ns"]),
        (server("b-origin"), ["/ns"]),
        (server("a-cache", ServerKind.CACHE), ["/ns"]),
        (server("z-origin"), ["/ns"]),
    )
    assert names(snapshot.by_prefix["/ns/"]) == ["b-origin", "z-origin", "a-cache", "c-cache"]


def test_build_keeps_servers_namespaces_generation_and_settings():
    settings = DirectorSettings(sort_method="random")
    origin = server("o")
    ns = namespace("/ns")
    snapshot = Snapshot.build(3, settings, [(origin, [ns])])
    assert snapshot.generation == 3
    assert snapshot.settings is settings
    assert snapshot.servers == {("origin", "o"): origin}
    assert snapshot.namespaces_by_server == {("origin", "o"): (ns,)}
    assert snapshot.by_prefix == {"/ns/": (Entry(origin, ns),)}


def test_a_server_without_namespaces_is_known_but_matches_nothing():
    snapshot = build((server("o"), []))
    assert list(snapshot.servers) == [("origin", "o")]
    assert snapshot.longest_match("/anything", NOW) == ("", ())


def test_prefix_key_always_ends_with_exactly_one_slash():
    assert prefix_key("/foo") == "/foo/"
    assert prefix_key("/foo/") == "/foo/"
    assert prefix_key("/") == "/"


def test_an_empty_snapshot_matches_nothing():
    assert Snapshot().longest_match("/foo", NOW) == ("", ())


# longest_match: the trailing-slash rule


def test_a_namespace_matches_its_own_path():
    snapshot = build((server("o"), ["/foo"]))
    path, entries = snapshot.longest_match("/foo", NOW)
    assert (path, names(entries)) == ("/foo", ["o"])


def test_a_namespace_matches_paths_below_it():
    snapshot = build((server("o"), ["/foo"]))
    path, entries = snapshot.longest_match("/foo/x/y.txt", NOW)
    assert (path, names(entries)) == ("/foo", ["o"])


def test_a_namespace_never_matches_a_sibling_sharing_its_prefix():
    snapshot = build((server("o"), ["/foo"]))
    assert snapshot.longest_match("/foobar", NOW) == ("", ())
    assert snapshot.longest_match("/foobar/x", NOW) == ("", ())


def test_a_namespace_does_not_match_its_parent():
    snapshot = build((server("o"), ["/foo/bar"]))
    assert snapshot.longest_match("/foo", NOW) == ("", ())


def test_the_root_namespace_matches_everything():
    snapshot = build((server("o"), ["/"]))
    path, entries = snapshot.longest_match("/any/deep/path", NOW)
    assert (path, names(entries)) == ("/", ["o"])
    assert snapshot.longest_match("/", NOW)[0] == "/"


# longest_match: longest prefix wins across origins and caches


def test_the_longest_prefix_wins():
    snapshot = build((server("short"), ["/foo"]), (server("long"), ["/foo/bar"]))
    path, entries = snapshot.longest_match("/foo/bar/baz", NOW)
    assert (path, names(entries)) == ("/foo/bar", ["long"])
    path, entries = snapshot.longest_match("/foo/baz", NOW)
    assert (path, names(entries)) == ("/foo", ["short"])


def test_a_cache_with_a_longer_prefix_hides_the_origins():
    snapshot = build(
        (server("origin"), ["/foo"]),
        (server("cache", ServerKind.CACHE), ["/foo/bar"]),
    )
    path, entries = snapshot.longest_match("/foo/bar/x", NOW)
    assert (path, names(entries)) == ("/foo/bar", ["cache"])


def test_origins_and_caches_at_the_same_prefix_match_together():
    snapshot = build(
        (server("cache", ServerKind.CACHE), ["/foo"]),
        (server("origin"), ["/foo"]),
        (server("other"), ["/other"]),
    )
    path, entries = snapshot.longest_match("/foo/x", NOW)
    assert (path, names(entries)) == ("/foo", ["origin", "cache"])


def test_one_server_can_match_at_its_own_longest_namespace():
    snapshot = build((server("o"), ["/foo", "/foo/bar"]))
    assert snapshot.longest_match("/foo/bar/x", NOW)[0] == "/foo/bar"
    assert snapshot.longest_match("/foo/other", NOW)[0] == "/foo"


# longest_match: unroutable servers


def test_an_expired_server_is_skipped_and_a_shorter_namespace_matches():
    snapshot = build(
        (server("short"), ["/foo"]),
        (server("expired", expires_at=NOW - 1), ["/foo/bar"]),
    )
    path, entries = snapshot.longest_match("/foo/bar/x", NOW)
    assert (path, names(entries)) == ("/foo", ["short"])


def test_a_server_expiring_exactly_now_is_expired():
    snapshot = build((server("o", expires_at=NOW), ["/foo"]))
    assert snapshot.longest_match("/foo", NOW) == ("", ())


def test_a_server_expiring_later_is_routable():
    snapshot = build((server("o", expires_at=NOW + 1), ["/foo"]))
    assert names(snapshot.longest_match("/foo", NOW)[1]) == ["o"]


def test_a_shutting_down_server_is_skipped():
    snapshot = build(
        (server("short"), ["/foo"]),
        (server("leaving", status=ServerStatus.SHUTTING_DOWN), ["/foo/bar"]),
    )
    path, entries = snapshot.longest_match("/foo/bar/x", NOW)
    assert (path, names(entries)) == ("/foo", ["short"])


def test_critical_and_degraded_servers_still_match():
    snapshot = build(
        (server("sick", status=ServerStatus.CRITICAL), ["/foo"]),
        (server("meh", status=ServerStatus.DEGRADED), ["/foo"]),
    )
    assert names(snapshot.longest_match("/foo", NOW)[1]) == ["meh", "sick"]


def test_a_server_in_downtime_is_skipped_and_a_shorter_namespace_matches():
    downtime = (DowntimeWindow(start=NOW - 60, end=NOW + 60),)
    snapshot = build(
        (server("short"), ["/foo"]),
        (server("down", downtimes=downtime), ["/foo/bar"]),
    )
    path, entries = snapshot.longest_match("/foo/bar/x", NOW)
    assert (path, names(entries)) == ("/foo", ["short"])


def test_an_unroutable_server_leaves_its_routable_peers_at_the_same_prefix():
    snapshot = build(
        (server("a-expired", expires_at=NOW - 1), ["/foo"]),
        (server("b-live"), ["/foo"]),
    )
    assert snapshot.longest_match("/foo/x", NOW) == (
        "/foo",
        (Entry(snapshot.server("b-live"), namespace("/foo")),),
    )


def test_nothing_matches_when_every_server_is_unroutable():
    snapshot = build((server("o", status=ServerStatus.SHUTTING_DOWN), ["/foo"]))
    assert snapshot.longest_match("/foo/x", NOW) == ("", ())


# longest_match: kind filter


def test_the_kind_filter_restricts_the_match_to_origins():
    snapshot = build(
        (server("origin"), ["/foo"]),
        (server("cache", ServerKind.CACHE), ["/foo/bar"]),
    )
    path, entries = snapshot.longest_match("/foo/bar/x", NOW, ServerKind.ORIGIN)
    assert (path, names(entries)) == ("/foo", ["origin"])


def test_the_kind_filter_restricts_the_match_to_caches():
    snapshot = build(
        (server("origin"), ["/foo/bar"]),
        (server("cache", ServerKind.CACHE), ["/foo"]),
    )
    path, entries = snapshot.longest_match("/foo/bar/x", NOW, ServerKind.CACHE)
    assert (path, names(entries)) == ("/foo", ["cache"])
    assert snapshot.longest_match("/other", NOW, ServerKind.CACHE) == ("", ())


# Routability predicates


def test_downtime_window_boundaries_are_inclusive():
    window = DowntimeWindow(start=100.0, end=200.0)
    assert [window.active(t) for t in (99.0, 100.0, 150.0, 200.0, 201.0)] == [
        False,
        True,
        True,
        True,
        False,
    ]


def test_an_indefinite_downtime_is_active_from_its_start_onwards():
    window = DowntimeWindow(start=100.0, end=None)
    assert (window.active(99.0), window.active(100.0), window.active(1e12)) == (
        False,
        True,
        True,
    )


def test_a_past_or_future_downtime_does_not_stop_routing():
    past = DowntimeWindow(start=NOW - 200, end=NOW - 100)
    future = DowntimeWindow(start=NOW + 100, end=None)
    assert server("o", downtimes=(past, future)).routable(NOW) is True


def test_a_server_defined_in_the_admin_never_expires():
    assert server("o", expires_at=None).routable(1e15) is True


def test_namespace_requires_a_token_unless_public_reads():
    assert NamespaceView("/p", Capability.PUBLIC_READS).require_token is False
    assert NamespaceView("/p", Capability.READS | Capability.LISTINGS).require_token is True


# apply: a change's delta


def test_apply_replaces_one_server_and_leaves_the_others_untouched():
    base = build(
        (server("o-1"), ["/a", "/b"]),
        (server("o-2"), ["/a"]),
        (server("c-1", ServerKind.CACHE), ["/a"]),
    )
    moved = server("o-1", auth_url="https://moved.example.org")
    after = base.apply(8, [(moved, [namespace("/b"), namespace("/c")])])

    assert after.generation == 8
    assert after.server("o-1") is moved
    assert after.server("o-2") is base.server("o-2")
    assert names(after.by_prefix["/a/"]) == ["o-2", "c-1"]
    assert names(after.by_prefix["/c/"]) == ["o-1"]
    assert after.by_prefix["/b/"][0].server is moved
    # The base is immutable: requests holding it see it whole.
    assert names(base.by_prefix["/a/"]) == ["o-1", "o-2", "c-1"]
    assert "/c/" not in base.by_prefix


def test_apply_removes_a_server_and_a_prefix_nobody_else_serves():
    base = build((server("o-1"), ["/a", "/only"]), (server("o-2"), ["/a"]))
    after = base.apply(8, removals=[("origin", "o-1")])
    assert set(after.servers) == {("origin", "o-2")}
    assert "/only/" not in after.by_prefix
    assert names(after.by_prefix["/a/"]) == ["o-2"]
    assert after.longest_match("/only/x", NOW) == ("", ())


def test_apply_keeps_the_routable_memo_of_untouched_prefixes_only():
    base = build((server("o-1"), ["/a"]), (server("o-2"), ["/b"]))
    base.longest_match("/a/x", NOW)
    base.longest_match("/b/x", NOW)
    after = base.apply(8, [(server("o-2", status=ServerStatus.SHUTTING_DOWN), [namespace("/b")])])
    assert set(after._live) == {"/a/"}
    assert after.longest_match("/b/x", NOW) == ("", ())


# "shared" is both an origin and a cache, as Pelican allows (each under its own prefix).
SERVER_KEYS = [
    ("origin", "o-1"),
    ("origin", "o-2"),
    ("origin", "shared"),
    ("cache", "shared"),
    ("cache", "c-1"),
]
PATHS = ["/", "/a", "/a/b", "/a/b/c", "/d", "/d/e"]


def _views(
    key: tuple[str, str], paths: list[str], version: int
) -> tuple[ServerView, list[NamespaceView]]:
    view = server(key[1], ServerKind(key[0]), version=str(version))
    return view, [namespace(path) for path in sorted(set(paths))]


@given(
    initial=st.dictionaries(st.sampled_from(SERVER_KEYS), st.lists(st.sampled_from(PATHS))),
    changes=st.lists(
        st.tuples(
            st.sampled_from(SERVER_KEYS),
            st.one_of(st.none(), st.lists(st.sampled_from(PATHS))),  # None: removed
        ),
        max_size=12,
    ),
)
@settings(max_examples=200, deadline=None)
def test_any_sequence_of_deltas_equals_a_build_of_the_result(initial, changes):
    current = {key: _views(key, paths, 0) for key, paths in initial.items()}
    snapshot = Snapshot.build(1, DirectorSettings(), current.values())
    for version, (key, paths) in enumerate(changes, start=1):
        if paths is None:
            current.pop(key, None)
            snapshot = snapshot.apply(version + 1, removals=[key])
        else:
            current[key] = _views(key, paths, version)
            snapshot = snapshot.apply(version + 1, [current[key]])
    rebuilt = Snapshot.build(snapshot.generation, DirectorSettings(), current.values())
    assert snapshot.servers == rebuilt.servers
    assert snapshot.namespaces_by_server == rebuilt.namespaces_by_server
    assert snapshot.by_prefix == rebuilt.by_prefix
    for path in ["/a/b/c/x", "/d/x", "/x"]:
        assert snapshot.longest_match(path, NOW) == rebuilt.longest_match(path, NOW)
