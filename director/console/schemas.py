"""The console's JSON (``/api/v1.0/console/...``): what its pages poll, what
``manage.py explain --director`` and ``statpools`` read. Our own shapes, camelCase as the
director's other JSON; built from ``director.console.rows`` and ``director.explain``."""

from __future__ import annotations

import datetime as dt

from pydantic import Field

from director.console.rows import COLOURS, ServerRow, detail_url
from director.explain import ExplanationOut
from director.schemas import GoTime, HealthOut, WireOut

Colour = str  # one of rows.COLOURS (documented in the field descriptions)


def _time(epoch: float | None) -> dt.datetime | None:
    return dt.datetime.fromtimestamp(epoch, dt.UTC) if epoch is not None else None


class WorkerOut(WireOut):
    """Which process answered: the numbers are this process's own (README, "Console")."""

    host: str
    pid: int
    startedAt: GoTime


class HealthTestOut(WireOut):
    result: str = Field(
        description="passed, failed, not run (its ad says directorTest: true), not yet, "
        "initializing"
    )
    checkedAt: GoTime | None
    message: str


class PoolStateOut(WireOut):
    """This process's stat pool of the server."""

    limit: int
    active: int
    waiting: int
    maxWaiters: int
    ejectedFor: float = Field(description="Seconds of ejection left (0: not ejected).")
    timesEjected: int
    consecutiveFailures: int
    cacheEntries: int
    outcomes: dict[str, int]


class ConsoleServerOut(WireOut):
    name: str
    kind: str
    source: str
    url: str
    version: str
    status: str = Field(description="The status its ad gives (ok, warning, ...).")
    statusWeight: float
    state: str = Field(description="routable, ejected, or why it takes no part in routing.")
    detail: str
    colour: Colour = Field(description=f"One of {', '.join(COLOURS)}.")
    routable: bool
    latitude: float | None
    longitude: float | None
    expiresAt: GoTime | None
    lastAdvertisedAt: GoTime | None
    healthTest: HealthTestOut
    pool: PoolStateOut | None
    adminUrl: str
    detailUrl: str

    @classmethod
    def from_row(cls, server: ServerRow) -> ConsoleServerOut:
        row, pool = server.row, server.pool
        return cls(
            name=row.name,
            kind=row.kind,
            source=row.source,
            url=row.data_url,
            version=row.version,
            status=row.status,
            statusWeight=round(server.weight, 6),
            state=server.state,
            detail=server.detail,
            colour=server.colour,
            routable=server.routable,
            latitude=server.latitude,
            longitude=server.longitude,
            expiresAt=_time(row.expires_at),
            lastAdvertisedAt=_time(row.last_advertised_at),
            healthTest=HealthTestOut(
                result=health_word(row.health_status, row.health_tests),
                checkedAt=_time(row.health_checked_at),
                message=row.health_message,
            ),
            pool=PoolStateOut(
                limit=pool.limit,
                active=pool.active,
                waiting=pool.waiting,
                maxWaiters=pool.max_waiters,
                ejectedFor=round(pool.ejected_for, 3),
                timesEjected=pool.times_ejected,
                consecutiveFailures=pool.consecutive_failures,
                cacheEntries=pool.cache_entries,
                outcomes=pool.outcomes,
            )
            if pool is not None
            else None,
            adminUrl=f"/admin/director/server/{row.pk}/change/",
            detailUrl=detail_url(row.key),
        )


def health_word(status: str, tests_run: bool) -> str:
    """One word per health-test state, none of them a double negative."""
    if not tests_run:
        return "not run"
    return {"OK": "passed", "Error": "failed", "Initializing": "initializing"}.get(
        status, "not yet"
    )


class ServersPageOut(WireOut):
    now: GoTime
    worker: WorkerOut
    total: int
    matched: int
    page: int
    pages: int
    sort: str
    servers: list[ConsoleServerOut]


class PoolsOut(WireOut):
    """Every server of the registry with its state and this process's stat pool."""

    now: GoTime
    worker: WorkerOut
    servers: list[ConsoleServerOut]


class CountsOut(WireOut):
    origins: int
    caches: int
    routableOrigins: int
    routableCaches: int
    namespaces: int
    ejected: int


class SeriesOut(WireOut):
    """Per second, one value per slot, oldest first, the last complete slot last."""

    slotSeconds: float
    answers: dict[str, list[float]] = Field(description="redirect, 404, 429, 5xx, other")
    stat: dict[str, list[float]] = Field(description="present, absent, failed, rejected")
    loopLag: list[float] = Field(description="The worst loop lag in each slot (seconds).")


class PolledDatasetOut(WireOut):
    """One dataset this process polls from the external registry."""

    name: str = Field(description="allowedPrefixes or downtime")
    fetchedAt: GoTime | None = Field(description="The last good poll; null: never.")
    ageSeconds: float | None
    entries: int = Field(description="Entries in the last good value.")
    lastError: str | None = Field(description="The last poll's failure, until one succeeds.")
    lastErrorAt: GoTime | None


class ExternalRegistryOut(WireOut):
    """The external registry as this process sees it (README, "External registry")."""

    url: str = Field(description="Its base URL; empty while the discovery document is unread.")
    reachable: bool = Field(description="The last exchange got an answer that was not a 5xx.")
    lastError: str | None
    datasets: list[PolledDatasetOut]


class OverviewOut(WireOut):
    now: GoTime
    worker: WorkerOut
    health: HealthOut
    counts: CountsOut
    databaseReachable: bool
    windowSeconds: float
    shares: dict[str, float] = Field(
        description="Each answer class's share of the window's answers (0 when none)."
    )
    answersPerSecond: float
    statPerSecond: float
    series: SeriesOut
    externalRegistry: ExternalRegistryOut | None = Field(
        None, description="Null when this director is its own registry."
    )


class NamespaceServerOut(WireOut):
    name: str
    colour: Colour
    detailUrl: str


class ConsoleNamespaceOut(WireOut):
    path: str
    requireToken: bool
    origins: list[NamespaceServerOut]
    caches: list[NamespaceServerOut]


class NamespacesPageOut(WireOut):
    total: int
    matched: int
    page: int
    pages: int
    namespaces: list[ConsoleNamespaceOut]


class DowntimeWindowOut(WireOut):
    startsAt: GoTime
    endsAt: GoTime | None
    downtimeClass: str
    severity: str
    description: str
    source: str
    active: bool


class ServerSeriesOut(WireOut):
    """The last hour per minute, oldest first (the minute in progress is left out)."""

    slotSeconds: float
    redirects: list[float]
    present: list[float]
    absent: list[float]
    failed: list[float]
    rejected: list[float]
    latencyMs: list[float | None] = Field(description="Mean HEAD time; null: no HEAD.")


class ServerPageOut(WireOut):
    now: GoTime
    worker: WorkerOut
    server: ConsoleServerOut
    namespaces: list[str]
    downtimes: list[DowntimeWindowOut]
    series: ServerSeriesOut


class MapPointOut(WireOut):
    name: str
    kind: str
    colour: Colour
    state: str
    latitude: float
    longitude: float
    detailUrl: str


class MapOut(WireOut):
    points: list[MapPointOut]
    unlocated: list[str]


class _AnsweredBy(WireOut):
    worker: WorkerOut


# _AnsweredBy last among the bases so that pydantic, which collects fields from the most
# basic class up, puts ``worker`` first, as the console's JSON always had it.
class ExplainOut(ExplanationOut, _AnsweredBy):
    """``explain`` in the live process: the same decision as a redirect for that client."""
