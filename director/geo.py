"""Where a client or server is (reference 3.5). Plain Python: no Django.

A client's coordinate, in this order, always yields one:

1. a valid ``X-Pelican-Coordinate: lat=<f>,long=<f>`` header (source ``declared``);
2. the first GeoIP override whose network contains the address (``override``);
3. a MaxMind-format city database, when one is configured (``maxmind``): an answer at
   (0, 0) or with an accuracy radius of 900 km or more is rejected;
4. a random point in the default region, the same for one address for 20 minutes
   (``random``).

Bad input never breaks a redirect: the next source is used, and the reason is logged
once per source, not per request.
"""

from __future__ import annotations

import enum
import ipaddress
import logging
import math
import os
import random
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import maxminddb
from cachetools import TLRUCache

logger = logging.getLogger(__name__)

MAX_ACCURACY_RADIUS_KM = 900
STICKY_SECONDS = 20 * 60
STICKY_CAPACITY = 10_000
RELOAD_CHECK_INTERVAL = 5.0
RECENT_SECONDS = 5.0  # a resolved client address is reused this long

EARTH_RADIUS_MILES = 3960.0
MILES_TO_KM = 1.609344
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


_COORDINATE = re.compile(
    r"\s*lat\s*=\s*(?P<lat>[-+]?[0-9.]+(?:[eE][-+]?\d+)?)\s*,\s*"
    r"long\s*=\s*(?P<long>[-+]?[0-9.]+(?:[eE][-+]?\d+)?)\s*"
)


class LocationSource(enum.StrEnum):
    """Where a coordinate came from (Pelican's ``Coordinate.Source``)."""

    DECLARED = "declared"  # X-Pelican-Coordinate, or the server's ad
    OVERRIDE = "override"  # a GeoIP override row
    MAXMIND = "maxmind"  # the MaxMind-format database
    RANDOM = "random"  # a sticky random point in the default region
    UNKNOWN = ""


@dataclass(frozen=True, slots=True)
class Coordinate:
    latitude: float
    longitude: float
    source: LocationSource = LocationSource.DECLARED

    def valid(self) -> bool:
        return (
            math.isfinite(self.latitude)
            and math.isfinite(self.longitude)
            and -90.0 <= self.latitude <= 90.0
            and -180.0 <= self.longitude <= 180.0
        )


def parse_coordinate_header(value: str) -> Coordinate | None:
    """``lat=<f>,long=<f>`` from X-Pelican-Coordinate, or None if malformed or out of range."""
    match = _COORDINATE.fullmatch(value)
    if match is None:
        return None
    try:
        coordinate = Coordinate(float(match.group("lat")), float(match.group("long")))
    except ValueError:
        return None
    return coordinate if coordinate.valid() else None


def distance_miles(a: Coordinate, latitude: float, longitude: float) -> float:
    """Great-circle distance (haversine) with Pelican's Earth radius of 3960 miles."""
    lat1, lat2 = math.radians(a.latitude), math.radians(latitude)
    dlat = lat2 - lat1
    dlong = math.radians(longitude - a.longitude)
    h = math.sin(dlat / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin(dlong / 2) ** 2
    return 2 * EARTH_RADIUS_MILES * math.asin(min(1.0, math.sqrt(h)))


class OnceLog:
    """Logs a warning the first time a key is seen, then stays quiet about it."""

    def __init__(self, limit: int = 1000) -> None:
        self._seen: set[str] = set()
        self._limit = limit

    def warn(self, key: str, message: str, *args: object) -> None:
        if key in self._seen or len(self._seen) >= self._limit:
            return
        self._seen.add(key)
        logger.warning(message, *args)


once = OnceLog()


@dataclass(frozen=True, slots=True)
class Region:
    """A latitude/longitude box; the default is the contiguous United States."""

    lat_min: float = 30.0
    lat_max: float = 50.0
    long_min: float = -125.0
    long_max: float = -65.0

    @classmethod
    def parse(cls, text: str) -> Region:
        """``lat_min,lat_max,long_min,long_max``; ValueError with a reason otherwise."""
        parts = [part.strip() for part in text.split(",")]
        if len(parts) != 4:
            raise ValueError("expected lat_min,lat_max,long_min,long_max")
        lat_min, lat_max, long_min, long_max = (float(part) for part in parts)
        if not (-90 <= lat_min < lat_max <= 90 and -180 <= long_min < long_max <= 180):
            raise ValueError(
                "latitudes must be within [-90, 90], longitudes within [-180, 180], min < max"
            )
        return cls(lat_min, lat_max, long_min, long_max)

    def random_point(self, rng: random.Random) -> Coordinate:
        return Coordinate(
            rng.uniform(self.lat_min, self.lat_max),
            rng.uniform(self.long_min, self.long_max),
            source=LocationSource.RANDOM,
        )


@dataclass(frozen=True, slots=True)
class Override:
    network: IPNetwork
    coordinate: Coordinate


def parse_address(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text.strip().strip("[]"))
    except ValueError:
        return None


def match_override(address: IPAddress, overrides: Sequence[Override]) -> Coordinate | None:
    for override in overrides:
        if address.version == override.network.version and address in override.network:
            return override.coordinate
    return None


class GeoIPDatabase:
    """A MaxMind-format city database, reopened when the file changes.

    The file's identity (inode, size, mtime) is checked at most every 5 s, on lookup; an
    unreadable file means "no answer", logged once per version of the file.
    """

    def __init__(self, path: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.path = path
        self._clock = clock
        self._reader: maxminddb.Reader | None = None
        # Not a possible identity: the first check always (re)opens or reports.
        self._identity: tuple[int, int, int] | None | str = "unchecked"
        self._checked_at = float("-inf")

    def _identity_now(self) -> tuple[int, int, int] | None:
        try:
            stat = os.stat(self.path)
        except OSError:
            return None
        return stat.st_ino, stat.st_size, stat.st_mtime_ns

    def _refresh(self) -> None:
        now = self._clock()
        if now - self._checked_at < RELOAD_CHECK_INTERVAL:
            return
        self._checked_at = now
        identity = self._identity_now()
        if identity == self._identity:
            return
        self._identity = identity
        old, self._reader = self._reader, None
        if old is not None:
            old.close()
        if identity is None:
            once.warn(f"geoip-missing:{self.path}", "GeoIP database %s is missing", self.path)
            return
        try:
            self._reader = maxminddb.open_database(self.path, maxminddb.MODE_MEMORY)
        except Exception as error:  # any malformed file: OSError, ValueError, TypeError...
            once.warn(
                f"geoip-bad:{self.path}:{identity}",
                "GeoIP database %s cannot be read (%s); GeoIP lookups are off until it changes",
                self.path,
                error,
            )
        else:
            logger.info("GeoIP database %s loaded", self.path)

    def lookup(self, address: IPAddress) -> tuple[Coordinate | None, str]:
        """(coordinate, "") or (None, why not)."""
        self._refresh()
        if self._reader is None:
            return None, "no database"
        try:
            record = self._reader.get(str(address))
        except Exception as error:  # a corrupt search tree raises InvalidDatabaseError
            once.warn(
                f"geoip-lookup:{self.path}:{self._identity}",
                "GeoIP database %s fails lookups (%s); the next location source is used",
                self.path,
                error,
            )
            return None, f"lookup failed: {error}"
        location = record.get("location") if isinstance(record, dict) else None
        if not isinstance(location, dict):
            return None, "address not in the database"
        latitude, longitude = location.get("latitude"), location.get("longitude")
        radius = location.get("accuracy_radius")
        if not isinstance(latitude, int | float) or not isinstance(longitude, int | float):
            return None, "no coordinate"
        if latitude == 0 and longitude == 0:
            return None, "coordinate (0, 0)"
        if isinstance(radius, int | float) and radius >= MAX_ACCURACY_RADIUS_KM:
            return None, f"accuracy radius {radius} km"
        coordinate = Coordinate(float(latitude), float(longitude), source=LocationSource.MAXMIND)
        return (coordinate, "") if coordinate.valid() else (None, "coordinate out of range")


class ClientLocator:
    """Resolves a client's coordinate (see the module docstring for the order)."""

    def __init__(
        self,
        database: GeoIPDatabase | None = None,
        region: Region | None = None,
        *,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
        sticky_seconds: float = STICKY_SECONDS,
        sticky_capacity: int = STICKY_CAPACITY,
    ) -> None:
        self.database = database
        self.region = region or Region()
        self._rng = rng or random.Random()
        self._clock = clock
        self._sticky_seconds = sticky_seconds
        # Both keep (until, ...) and expire at "until", least recently used first when full.
        self._sticky: TLRUCache[str, tuple[float, Coordinate]] = TLRUCache(
            sticky_capacity, lambda key, entry, now: entry[0], timer=clock
        )
        self._recent: TLRUCache[str, tuple[float, object, Coordinate]] = TLRUCache(
            sticky_capacity, lambda key, entry, now: entry[0], timer=clock
        )

    def locate(self, header: str, client_ip: str, overrides: Sequence[Override] = ()) -> Coordinate:
        if header:
            declared = parse_coordinate_header(header)
            if declared is not None:
                return declared
            once.warn(
                "header", "ignoring malformed X-Pelican-Coordinate header(s), e.g. %r", header[:100]
            )
        # Where an address is does not change between two requests a second apart: the
        # answer is kept briefly, per address and override list (parsing and matching an
        # address cost more than the rest of the lookup).
        remembered = self._recent.get(client_ip)
        if remembered is not None and remembered[1] is overrides:
            return remembered[2]
        found, sticky_until = self._resolve(client_ip, overrides)
        # Never past the end of a sticky random assignment.
        until = min(self._clock() + RECENT_SECONDS, sticky_until)
        self._recent[client_ip] = (until, overrides, found)
        return found

    def _resolve(self, client_ip: str, overrides: Sequence[Override]) -> tuple[Coordinate, float]:
        """(coordinate, until when it may be remembered: forever but for random points)."""
        address = parse_address(client_ip)
        if address is not None:
            override = match_override(address, overrides)
            if override is not None:
                located = Coordinate(
                    override.latitude, override.longitude, source=LocationSource.OVERRIDE
                )
                return located, math.inf
            if self.database is not None:
                found, _ = self.database.lookup(address)
                if found is not None:
                    return found, math.inf
        return self._sticky_random(client_ip)

    def _sticky_random(self, key: str) -> tuple[Coordinate, float]:
        """The address's random point and until when it holds (one read of the cache:
        an entry may lapse between two)."""
        entry = self._sticky.get(key)
        if entry is not None:
            return entry[1], entry[0]
        until = self._clock() + self._sticky_seconds
        point = self.region.random_point(self._rng)
        self._sticky[key] = (until, point)
        return point, until


def server_coordinate(
    latitude: float | None,
    longitude: float | None,
    address: IPAddress | None,
    overrides: Sequence[Override],
    database: GeoIPDatabase | None,
) -> Coordinate | None:
    """A server's coordinate: declared in its ad, else an override or GeoIP on its address."""
    if latitude is not None and longitude is not None and (latitude, longitude) != (0.0, 0.0):
        return Coordinate(latitude, longitude, source=LocationSource.DECLARED)
    if address is None:
        return None
    override = match_override(address, overrides)
    if override is not None:
        return Coordinate(override.latitude, override.longitude, source=LocationSource.OVERRIDE)
    if database is not None:
        found, _ = database.lookup(address)
        return found
    return None
