"""Per-process background work, started by each entry point that serves requests.

``manage.py serve`` and gunicorn.conf.py (``post_worker_init``) call
``start_background()``; library code never starts greenlets on import. What follows the
settings, here and in every process, is listed in ``director.ops.followers``.
"""

from __future__ import annotations

import gc
import time

from django.conf import settings

from director import presence, registry
from director.federation import external
from director.ops import directors, followers, healthtests, registrypolls, watcher
from director.serving.loopmonitor import monitor
from director.serving.shedding import shedder
from director.serving.traffic import PoolCounts, sampler, traffic


def start_background(serving_url: str = "") -> None:
    """Build the snapshot now, follow the registry and its settings, watch the loop lag,
    run the health tests when this process holds their lease, poll the external registry
    when there is one (idempotent)."""
    followers.follow_while_serving()
    # What is alive now (modules, Django, the first snapshot) lives as long as the
    # process: frozen, a full collection no longer walks it. Unfrozen, each one held the
    # loop 60-130 ms with a 1,000-server registry (bench registry-scale).
    gc.freeze()
    watcher.start_watcher(
        settings.DIRECTOR_REGISTRY_POLL_INTERVAL,
        settings.DIRECTOR_REGISTRY_FULL_SYNC_INTERVAL,
        settings.DIRECTOR_DB_REQUEST_TIMEOUT,
    )
    monitor.start()
    sampler.start(sample_traffic)
    url = settings.DIRECTOR_EXTERNAL_URL or serving_url
    healthtests.start(settings.DIRECTOR_NAME, url)
    if external.configured():  # the poller waits for the registry's URL if need be
        registrypolls.start(settings.DIRECTOR_REGISTRY_QUERY_INTERVAL)
    if url:  # where others reach this director: its own ad in the shared registry
        directors.start(
            settings.DIRECTOR_NAME,
            url,
            settings.DIRECTOR_SELF_AD_INTERVAL,
            settings.DIRECTOR_DB_REQUEST_TIMEOUT,
        )


def sample_traffic() -> None:
    """One sample of this process's numbers into the console's rings."""
    pools = [
        PoolCounts(state.key, state.outcomes, state.cached_outcomes, state.latency_sum, state.heads)
        for state in presence.engine.states()
    ]
    servers = list(registry.current().servers)
    traffic.sample(time.time(), pools, sum(shedder.shed_total.values()), monitor.lag, servers)


def stop_background() -> None:
    if watcher.watcher is not None:
        watcher.watcher.stop()
    monitor.stop()
    sampler.stop()
    if healthtests.tester is not None:
        healthtests.tester.stop()
    if directors.advertiser is not None:
        directors.advertiser.stop()
    registrypolls.stop()
