"""Which unit a point lies in: reports, alerts and devices are attributed to units by position.

A citizen's report carries the phone's coordinates, not a commune; the IOC must route it to the
commune whose territory holds the point. :class:`UnitLocator` indexes the polygons of the leaf units
(the ones that receive alerts) in a shapely STRtree, so a lookup costs a few microseconds even for a
province with hundreds of communes.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import TYPE_CHECKING, Any

import shapely
from shapely.geometry import Point, shape
from shapely.geometry.base import BaseGeometry

if TYPE_CHECKING:
    from ioc.district.models import District


class UnitLocator:
    """Point → unit id over a set of non-overlapping polygons (lon/lat, WGS84)."""

    def __init__(self, polygons: Mapping[str, BaseGeometry]) -> None:
        self._ids = list(polygons)
        self._tree = shapely.STRtree([polygons[unit_id] for unit_id in self._ids])

    @classmethod
    def from_district(cls, district: District, on: date | None = None) -> UnitLocator:
        """A locator over the district's leaf units that exist on ``on`` (``None``: today's structure).

        Units without a polygon cannot be found by position and are left out.
        """
        return cls({u.id: shape(u.polygon.model_dump()) for u in district.leaf_units(on) if u.polygon is not None})

    def unit_at(self, lon: float, lat: float) -> str | None:
        """The id of the unit holding the point, or None outside every unit.

        A point exactly on a shared border belongs to both; the unit listed first wins, so the answer
        is the same on every call and every replica.
        """
        hits = self._tree.query(Point(lon, lat), predicate="intersects")
        return self._ids[int(hits.min())] if len(hits) else None

    def __len__(self) -> int:
        return len(self._ids)


def leaf_unit_locator(conn: Any) -> UnitLocator:
    """A locator over today's leaf units as stored in the database (their GeoJSON ``geometry``)."""
    rows = conn.execute(
        "SELECT u.id, u.geometry FROM units u WHERE u.geometry IS NOT NULL AND u.valid_to IS NULL"
        " AND NOT EXISTS (SELECT 1 FROM units c WHERE c.parent_id = u.id AND c.valid_to IS NULL)"
    ).fetchall()
    return UnitLocator({unit_id: shape(geometry) for unit_id, geometry in rows})
