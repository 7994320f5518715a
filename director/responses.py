"""Django responses in the Pelican wire format.

``PelicanResponse`` can carry the same header on several lines (one
``X-Pelican-Authorization`` per issuer): Django's header dict holds one value per name,
so the extra lines are appended in ``items()``, which is what the WSGI handler sends.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from django.http import HttpResponse

from director import __version__
from director.snapshot import ServerKey
from director.wire.documents import error_body, json_bytes
from director.wire.errors import Refusal
from director.wire.headers import CORS_HEADERS
from director.wire.types import ServerKind

SERVER_HEADER = f"pelican/{__version__}"
JSON_CONTENT_TYPE = "application/json; charset=utf-8"


_SERVER_STORE = {"server": ("Server", SERVER_HEADER)}
_CORS_STORE = _SERVER_STORE | {name.lower(): (name, value) for name, value in CORS_HEADERS}


class PelicanResponse(HttpResponse):
    # What the front door counts (director.serving.traffic): the kind of server a redirect
    # answer sends clients to, and its first server's (kind, name).
    destination: ServerKind | None = None
    first_server: ServerKey | None = None

    def __init__(
        self,
        content: bytes = b"",
        *,
        status: int,
        header_lines: Sequence[tuple[str, str]] = (),
        content_type: str | None = None,
        cors: bool = True,
    ) -> None:
        super().__init__(content, status=status, content_type=content_type)
        if content_type is None and not content:
            del self.headers["Content-Type"]
        self.repeated_lines: list[tuple[str, str]] = []
        # The constant headers go straight into Django's header store: they are known to
        # be valid, and checking them again on every redirect cost ~10 us (bench/NOTES.md).
        self.headers._store.update(_CORS_STORE if cors else _SERVER_STORE)
        for name, value in header_lines:
            if name in self.headers and name not in ("Server",):
                # Checked as Django checks the first line of a header (no CR/LF, Latin-1).
                self.repeated_lines.append(
                    (name, self.headers._convert_to_charset(value, "latin-1", mime_encode=True))
                )
            else:
                self.headers[name] = value

    def items(self) -> Iterator[tuple[str, str]]:
        # Straight from the store: the generic Mapping.items() is slow per header.
        yield from self.headers._store.values()
        yield from self.repeated_lines


def error_response(
    status: int,
    message: str,
    *,
    header_lines: Sequence[tuple[str, str]] = (),
    cors: bool = True,
) -> PelicanResponse:
    """``{"status":"error","msg":...}``, the body of every director error."""
    return PelicanResponse(
        error_body(message),
        status=status,
        header_lines=header_lines,
        content_type=JSON_CONTENT_TYPE,
        cors=cors,
    )


def refusal_response(refusal: Refusal) -> PelicanResponse:
    """The one mapping of a ``Refusal`` to HTTP: its status and its JSON body."""
    return PelicanResponse(
        json_bytes(refusal.body()),
        status=refusal.status,
        header_lines=refusal.header_lines,
        content_type=JSON_CONTENT_TYPE,
        cors=False,
    )
