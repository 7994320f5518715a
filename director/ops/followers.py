"""Who follows the registry's settings: the one place that says how a change of the
``DirectorSettings`` row (or of the servers) reaches what depends on it.

A settings change, like every registry change, ends in a new routing snapshot installed
in each process (``registry.registry_changed``, then the watcher's sync). From there:

1. **Followers**, registered below: called after each install with the snapshot and the
   keys of the servers a delta changed (None after a full build), because they keep
   state of their own that must be rebuilt:

   - in every process (``DirectorConfig.ready``: the serving ones, commands and tests):
     the stat engine (``presence.follow_snapshot``): its tuning and its server pools;
   - in processes that serve requests (``runtime.start_background``): the load shedder
     (``shed_queue_target``, ``shed_queue_interval``, ``redirect_timeout`` as a request's
     deadline), which only a serving process's WSGI server feeds.

2. **Pulls**, read from ``registry.current().settings`` where they are used, and meant to
   stay pulls: each use wants the settings of that moment and costs one attribute read,
   with nothing to rebuild. Routing and redirects (sort method, working set, cache
   presence, ``redirect_timeout``), the front door's and the health verdict's
   ``max_inflight_requests`` (middleware, api, console), the health tests' interval and
   timeout (read each tick), the ads' status time constant, the registry's own start-up
   grace and status weights.

3. **Read once, at start**: Django settings from the environment, which do not change
   while the process runs: the watcher's intervals, the self-ad's interval and the
   database deadline (``runtime.start_background``), the database budget's limit
   (``DIRECTOR_DB_MAX_INFLIGHT``, ``FrontDoorMiddleware``). ``serve`` sizes its
   connection pool from ``max_inflight_requests`` at start: a pool's size is fixed when
   it is made, so a new limit there needs a restart.

The loop monitor and the traffic sampler follow nothing: their ticks are constants.
"""

from __future__ import annotations

from collections.abc import Callable

from director import presence, registry
from director.serving.shedding import shedder
from director.snapshot import ServerKey, Snapshot

Follower = Callable[[Snapshot, frozenset[ServerKey] | None], None]


def follow_shedding_settings(snapshot: Snapshot, changed: frozenset[ServerKey] | None) -> None:
    values = snapshot.settings
    shedder.configure(values.shed_queue_target, values.shed_queue_interval, values.redirect_timeout)


IN_EVERY_PROCESS: tuple[Follower, ...] = (presence.follow_snapshot,)
WHILE_SERVING: tuple[Follower, ...] = (follow_shedding_settings,)


def follow_in_every_process() -> None:
    """Register the followers every process has (from ``DirectorConfig.ready``, before any
    snapshot is built: the first one reaches them)."""
    for follower in IN_EVERY_PROCESS:
        registry.on_rebuild(follower)


def follow_while_serving() -> None:
    """Register the serving process's followers (from ``runtime.start_background``). The
    snapshot may be installed already (``serve`` reads it to size its pool), so they get
    the current one now, built if need be."""
    snapshot = registry.current()
    for follower in WHILE_SERVING:
        follower(snapshot, None)
        registry.on_rebuild(follower)
