"""Log lines a client cannot forge.

Ads, paths and headers reach log messages (a server name, a refused prefix). A CR or LF
in one would start a line of the attacker's choosing; here every control character of a
message is written escaped, so that one record is one line. Tracebacks keep their lines:
they are appended after the message, from our own frames.
"""

from __future__ import annotations

import logging

# C0 controls (tab kept), DEL, C1 controls, and Unicode's line and paragraph separators.
_CONTROLS = [*range(0x00, 0x09), *range(0x0A, 0x20), 0x7F, *range(0x80, 0xA0), 0x2028, 0x2029]
_ESCAPES = {code: f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" for code in _CONTROLS}
_ESCAPES |= {0x0A: "\\n", 0x0D: "\\r"}


def escape_controls(text: str) -> str:
    """``text`` with every control character written as its escape (``\\n``, ``\\x1b``)."""
    return text.translate(_ESCAPES)


class EscapingFormatter(logging.Formatter):
    """A Formatter whose message part is always one line (LOGGING in the settings)."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (logging's name)
        record.message = escape_controls(record.message)
        return super().formatMessage(record)
