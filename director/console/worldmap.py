"""The map's land outline: an SVG path drawn once per process from a TopoJSON file that
ships with the project (``geodata/land-110m.json``: world-atlas 2.0.2, Natural Earth's
1:110m land, public domain; licence beside it). No tile server: the console works offline.

The projection is equirectangular in a 360 x 180 view box: x = longitude + 180,
y = 90 - latitude. The browser places the servers with the same two lines
(``console.js``, ``project``).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

LAND = Path(__file__).resolve().parent / "geodata" / "land-110m.json"
WIDTH, HEIGHT = 360, 180


def project(longitude: float, latitude: float) -> tuple[float, float]:
    return longitude + 180.0, 90.0 - latitude


def _arcs(topology: dict[str, object]) -> list[list[tuple[float, float]]]:
    """Each arc as absolute (longitude, latitude) points (TopoJSON's delta encoding)."""
    transform = topology["transform"]
    assert isinstance(transform, dict)
    (scale_x, scale_y), (shift_x, shift_y) = transform["scale"], transform["translate"]
    decoded = []
    arcs = topology["arcs"]
    assert isinstance(arcs, list)
    for arc in arcs:
        x = y = 0
        points = []
        for dx, dy in arc:
            x += dx
            y += dy
            points.append((x * scale_x + shift_x, y * scale_y + shift_y))
        decoded.append(points)
    return decoded


def _ring(indices: list[int], arcs: list[list[tuple[float, float]]]) -> list[tuple[float, float]]:
    """A ring from arc indices (``~i``: arc ``i`` reversed), shared end points once."""
    points: list[tuple[float, float]] = []
    for index in indices:
        arc = arcs[index] if index >= 0 else arcs[~index][::-1]
        points.extend(arc[1:] if points else arc)
    return points


def _unwrapped(ring: list[tuple[float, float]]) -> list[list[tuple[float, float]]]:
    """The ring as the map draws it: Natural Earth's land crosses the antimeridian
    (Chukotka, Fiji), where a ring jumps from +180 to -180; drawn as is, that jump is a
    line across the world. Unwrapped, the ring runs on past the edge and is drawn again
    shifted by 360 degrees (the view box clips both). A ring around a pole (Antarctica)
    does not come back to its offset and is drawn as it is."""
    offset = 0.0
    previous: float | None = None
    points = []
    for longitude, latitude in ring:
        if previous is not None:
            if longitude - previous > 180:
                offset -= 360
            elif longitude - previous < -180:
                offset += 360
        points.append((longitude + offset, latitude))
        previous = longitude
    if offset:
        return [ring]
    copies = [points]
    if min(x for x, _ in points) < -180:
        copies.append([(x + 360, y) for x, y in points])
    if max(x for x, _ in points) > 180:
        copies.append([(x - 360, y) for x, y in points])
    return copies


@cache
def land_path() -> str:
    """The SVG ``d`` of every land polygon (about 30 KB; built once, ~10 ms)."""
    topology = json.loads(LAND.read_text())
    arcs = _arcs(topology)
    parts = []
    for geometry in topology["objects"]["land"]["geometries"]:
        polygons = geometry["arcs"] if geometry["type"] == "MultiPolygon" else [geometry["arcs"]]
        for polygon in polygons:
            for ring in polygon:
                for copy in _unwrapped(_ring(ring, arcs)):
                    points = [project(lon, lat) for lon, lat in copy]
                    if len(points) >= 3:
                        parts.append("M" + "L".join(f"{x:.1f},{y:.1f}" for x, y in points) + "Z")
    return "".join(parts)
