from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from director.wire import validation as namespace_validation
from director.wire.paths import MAX_PATH_BYTES, PathError, clean_path, path_depth
from director.wire.validation import namespace_path_checks, namespace_path_problem


@pytest.mark.parametrize(
    ("raw", "cleaned"),
    [
        ("/", "/"),
        ("", "/"),
        ("/foo/bar.txt", "/foo/bar.txt"),
        ("foo/bar", "/foo/bar"),
        ("//foo///bar//", "/foo/bar"),
        ("/foo/bar/", "/foo/bar"),
        ("/./foo/./bar/.", "/foo/bar"),
        ("/foo/../bar", "/bar"),
        ("/foo/bar/..", "/foo"),
        ("/foo/bar/../..", "/"),
        ("/a/b/c/../../d", "/a/d"),
        ("/foo/.../bar", "/foo/.../bar"),
        ("/foo/..bar/.baz", "/foo/..bar/.baz"),
        ("/a b/é/ü?x", "/a b/é/ü?x"),
    ],
)
def test_clean_path_follows_go_path_clean(raw, cleaned):
    assert clean_path(raw) == cleaned


@pytest.mark.parametrize("raw", ["/..", "..", "/../etc/passwd", "/foo/../..", "/a/b/../../../c"])
def test_dot_dot_that_escapes_the_root_is_refused(raw):
    with pytest.raises(PathError, match=r"^Request path escapes the root with '\.\.'$"):
        clean_path(raw)


@pytest.mark.parametrize(
    "raw", ["/foo\x00bar", "/foo\nbar", "/foo\rbar", "/foo\tbar", "/\x1f", "/foo\x7f"]
)
def test_nul_and_control_characters_are_refused(raw):
    with pytest.raises(PathError, match=r"^Request path contains a NUL or control character$"):
        clean_path(raw)


def test_path_error_is_a_value_error_so_callers_can_map_it_to_400():
    assert issubclass(PathError, ValueError)


def test_a_path_of_exactly_4096_bytes_is_accepted():
    raw = "/" + "a" * (MAX_PATH_BYTES - 1)
    assert MAX_PATH_BYTES == 4096
    assert clean_path(raw) == raw


def test_a_path_one_byte_over_4096_is_refused():
    with pytest.raises(PathError, match=r"^Request path is longer than 4096 bytes$"):
        clean_path("/" + "a" * MAX_PATH_BYTES)


def test_the_length_limit_counts_utf8_bytes_not_characters():
    raw = "/" + "é" * 2048  # 2049 characters, 4097 bytes
    assert len(raw) < MAX_PATH_BYTES
    with pytest.raises(PathError, match="longer than 4096 bytes"):
        clean_path(raw)


@pytest.mark.parametrize(
    ("path", "namespace", "depth"),
    [
        ("/ospool/ap40/data/u/f.txt", "/ospool/ap40", 3),
        ("/ospool/ap40/f.txt", "/ospool/ap40", 1),
        ("/ospool/ap40", "/ospool/ap40", 0),
        ("/a/b", "/", 2),
        ("/", "/", 0),
        ("/a/b/c", "", 3),
        ("/ospool/ap400/f.txt", "/ospool/ap40", 0),
        ("/other/f.txt", "/ospool/ap40", 0),
    ],
)
def test_path_depth_counts_components_left_after_the_namespace(path, namespace, depth):
    assert path_depth(path, namespace) == depth


NAMESPACE_TEXT = st.text(alphabet=st.sampled_from("/.,; a-~%\x00\x1f\x7fé\t"), max_size=12)


@given(NAMESPACE_TEXT)
@settings(max_examples=2000, deadline=None)
def test_the_namespace_fast_path_accepts_nothing_the_checks_refuse(path):
    if namespace_path_problem(path) == "":
        assert namespace_path_checks(path) == ""
    else:
        assert namespace_path_checks(path) == namespace_path_problem(path)


@pytest.mark.parametrize("path", ["/", "/a", "/a/b.c/..d", "/a-b_c~/%41", "/x/.../y"])
def test_plain_namespaces_take_the_fast_path(path):
    assert namespace_validation._PLAIN_NAMESPACE.fullmatch(path)
    assert namespace_path_checks(path) == ""


PATH_TEXT = st.lists(st.sampled_from(["/", ".", "..", "a", "é", "%2e", " ", "\x00"])).map("".join)


@given(st.one_of(PATH_TEXT, st.text(max_size=300)))
@settings(max_examples=1000, deadline=None)
def test_clean_path_stays_under_the_root_and_is_idempotent(raw):
    try:
        cleaned = clean_path(raw)
    except PathError:
        return
    segments = cleaned.split("/")[1:] if cleaned != "/" else []
    assert cleaned.startswith("/")
    assert not {"", ".", ".."} & set(segments)
    assert clean_path(cleaned) == cleaned
    # what is left of the path is the raw path's own segments, in order
    kept = [segment for segment in raw.split("/") if segment not in ("", ".")]
    assert all(segment in kept for segment in segments)
