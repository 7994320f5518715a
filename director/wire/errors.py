"""The one way a request is refused: services raise ``Refusal`` and the faces map it, in
one place each (``director_project.api`` for the API, ``director.responses`` for plain
views), to its JSON body. Handlers do not build error bodies.
"""

from __future__ import annotations

from director.wire.documents import error_json


class Refusal(Exception):
    """A request refused with an HTTP ``status`` and a ``message`` for the sender.

    The body is Pelican's error body, ``{"status":"error","msg":...}``; a refusal whose
    Pelican answer has another shape is a subclass that overrides ``body``.
    """

    def __init__(
        self, status: int, message: str, *, header_lines: tuple[tuple[str, str], ...] = ()
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.header_lines = header_lines  # e.g. Retry-After of a 429

    def body(self) -> dict[str, object]:
        return error_json(self.message)


class ApprovalRefusal(Refusal):
    """An advertisement refused for want of an administrator's approval.

    Pelican's client recognises it by its own body, ``{"approval_error":true,"error":...}``,
    which has neither ``status`` nor ``msg`` (``ApprovalErrorOut``).
    """

    def __init__(self, message: str) -> None:
        super().__init__(403, message)

    def body(self) -> dict[str, object]:
        return {"approval_error": True, "error": self.message}
