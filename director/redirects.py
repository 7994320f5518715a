"""The redirect decision as a service: the one wiring of ``routing.decide`` shared by the
redirect views, ``manage.py explain`` and ``manage.py stat``, so that the three cannot
drift apart.

``new_request`` describes a request the same way for all three (clock, deadline, request
ID); ``decide`` runs it against a snapshot with the process's stat engine (or stat results
in hand) and the start-up grace, and returns a ``Decision``: the result, the trace of
why, and every stat result.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from director import presence, registry, routing
from director.geo import Coordinate, LocationSource
from director.selection import Presence
from director.snapshot import ServerKey, ServerView, Snapshot, server_labels
from director.stat import StatResult
from director.wire.documents import DebugCoordinate, DebugServer, debug_document

_rng = random.Random()


@dataclass
class Decision:
    request: routing.RedirectRequest
    result: routing.RedirectResult
    trace: routing.Trace
    stat_results: Mapping[ServerKey, StatResult] = field(default_factory=dict)

    def debug_document(self, snapshot: Snapshot, ip: str) -> dict[str, object]:
        """The ``X-Pelican-Debug: true`` body of this decision (``wire.documents``)."""
        trace = self.trace
        servers = []
        for key, weights in trace.weights.items():
            server = snapshot.servers[key]
            servers.append(
                DebugServer(
                    url=server.url,
                    coordinate=DebugCoordinate(
                        server.latitude or 0.0, server.longitude or 0.0, server.location_source
                    ),
                    distance=weights.distance,
                    io_load=weights.io_load,
                    status=weights.status,
                    availability=weights.availability,
                )
            )
        client = trace.client
        label = server_labels([*trace.chosen, *trace.excluded, *trace.presence])
        return debug_document(
            client=DebugCoordinate(client.latitude, client.longitude, client.source)
            if client
            else DebugCoordinate(0.0, 0.0, LocationSource.UNKNOWN),
            ip=ip,
            servers=servers,
            sort_method=trace.method,
            namespace=trace.namespace,
            order=[label[key] for key in trace.chosen],
            excluded={label[key]: reason for key, reason in trace.excluded.items()},
            stat={
                label[key]: (
                    self.stat_results[key].outcome.value
                    if key in self.stat_results
                    else verdict.value
                )
                for key, verdict in trace.presence.items()
            },
        )


# Seconds kept, at the end of a redirect's deadline, to compose and send the answer after
# the stats stop (measured: 1-5 ms; a request held to the full deadline by a hanging
# origin was answered 2.5046 s after it was sent, with a 2.5 s deadline).
ANSWER_RESERVE = 0.02


def new_request(
    snapshot: Snapshot,
    path: str,
    *,
    method: str = "GET",
    to_origin: bool = False,
    request_id: str = "",
    query: tuple[tuple[str, str], ...] = (),
    authorization: str = "",
    timeout_header: str = "",
    depth: str | None = None,
    user_agent: str = "",
    client: Coordinate | None = None,
    waited: float = 0.0,
) -> routing.RedirectRequest:
    """A request entering now, after ``waited`` seconds in the queue (the WSGI server's
    reading, from the kernel): its hard deadline (``redirect_timeout``) counts from when
    it arrived, less ANSWER_RESERVE for writing the answer once the stats are cut, so that
    a client waits no longer than the deadline, not the deadline plus its time in line."""
    return routing.RedirectRequest(
        method=method,
        path=path,
        to_origin=to_origin,
        request_id=request_id or str(uuid.uuid4()),
        now=time.time(),
        deadline=time.monotonic() - waited + snapshot.settings.redirect_timeout - ANSWER_RESERVE,
        query=query,
        authorization=authorization,
        timeout_header=timeout_header,
        depth=depth,
        user_agent=user_agent,
        client=client,
    )


class _KnownResults:
    """An ``Availability`` that answers from stat results already in hand."""

    def __init__(self, results: Mapping[ServerKey, StatResult]) -> None:
        self.results = results

    def __call__(self, servers: Sequence[ServerView], *_: object) -> dict[str, Presence]:
        return {
            server.name: presence.presence_of(server, self.results[server.key])
            for server in servers
            if server.key in self.results
        }


def decide(
    request: routing.RedirectRequest,
    snapshot: Snapshot,
    *,
    known_results: Mapping[ServerKey, StatResult] | None = None,
    startup_grace: bool | None = None,
    external_url: str | Callable[[], str] = "",
) -> Decision:
    """Route ``request`` on ``snapshot``.

    1. Availability: the process's stat engine, under the snapshot's settings; or, with
       ``known_results``, those results (``manage.py stat`` has just made them).
    2. Start-up grace: this process's, unless told (``explain`` runs in a fresh process,
       whose grace says nothing about the serving director's).
    3. ``routing.decide``, with a trace of every step.
    """
    trace = routing.Trace()
    if known_results is not None:
        availability: routing.Availability = _KnownResults(known_results)
        stat_results: Mapping[ServerKey, StatResult] = known_results
    else:
        engine_availability = presence.availability_for(snapshot)
        availability, stat_results = engine_availability, engine_availability.results
    if startup_grace is None:
        startup_grace = registry.startup_grace_active(snapshot, request.now)
    result = routing.decide(
        request,
        snapshot,
        availability=availability,
        startup_grace_active=startup_grace,
        external_url=external_url,
        rng=_rng,
        trace=trace,
    )
    return Decision(request, result, trace, stat_results)
