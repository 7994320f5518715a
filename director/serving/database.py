"""The registry database as a dependency that may fail: its health, and a budget and a
deadline for the requests that need it.

Redirects never touch the database (they read the snapshot). Requests that do (the
registration API, director_ui's registry views, the admin) are served:

1. within their own in-flight budget (``DIRECTOR_DB_MAX_INFLIGHT``), apart from the
   redirects' one: a sick database can never cost a redirect a 429;
2. under a deadline, ``DIRECTOR_DB_REQUEST_TIMEOUT``: when it passes, the request's
   database connection is closed under it, so whatever waits on a hung server fails
   at once (a server-side statement timeout cannot fire on a frozen server), and the
   client gets 503 with Retry-After;
3. a database error (refused, timed out, locked) answers 503 with Retry-After too
   (``director.views.server_error``).

Every failure marks the database unreachable, so health says ``degraded`` and since
when; the registry watcher's next successful read clears it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import gevent
from django.db import DEFAULT_DB_ALIAS, InterfaceError, OperationalError, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import JSONField, Model
from django.http import HttpResponse

logger = logging.getLogger(__name__)

# What a database that is down, hung or locked raises through Django.
DATABASE_ERRORS = (OperationalError, InterfaceError)
RETRY_AFTER = "5"


@dataclass
class DatabaseHealth:
    """Whether the registry database answered lately (for health and metrics)."""

    unreachable_since: float | None = None  # wall clock
    last_error: str = ""

    def failed(self, why: str) -> None:
        if self.unreachable_since is None:
            self.unreachable_since = time.time()
            logger.warning("registry database unreachable: %s", why)
        self.last_error = why[:300]

    def recovered(self) -> None:
        if self.unreachable_since is not None:
            logger.info("registry database reachable again")
        self.unreachable_since = None
        self.last_error = ""


@dataclass
class DatabaseBudget:
    """Requests that hold (or wait on) the database now, and how many may."""

    limit: int
    inflight: int = 0


health = DatabaseHealth()
budget = DatabaseBudget(limit=50)


def is_database_error(error: BaseException) -> bool:
    return isinstance(error, DATABASE_ERRORS)


def serve_with_deadline(
    handler: Callable[[], HttpResponse],
    timeout: float,
    unavailable: Callable[[str], HttpResponse],
) -> HttpResponse:
    """``handler()`` within the budget and the deadline, or ``unavailable(message)``: a
    503 the caller renders."""
    if budget.inflight >= budget.limit:
        return unavailable(
            f"The director is serving its maximum of {budget.limit} requests that need the "
            "registry database; retry shortly."
        )
    budget.inflight += 1
    cut: list[bool] = []
    timer = gevent.get_hub().loop.timer(timeout)
    # Django's connections are per greenlet: this one is the request's.
    timer.start(_cut_off, connections[DEFAULT_DB_ALIAS], cut)
    try:
        response = handler()
    finally:
        timer.close()
        budget.inflight -= 1
    if cut:
        message = f"The registry database did not answer within {timeout:g} s; retry shortly."
        health.failed(message)
        return unavailable(message)
    return response


def _cut_off(wrapper: BaseDatabaseWrapper, cut: list[bool]) -> None:
    """At the deadline (in the event loop): close the request's connection, so that a
    wait on it ends with an error instead of lasting as long as the server hangs."""
    cut.append(True)
    raw = wrapper.connection
    if raw is None:
        return
    try:
        raw.close()
    except Exception:  # already broken: closing it is all that was wanted
        logger.debug("closing a timed-out database connection failed", exc_info=True)


def insert_rows(
    model: type[Model], columns: Sequence[str], rows: Sequence[Sequence[object]]
) -> None:
    """INSERT ``rows`` (values of ``columns``, attribute names) into ``model``'s table in
    one ``executemany``, without the ORM's per-value compilation.

    Values go to the driver as they are, except JSON columns, which each backend adapts in
    its own way. No defaults, signals or primary keys come back: for the hot write paths
    (an ad's namespaces) whose rows are complete.
    """
    if not rows:
        return
    connection = connections[DEFAULT_DB_ALIAS]
    fields = [model._meta.get_field(name) for name in columns]
    prepared: list[list[Any]] = [list(row) for row in rows]
    for index, field in enumerate(fields):
        if isinstance(field, JSONField):
            for values in prepared:
                values[index] = field.get_db_prep_save(values[index], connection)
    quote = connection.ops.quote_name
    names = ", ".join(quote(str(getattr(field, "column", ""))) for field in fields)
    placeholders = ", ".join(["%s"] * len(fields))
    with connection.cursor() as cursor:
        cursor.executemany(
            f"INSERT INTO {quote(model._meta.db_table)} ({names}) VALUES ({placeholders})",
            prepared,
        )
