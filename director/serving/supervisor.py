"""The owner of a long-lived background greenlet: the one way this process runs a loop
that lives as long as it does (the registry watcher, the loop monitor, the traffic
sampler, the health tests, the director's own ad, the demo's re-advertiser).

What supervision means here (STYLE.md 3): one greenlet per owner, started at most once,
named (``gevent.util.format_run_info`` lists it by that name), its death logged by its
owner's logger, and stopped within a bound. The loop's body (its interval, its
deadlines, what it does when one round fails) stays with the loop's owner.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import gevent

STOP_SECONDS = 2.0  # how long ``stop`` waits for the greenlet to end


class SupervisedLoop:
    """One named background greenlet: ``start`` it (again: nothing happens while it runs),
    ``stop`` it (waited for at most ``stop_seconds``), ask whether it is ``running``.

    A loop that dies of an exception is logged as ``"<label> died: <exception>"`` on
    ``logger`` and stays dead until the next ``start``: a loop that must survive a failed
    round catches it in its own body.
    """

    def __init__(
        self,
        name: str,
        logger: logging.Logger,
        label: str = "",
        stop_seconds: float = STOP_SECONDS,
    ) -> None:
        self.name = name
        self.label = label or name
        self.logger = logger
        self.stop_seconds = stop_seconds
        self._greenlet: gevent.Greenlet | None = None

    @property
    def running(self) -> bool:
        return self._greenlet is not None and not self._greenlet.dead

    def start(self, run: Callable[[], object]) -> None:
        """Spawn ``run`` unless this loop already runs (every entry point may call it)."""
        if self.running:
            return
        self._greenlet = gevent.spawn(run)
        self._greenlet.name = self.name
        self._greenlet.link_exception(self._died)

    def stop(self) -> None:
        """Kill the greenlet and wait for it at most ``stop_seconds`` (its ``finally``
        blocks run; one that outlives the wait is let go, not waited for)."""
        if self._greenlet is not None:
            self._greenlet.kill(timeout=self.stop_seconds)
            self._greenlet = None

    def _died(self, greenlet: gevent.Greenlet) -> None:
        self.logger.error("%s died: %r", self.label, greenlet.exception)
