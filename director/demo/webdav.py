"""What the demo file servers say about their objects, in the forms XRootD (the server
under Pelican's origins and caches) uses and Pelican clients read: single byte ranges
(RFC 9110 section 14) and WebDAV ``PROPFIND`` multistatus bodies (RFC 4918) with
``getcontentlength``, ``getlastmodified`` and ``resourcetype``.

pelicanfs reads these through aiowebdav2: ``ls``/``find``/``glob``/``du`` list a collection
(``Depth: 1``), ``info`` asks ``Depth: 1`` of an object, ``exists`` ``Depth: 0``, and
``isdir`` asks ``Depth: 0`` of ``<path>/``, which XRootD answers with 500 for an object.
"""

from __future__ import annotations

import email.utils
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import quote
from xml.sax.saxutils import escape


@dataclass(frozen=True)
class Resource:
    """An object or a collection as PROPFIND describes it."""

    path: str  # the namespace path, without a trailing slash ("/" for the root)
    size: int  # bytes; 0 for a collection
    modified: float  # seconds since the epoch
    collection: bool

    @property
    def href(self) -> str:
        """The percent-encoded path; a collection's ends with "/" (RFC 4918 8.3)."""
        encoded = quote(self.path)
        return encoded + "/" if self.collection and not encoded.endswith("/") else encoded


class RangeNotSatisfiable(Exception):
    """The range starts at or past the end of the object: 416."""


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The one range of a ``Range: bytes=...`` header as (first, last), both inclusive.

    None when there is no range to honour: no header, another unit, several ranges or a
    malformed one (the whole object is then served with 200, as RFC 9110 allows).
    RangeNotSatisfiable when it selects no byte of a ``size``-byte object.
    """
    if not header:
        return None
    unit, _, spec = header.strip().partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first_text, dash, last_text = spec.strip().partition("-")
    if not dash:
        return None
    try:
        if not first_text:  # "-N": the last N bytes
            suffix = int(last_text)
            if suffix <= 0 or size == 0:
                raise RangeNotSatisfiable
            return max(0, size - suffix), size - 1
        first = int(first_text)
        last = int(last_text) if last_text else None
    except ValueError:
        return None
    if first < 0 or (last is not None and last < first):
        return None
    if first >= size:
        raise RangeNotSatisfiable
    return first, size - 1 if last is None else min(last, size - 1)


def http_date(seconds: float) -> str:
    """RFC 1123 in GMT, as ``Last-Modified`` and ``getlastmodified`` carry it."""
    return email.utils.formatdate(seconds, usegmt=True)


def multistatus(resources: Iterable[Resource]) -> bytes:
    """A 207 body: one ``response`` per resource, the properties XRootD gives."""
    parts = ['<?xml version="1.0" encoding="utf-8"?>\n<D:multistatus xmlns:D="DAV:">']
    for resource in resources:
        kind = "<D:collection/>" if resource.collection else ""
        parts.append(
            f"<D:response><D:href>{escape(resource.href)}</D:href><D:propstat><D:prop>"
            f"<D:getcontentlength>{resource.size}</D:getcontentlength>"
            f"<D:getlastmodified>{http_date(resource.modified)}</D:getlastmodified>"
            f"<D:resourcetype>{kind}</D:resourcetype>"
            "</D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response>"
        )
    parts.append("</D:multistatus>\n")
    return "\n".join(parts).encode()
