"""The local demo federation of ``make run`` and the small HTTP object server it (and the
tests and benchmarks) run as origins and caches."""
