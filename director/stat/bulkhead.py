"""The per-server bulkhead: at most ``limit`` stats in flight, a short, bounded wait.

A stat that finds every slot taken may wait, but only if fewer than ``max_waiters`` are
already waiting and never longer than it is told (``min(max wait, time left)``). This is
the piece whose absence caused Pelican #3495: there, the wait had no deadline.
"""

from __future__ import annotations

from collections import deque

from gevent.event import Event


class Ticket(Event):
    """A place in the waiting line; ``consumed`` once its owner has seen the outcome."""

    def __init__(self) -> None:
        super().__init__()
        self.consumed = False


class Bulkhead:
    def __init__(self, limit: int, max_waiters: int) -> None:
        self.limit = max(1, limit)
        self.max_waiters = max(0, max_waiters)
        self.active = 0
        self._waiters: deque[Ticket] = deque()

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    def resize(self, limit: int, max_waiters: int) -> None:
        """New limits take effect at once; a shrink drains as stats finish."""
        self.limit = max(1, limit)
        self.max_waiters = max(0, max_waiters)
        while self._waiters and self.active < self.limit:
            self.active += 1
            self._waiters.popleft().set()

    def try_acquire(self) -> bool:
        """Take a free slot without waiting."""
        if self.active < self.limit and not self._waiters:
            self.active += 1
            return True
        return False

    def enqueue(self) -> Ticket | None:
        """Take a place in the waiting line now (synchronously), or None if it is full.

        The place is taken in the caller's greenlet, before any waiting greenlet runs, so
        a burst can never put more than ``max_waiters`` in line.
        """
        if len(self._waiters) >= self.max_waiters:
            return None
        ticket = Ticket()
        self._waiters.append(ticket)
        return ticket

    def wait_turn(self, ticket: Ticket, timeout: float) -> bool:
        """Wait at most ``timeout`` for a slot handed to ``ticket``; False when none came.

        A slot is handed over directly by ``release`` (``active`` is not decremented), so
        a waiter that gives up at the very moment it is handed a slot passes it on.
        """
        granted = False
        try:
            if timeout > 0:
                ticket.wait(timeout)
            granted = bool(ticket.is_set())
            return granted
        finally:
            ticket.consumed = True
            if not granted:
                if ticket.is_set():  # handed a slot while leaving (killed or timed out)
                    self.release()
                else:
                    self._waiters.remove(ticket)

    def abandon(self, ticket: Ticket) -> None:
        """For a ticket whose owner never waited (its greenlet was killed before it ran):
        leave the line, or pass on a slot handed to it. Idempotent."""
        if ticket.consumed:
            return
        ticket.consumed = True
        if ticket.is_set():
            self.release()
        elif ticket in self._waiters:
            self._waiters.remove(ticket)

    def release(self) -> None:
        if self.active > self.limit or not self._waiters:
            self.active -= 1
            return
        self._waiters.popleft().set()  # the slot passes to the oldest waiter
