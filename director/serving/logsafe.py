"""Log lines a client cannot forge, and that hold no client's token.

Ads, paths and headers reach log messages (a server name, a refused prefix). A CR or LF
in one would start a line of the attacker's choosing; here every control character of a
message is written escaped, so that one record is one line. Tracebacks keep their lines:
they are appended after the message, from our own frames.

A client may send its bearer token in the query (Pelican's ``authz``, RFC 6750's
``access_token``): an advertise token at ``getFedToken``, a reader's token on a
redirect. Logs are kept longer and read by more people than tokens live, so every line
the director writes about a request (the access log of ``manage.py serve`` and of
gunicorn, the server's error lines, log messages) has those values replaced by
``REDACTED``; the rest of the line is unchanged.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

# Query parameters whose value is a token, matched without regard to case.
TOKEN_PARAMETERS = ("authz", "access_token", "authorization")
REDACTED = "REDACTED"
# A parameter at the start of a query string or after ``?``/``&`` (a request line, a
# URL), its value up to the next parameter or blank.
_TOKEN_VALUE = re.compile(r"(^|[?&])(" + "|".join(TOKEN_PARAMETERS) + r")=[^&\s]+", re.IGNORECASE)
# The WSGI environ entries that hold the query (gunicorn's access log atoms read these).
URL_ENVIRON_KEYS = ("QUERY_STRING", "RAW_URI", "REQUEST_URI", "HTTP_REFERER")

# C0 controls (tab kept), DEL, C1 controls, and Unicode's line and paragraph separators.
_CONTROLS = [*range(0x00, 0x09), *range(0x0A, 0x20), 0x7F, *range(0x80, 0xA0), 0x2028, 0x2029]
_ESCAPES = {code: f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" for code in _CONTROLS}
_ESCAPES |= {0x0A: "\\n", 0x0D: "\\r"}


def escape_controls(text: str) -> str:
    """``text`` with every control character written as its escape (``\\n``, ``\\x1b``)."""
    return text.translate(_ESCAPES)


def redact_tokens(text: str) -> str:
    """``text`` (a request line, a URL, a query string, a message naming one) with the
    value of every TOKEN_PARAMETERS parameter written ``REDACTED``."""
    if "=" not in text:
        return text
    return _TOKEN_VALUE.sub(rf"\1\2={REDACTED}", text)


def redacted_environ(environ: Mapping[str, Any]) -> Mapping[str, Any]:
    """``environ`` itself when none of its URLs holds a token, else a copy whose URLs are
    redacted (the request is over: only a log line reads it)."""
    changed = {
        key: redacted
        for key in URL_ENVIRON_KEYS
        if isinstance(value := environ.get(key), str)
        and (redacted := redact_tokens(value)) != value
    }
    return {**environ, **changed} if changed else environ


class EscapingFormatter(logging.Formatter):
    """A Formatter whose message part is always one line, without a query's token
    (LOGGING in the settings)."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (logging's name)
        record.message = redact_tokens(escape_controls(record.message))
        return super().formatMessage(record)
