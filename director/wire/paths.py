"""Request-path normalisation, done once at the edge.

Go's ``path.Clean`` semantics (Pelican cleans every object path), plus the checks our
director adds: a path that escapes the root with "..", holds a NUL or control character,
or is longer than 4 KiB is refused with 400 and never redirected.
"""

from __future__ import annotations

from urllib.parse import quote

MAX_PATH_BYTES = 4096


class PathError(ValueError):
    """The request path cannot be served; the message is shown to the client."""


def clean_path(raw: str) -> str:
    """Return the cleaned absolute path, or raise PathError.

    1. Refuse paths over 4 KiB (UTF-8), and NUL or other control characters.
    2. Split on "/", drop empty and "." segments, resolve ".." against the segments so far;
       a ".." with nothing left to remove escapes the root and is refused.
    3. Join with a leading "/" and no trailing "/" (as Go's path.Clean does).
    """
    if len(raw.encode("utf-8", "surrogatepass")) > MAX_PATH_BYTES:
        raise PathError(f"Request path is longer than {MAX_PATH_BYTES} bytes")
    for char in raw:
        if char < " " or char == "\x7f":
            raise PathError("Request path contains a NUL or control character")
    segments: list[str] = []
    for segment in raw.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if not segments:
                raise PathError("Request path escapes the root with '..'")
            segments.pop()
            continue
        segments.append(segment)
    return "/" + "/".join(segments)


def path_depth(path: str, namespace: str) -> int:
    """Path components left after removing the namespace prefix (Link ``depth``)."""
    if namespace in ("", "/"):
        rest = path
    elif path == namespace:
        return 0
    elif path.startswith(namespace + "/"):
        rest = path[len(namespace) :]
    else:
        return 0
    return len([segment for segment in rest.split("/") if segment])


def go_path_escape(path: str) -> str:
    """Escape a path as Go's ``url.URL.EscapedPath`` does (only '?' among the reserved)."""
    return quote(path, safe="$&+,/:;=@")
