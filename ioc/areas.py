"""Which communes a CAP area covers: exact routing of warnings.

A CAP ``<area>`` is polygons, circles and geocodes. Routing by "the polygon touches the commune"
(``intersects``) sends a warning drawn on one commune's boundary to every neighbour sharing an edge,
and a boundary simplified by the sender leaves slivers over the neighbours. So a commune counts only
when the area covers **a share of its surface** (``min_share``) **or a surface** (``min_km2``) above
the configured thresholds: a shared edge covers nothing, a sliver covers a fraction of a percent.

Geocodes route by the units' official administrative codes (``units.properties.code``, from the
district file's ``code``; ``aliases`` also match), whatever the geocode's ``valueName``: a
national warning service names communes by code, not by polygon.

Areas are measured in a local equirectangular projection centred on the area (x scaled by cos
latitude). Over a district (tens of km) its area error is far below the thresholds' precision, and
it avoids a PROJ dependency for ratios of areas only.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from shapely import affinity
from shapely.geometry import Point, Polygon, shape
from shapely.geometry.base import BaseGeometry
from shapely.ops import unary_union

from ioc.cap.model import Area

KM_PER_DEGREE = 111.32


@dataclass(frozen=True)
class AreaRule:
    """A commune is covered when the area holds at least ``min_share`` of its surface, or at least
    ``min_km2`` km² of it. Defaults: a tenth of the commune, or 2 km²."""

    min_share: float = 0.10
    min_km2: float = 2.0


@dataclass(frozen=True)
class Coverage:
    unit_id: str
    share: float | None  # None: named by a geocode
    km2: float | None
    by: str  # polygon | geocode


@dataclass(frozen=True)
class UnitShape:
    id: str
    geometry: BaseGeometry | None
    codes: frozenset[str]


def area_geometry(areas: Iterable[Area]) -> BaseGeometry | None:
    """The union of the polygons and circles of ``areas`` (lon/lat), or None when there are none."""
    shapes: list[BaseGeometry] = []
    for area in areas:
        for ring in area.polygons:
            if len(ring) >= 4:
                poly = Polygon([(lon, lat) for lat, lon in ring])
                shapes.append(poly if poly.is_valid else poly.buffer(0))
        for lat, lon, radius_km in area.circles:
            # A circle in km: an ellipse in degrees (longitude degrees shrink with cos latitude).
            circle = Point(0, 0).buffer(1.0, quad_segs=32)
            scale_lat = max(radius_km, 0.0) / KM_PER_DEGREE
            scale_lon = scale_lat / max(math.cos(math.radians(lat)), 1e-6)
            shapes.append(affinity.translate(affinity.scale(circle, scale_lon, scale_lat), lon, lat))
    shapes = [s for s in shapes if not s.is_empty]
    return unary_union(shapes) if shapes else None


def _km2(geometry: BaseGeometry, lat0: float) -> float:
    return geometry.area * KM_PER_DEGREE * KM_PER_DEGREE * math.cos(math.radians(lat0))


def geocodes(areas: Iterable[Area]) -> set[str]:
    return {value.strip() for area in areas for _, value in area.geocodes if value and value.strip()}


def covered(units: Iterable[UnitShape], areas: list[Area], rule: AreaRule) -> list[Coverage]:
    """The leaf units covered by ``areas`` under ``rule``, sorted by unit id."""
    zone = area_geometry(areas)
    codes = geocodes(areas)
    found: dict[str, Coverage] = {}
    for unit in units:
        if codes & unit.codes:
            found[unit.id] = Coverage(unit.id, None, None, "geocode")
            continue
        if zone is None or unit.geometry is None or not unit.geometry.intersects(zone):
            continue
        lat0 = unit.geometry.centroid.y
        overlap = _km2(unit.geometry.intersection(zone), lat0)
        total = _km2(unit.geometry, lat0)
        share = overlap / total if total > 0 else 0.0
        if share >= rule.min_share or overlap >= rule.min_km2:
            found[unit.id] = Coverage(unit.id, round(share, 4), round(overlap, 3), "polygon")
    return [found[k] for k in sorted(found)]


def leaf_units(conn: Any) -> list[UnitShape]:
    """Today's leaf units with their polygon and codes (code and aliases from the district file)."""
    rows = conn.execute(
        "SELECT u.id, u.geometry, u.properties FROM units u WHERE u.valid_to IS NULL"
        " AND NOT EXISTS (SELECT 1 FROM units c WHERE c.parent_id = u.id AND c.valid_to IS NULL)"
    ).fetchall()
    out = []
    for unit_id, geometry, properties in rows:
        props = properties or {}
        names = [props.get("code"), *(props.get("aliases") or [])]
        codes = frozenset(str(c).strip() for c in names if c is not None and str(c).strip())
        out.append(UnitShape(unit_id, shape(geometry) if geometry else None, codes))
    return out


def covered_units(conn: Any, areas: list[Area], rule: AreaRule | None = None) -> list[Coverage]:
    """:func:`covered` over today's leaf units in the database."""
    return covered(leaf_units(conn), areas, rule or AreaRule())
