"""The redirect decision: from a cleaned request to a ranked list of servers and headers.

Plain Python, no Django: ``director.views`` turns an HttpRequest into a ``RedirectRequest``
and a ``RedirectResult`` back into a response. Reference sections 1.3-1.5, 2 and 3.1-3.3.

Object presence ("stat") plugs in through one seam, ``Availability``: it receives the
ordered candidate servers, the path, the client's token and the request's deadline, and
answers per server. ``all_available`` is the check used when presence is not asked for.

The package, in the order ``decide`` uses it: ``types`` (the request, the result, the
availability seam), ``trace`` (why the answer came out as it did), ``candidates`` (which
servers may serve, and whether a stat is worth asking), ``ordering`` (sorting, the
adaptive working set), ``decision`` (``decide`` itself and the redirect's headers).
"""

from director.routing.decision import decide
from director.routing.trace import Trace
from director.routing.types import Availability, RedirectRequest, RedirectResult, all_available

__all__ = [
    "Availability",
    "RedirectRequest",
    "RedirectResult",
    "Trace",
    "all_available",
    "decide",
]
