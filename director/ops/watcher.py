"""The registry watcher: the greenlet in each serving process that follows the shared
registry (``director.registry``) by polling its generation counter, and rebuilds in full
now and then as a consistency check."""

from __future__ import annotations

import logging
import time

import gevent
from django.db import close_old_connections, connection

from director import registry
from director.serving import database
from director.serving.supervisor import SupervisedLoop

logger = logging.getLogger(__name__)


class RegistryWatcher:
    """Owner of the greenlet that follows the shared generation counter.

    One per process. Its loop does one small query per interval and a rebuild when the
    generation moved; a failing database is logged and retried, never fatal.
    """

    def __init__(self, interval: float, full_interval: float, timeout: float = 10.0) -> None:
        self.interval = interval
        self.full_interval = full_interval
        self.timeout = timeout
        self._last_full = time.monotonic()
        self._loop = SupervisedLoop("director-registry-watcher", logger, stop_seconds=5.0)

    @property
    def running(self) -> bool:
        return self._loop.running

    def start(self) -> None:
        self._loop.start(self._run)

    def stop(self) -> None:
        self._loop.stop()

    def check_once(self) -> bool:
        """Sync with the registry (in full when the consistency check is due); True when
        a new snapshot was installed."""
        try:
            before = registry.installed()
            if time.monotonic() - self._last_full >= self.full_interval:
                self._last_full = time.monotonic()
                registry.rebuild()
            else:
                registry.sync()
            return registry.installed() is not before
        finally:
            # Each check runs in this greenlet's own connection: close it so that no
            # connection (or SQLite read lock) is held between polls.
            close_old_connections()
            connection.close()

    def _run(self) -> None:
        while True:
            self.check_bounded()
            gevent.sleep(self.interval)

    def check_bounded(self) -> None:
        """One check in a greenlet of its own, waited for at most the database deadline:
        a database that is down or hung is reported (health says degraded, since when)
        while redirects go on from the last snapshot; one check at a time, so a hung one
        is waited out before the next, and the first success clears the report."""
        check = gevent.spawn(self.check_once)
        check.join(self.timeout)
        if not check.ready():
            database.health.failed(f"the registry watcher got no answer within {self.timeout:g} s")
            check.join()
        if check.exception is not None:
            error = check.exception
            if database.is_database_error(error):
                database.health.failed(f"{type(error).__name__}: {error}".strip())
            logger.error("registry watcher: could not read the registry (%r); retrying", error)
            return
        if check.successful():
            database.health.recovered()


watcher: RegistryWatcher | None = None


def start_watcher(interval: float, full_interval: float, timeout: float) -> RegistryWatcher:
    global watcher
    if watcher is None:
        watcher = RegistryWatcher(interval, full_interval, timeout)
    watcher.start()
    return watcher
