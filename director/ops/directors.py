"""This director's own advertisement in the shared registry, and the live directors.

Every serving process renews its director's row (``DirectorAd``: name, URL, instance,
start time, expiry) every ``DIRECTOR_SELF_AD_INTERVAL`` (10 s) with an expiry three
intervals ahead, and reads the live rows into memory, so ``/api/v1.0/director/directors``
and discovery list them without touching the database (and go on listing the last ones
known while it is down). A director that stops deletes its row; one that dies drops out
when its expiry passes: the failure of Pelican #3449, where the survivor listed only the
dead peer, cannot happen.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from dataclasses import dataclass

import gevent
from django.db import close_old_connections
from django.utils import timezone

from director import __version__, models
from director.registry import PROCESS_STARTED_AT
from director.serving.supervisor import SupervisedLoop

logger = logging.getLogger(__name__)

INSTANCE_ID = uuid.uuid4().hex  # this process
LIFETIMES = 3  # an ad lives this many renewal intervals


@dataclass(frozen=True, slots=True)
class DirectorInfo:
    name: str
    url: str
    instance_id: str
    version: str
    started_at: float  # epoch seconds
    expires_at: dt.datetime


class DirectorAdvertiser:
    """Owner of the greenlet that renews this director's ad and reads the live ones."""

    def __init__(self, name: str, url: str, interval: float, timeout: float) -> None:
        self.name = name
        self.url = url
        self.interval = interval
        self.timeout = timeout
        self.live: list[DirectorInfo] = []
        self._loop = SupervisedLoop("director-self-ad", logger, label="director ad")

    def start(self) -> None:
        self._loop.start(self._run)

    def stop(self) -> None:
        """Stop renewing and withdraw the ad at once (bounded: a database that does not
        answer leaves it to expire)."""
        self._loop.stop()
        withdraw = gevent.spawn(self._withdraw)
        withdraw.join(self.timeout)
        if not withdraw.ready():
            withdraw.kill(block=False)

    def _withdraw(self) -> None:
        try:
            models.DirectorAd.objects.filter(name=self.name, instance_id=INSTANCE_ID).delete()
        finally:
            close_old_connections()

    def _run(self) -> None:
        while True:
            renewal = gevent.spawn(self.renew)
            renewal.join(self.timeout)
            if not renewal.ready():
                renewal.join()  # a hung database: one renewal at a time
            elif renewal.exception is not None:
                logger.warning("could not renew this director's ad: %r", renewal.exception)
            gevent.sleep(self.interval)

    def renew(self) -> None:
        """Write this director's ad, then read every live one."""
        try:
            now = timezone.now()
            models.DirectorAd.objects.update_or_create(
                name=self.name,
                defaults={
                    "url": self.url,
                    "instance_id": INSTANCE_ID,
                    "version": __version__,
                    "started_at": dt.datetime.fromtimestamp(PROCESS_STARTED_AT, dt.UTC),
                    "expires_at": now + dt.timedelta(seconds=LIFETIMES * self.interval),
                },
            )
            self.live = [
                DirectorInfo(
                    row.name,
                    row.url,
                    row.instance_id,
                    row.version,
                    row.started_at.timestamp(),
                    row.expires_at,
                )
                for row in models.DirectorAd.objects.filter(expires_at__gt=now)
            ]
        finally:
            close_old_connections()


advertiser: DirectorAdvertiser | None = None


def this_director(url: str, ttl: float) -> DirectorInfo:
    """This director as it would advertise itself (before its first renewal)."""
    from django.conf import settings

    return DirectorInfo(
        settings.DIRECTOR_NAME,
        url,
        INSTANCE_ID,
        __version__,
        PROCESS_STARTED_AT,
        timezone.now() + dt.timedelta(seconds=ttl),
    )


def live_directors(fallback: DirectorInfo) -> list[DirectorInfo]:
    """The directors that advertised lately, as last read; only ``fallback`` (this one)
    when none has been read yet (a process without background work, e.g. under tests).
    Expired ads known from the last read are left out."""
    known = advertiser.live if advertiser is not None else []
    now = timezone.now()
    live = [info for info in known if info.expires_at > now]
    return live or [fallback]


def start(name: str, url: str, interval: float, timeout: float) -> DirectorAdvertiser:
    global advertiser
    if advertiser is None:
        advertiser = DirectorAdvertiser(name, url, interval, timeout)
    advertiser.start()
    return advertiser
