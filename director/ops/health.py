"""The health verdict: unlike Pelican's, it reports the state of the stat path."""

from __future__ import annotations

import datetime as dt
import time

from director import presence
from director.federation import external, polls
from director.ops.metrics import INFLIGHT, live_greenlets
from director.serving import database
from director.serving.health import Health, RegistryHealth, Verdict
from director.serving.loopmonitor import monitor
from director.serving.shedding import shedder
from director.snapshot import server_labels
from director.wire.gotime import go_time

OVERLOAD_INFLIGHT_FRACTION = 0.9
OVERLOAD_LOOP_LAG = 1.0


def assess(max_inflight: int) -> Health:
    """1. overloaded (503) when this process cannot serve: in-flight above 90 % of the
    maximum, the loop lagging more than 1 s, or new requests being shed; 2. degraded
    (200) when any server is saturated (recently) or ejected, the registry database is
    unreachable (redirects go on from the snapshot; registrations and the admin cannot),
    or the external registry's last call failed (``registry_reachability``);
    3. ok otherwise."""
    states = presence.engine.states()
    labels = server_labels(state.key for state in states)  # "name (kind)" when shared
    saturated = sorted(labels[state.key] for state in states if state.saturated_recently)
    ejected = sorted(labels[state.key] for state in states if state.ejected)
    inflight = INFLIGHT.count
    lag = monitor.lag
    reasons = []
    if inflight > OVERLOAD_INFLIGHT_FRACTION * max_inflight:
        reasons.append(f"{inflight} requests in flight, limit {max_inflight}")
    if lag > OVERLOAD_LOOP_LAG:
        reasons.append(f"event loop lag {lag:.3f} s")
    if shedder.shedding:
        reasons.append(
            f"shedding new requests: queueing delay above {shedder.target:g} s "
            f"for {shedder.interval:g} s"
        )
    unreachable = database.health.unreachable_since
    since = (
        go_time(dt.datetime.fromtimestamp(unreachable, dt.UTC)) if unreachable is not None else None
    )
    polled = registry_poll_reasons()
    registry, registry_reason = registry_reachability()
    if reasons:
        status = Verdict.OVERLOADED
    elif saturated or ejected or since is not None or polled or registry_reason:
        status = Verdict.DEGRADED
        reasons.extend(f"server {name} saturated" for name in saturated)
        reasons.extend(f"server {name} ejected" for name in ejected)
        if since is not None:
            reasons.append(
                f"registry database unreachable since {since} ({database.health.last_error})"
            )
        reasons.extend(polled)
        if registry_reason:
            reasons.append(registry_reason)
    else:
        status = Verdict.OK
    return Health(
        status=status,
        greenlets=live_greenlets(),
        inflight=inflight,
        max_inflight=max_inflight,
        loop_lag_seconds=round(lag, 6),
        saturated_servers=saturated,
        ejected_servers=ejected,
        reasons=reasons,
        database_unreachable_since=since,
        registry=registry,
    )


def registry_poll_reasons() -> list[str]:
    """Degraded reasons of the external registry's polled data: a dataset never polled
    after a failed attempt, or older than three query intervals (its age and last error);
    none while this process polls nothing (``director.federation.polls``)."""
    return polls.state.stale()


def registry_reachability() -> tuple[RegistryHealth | None, str]:
    """The external registry's reachability (None in this director's own registry mode)
    and, while its last call failed, the reason health gives: degraded, never
    overloaded (redirects go on; only new servers wait). Back to ok after the next
    answer. The client's times are monotonic: shown as wall-clock times."""
    if not external.configured():
        return None, ""
    client = external.registry_client()
    if client is None:
        why = external.discovery_error() or "the registry's URL is not known yet"
        return RegistryHealth(url="", reachable=False, last_error=why), f"registry unknown: {why}"
    status = client.status()
    at = None
    if status.last_error_at is not None:
        wall = time.time() - (time.monotonic() - status.last_error_at)
        at = go_time(dt.datetime.fromtimestamp(wall, dt.UTC))
    found = RegistryHealth(status.url, status.reachable, status.last_error, at)
    if status.reachable:
        return found, ""
    return found, f"registry {status.url} unreachable since {at} ({status.last_error})"
