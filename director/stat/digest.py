"""The ``Digest`` header of a HEAD answer (RFC 3230), one spelling for every server.

The IANA registry spells the 32-bit checksums (``crc32c``, ``crc32``, ``adler32``) as 8
hex digits, which our demo servers send; XRootD sends ``crc32c`` in base64 instead
(``crc32c=EC3JDw==``, xrootd#2456), and Pelican's client accepts both. The stat engine
reports them the same way, as 8 lowercase hex digits, so that the same object has the
same checksum whichever server was asked. Other algorithms (``md5``, ``sha``, ...) are
base64 by the RFC and are kept as sent, and so is a value that is neither spelling.
"""

from __future__ import annotations

import base64
import binascii
import re

CHECKSUMS_32_BIT = frozenset({"crc32c", "crc32", "adler32"})
_HEX_32 = re.compile(r"[0-9A-Fa-f]{1,8}")
# 4 bytes in base64: 6 characters of data and "==" (what Pelican's client recognises).
_BASE64_32 = re.compile(r"[A-Za-z0-9+/]{6}==")


def checksum_32_bit(value: str) -> str | None:
    """8 lowercase hex digits for a hex or base64 spelling of a 32-bit value, else None."""
    if _BASE64_32.fullmatch(value):
        try:
            return base64.b64decode(value, validate=True).hex()
        except binascii.Error:  # pragma: no cover: the pattern admits only valid base64
            return None
    if _HEX_32.fullmatch(value):
        return value.lower().rjust(8, "0")
    return None


def normalise_digest(header: str) -> str:
    """``header`` with every 32-bit checksum in hex: "crc32c=EC3JDw==" -> "crc32c=102dc90f".

    Entries are comma-separated ``algorithm=value``; algorithm names are lowercased, empty
    entries dropped, the others kept in order and joined with ",".
    """
    entries = []
    for entry in header.split(","):
        algorithm, equals, value = entry.strip().partition("=")
        if not equals:
            if algorithm:
                entries.append(algorithm)
            continue
        algorithm = algorithm.strip().lower()
        value = value.strip()
        if algorithm in CHECKSUMS_32_BIT:
            value = checksum_32_bit(value) or value
        entries.append(f"{algorithm}={value}")
    return ",".join(entries)
