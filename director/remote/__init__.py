"""Clients of other services (STYLE.md 16), in plain Python: ``http`` (one bounded
request), ``cache`` (keyed TTL cache with single-flight and serve-stale, a polled value
with its age) and ``registry`` (Pelican's registry, as Pelican's director asks it).

Every outbound call has one total deadline, a size cap and a cache with a stated TTL;
none runs on the redirect path. No Django here: the services above wire these in.
"""
