"""Outlier ejection per server, after Envoy's defaults (reference: reliability-anchors 1.1).

1. Count consecutive server faults: timeouts that ran the full stat timeout, transport
   errors and 5xx. Any other answer resets the count.
2. At ``threshold`` consecutive faults the server is ejected for
   ``base x (times ejected)``, at most ``max_time`` seconds. While ejected it costs no
   slot: its outcome is ``ejected`` at once.
3. When the time is up the server is half-open: one probe at a time is let through. A
   success clears the count and the ejection multiplier; a fault ejects it again, longer.
   Answers to stats sent before the ejection (stragglers) change nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class EjectionPolicy:
    threshold: int
    base_time: float
    max_time: float


class OutlierDetector:
    def __init__(self, policy: EjectionPolicy, clock: Callable[[], float]) -> None:
        self.policy = policy
        self._clock = clock
        self.consecutive_failures = 0
        self.times_ejected = 0
        self.ejected_until = 0.0
        self.probe_in_flight = False

    @property
    def ejected(self) -> bool:
        """Ejected now (the half-open state, after the time is up, is not ejected)."""
        return self.ejected_until > self._clock()

    @property
    def half_open(self) -> bool:
        return self.times_ejected > 0 and not self.ejected

    def admit(self) -> tuple[bool, bool]:
        """(may a stat go out?, is it the half-open probe?)"""
        if self.ejected:
            return False, False
        if self.half_open:
            if self.probe_in_flight:
                return False, False
            self.probe_in_flight = True
            return True, True
        return True, False

    def record(self, fault: bool, probe: bool) -> None:
        """Take one verdict. Once a server has been ejected, only its half-open probe
        decides: answers from stats sent before the ejection are stragglers."""
        if probe:
            self.probe_in_flight = False
            if fault:
                self.consecutive_failures += 1
                self._eject()
            else:
                self.consecutive_failures = 0
                self.times_ejected = 0
                self.ejected_until = 0.0
            return
        if self.times_ejected:
            return
        if not fault:
            self.consecutive_failures = 0
            return
        self.consecutive_failures += 1
        if self.consecutive_failures >= self.policy.threshold:
            self._eject()

    def _eject(self) -> None:
        self.times_ejected += 1
        duration = min(self.policy.base_time * self.times_ejected, self.policy.max_time)
        self.ejected_until = self._clock() + duration

    def abandon_probe(self) -> None:
        """The probe ended without a verdict (cut short by a request's deadline)."""
        self.probe_in_flight = False
