"""Synthetic unit polygons for the sample district (Bắc Trà My), reproducibly.

No official boundary data is available offline, so the sample configuration uses one Voronoi cell per
unit around a hand-placed seed point, clipped to the district's box (lon 108.0–108.4, lat 15.1–15.5).
The cells do not overlap and together cover the box. They are NOT the real boundaries: every feature
carries ``properties.synthetic: true``. To use real boundaries, replace ``config/district-units.geojson``
with a FeatureCollection whose features carry ``properties.unit_id`` (docs/configuration.md).

Regenerate with::

    python -m ioc.district.synth > config/district-units.geojson
"""

from __future__ import annotations

import json
import sys
from typing import Any

import shapely
from shapely.geometry import MultiPoint, Point, box, mapping
from shapely.ops import voronoi_diagram

BOX = (108.0, 15.1, 108.4, 15.5)  # min lon, min lat, max lon, max lat
GRID = 1e-5  # degrees (about 1 m): coordinates are snapped to this grid

DISTRICT_ID = "bac-tra-my"  # the parent unit: its polygon is the whole box

# Seed point (lon, lat) of each unit: roughly where the commune lies; the town is near the east side.
SEEDS: dict[str, tuple[float, float]] = {
    "tra-my": (108.33, 15.34),
    "tra-son": (108.18, 15.45),
    "tra-kot": (108.07, 15.43),
    "tra-nu": (108.28, 15.45),
    "tra-duong": (108.37, 15.45),
    "tra-dong": (108.37, 15.24),
    "tra-giang": (108.24, 15.33),
    "tra-tan": (108.14, 15.32),
    "tra-bui": (108.04, 15.30),
    "tra-doc": (108.08, 15.19),
    "tra-giac": (108.20, 15.22),
    "tra-giap": (108.15, 15.12),
    "tra-ka": (108.29, 15.14),
}


def cells(seeds: dict[str, tuple[float, float]] = SEEDS, bounds: tuple[float, ...] = BOX) -> dict[str, Any]:
    """One polygon per seed: its Voronoi cell clipped to ``bounds`` and snapped to :data:`GRID`.

    Neighbouring cells share the very same vertices, so snapping moves them identically and
    leaves neither overlaps nor gaps.
    """
    frame = box(*bounds)
    diagram = voronoi_diagram(MultiPoint(list(seeds.values())), envelope=frame)
    result: dict[str, Any] = {}
    for unit_id, (lon, lat) in seeds.items():
        seed = Point(lon, lat)
        cell = next(c for c in diagram.geoms if c.contains(seed))
        result[unit_id] = shapely.set_precision(cell.intersection(frame), GRID)
    return result


def _rounded(geometry: Any) -> Any:
    """GeoJSON coordinates rounded for printing (the values are already on the grid)."""
    if isinstance(geometry, (list, tuple)):
        return [_rounded(g) for g in geometry]
    if isinstance(geometry, float):
        return round(geometry, 5)
    return geometry


def feature_collection() -> dict[str, Any]:
    """The GeoJSON FeatureCollection of the synthetic unit polygons."""
    features = []
    for unit_id, cell in cells().items():
        geometry = mapping(cell)
        features.append(
            {
                "type": "Feature",
                "properties": {"unit_id": unit_id, "synthetic": True, "seed": list(SEEDS[unit_id])},
                "geometry": {"type": geometry["type"], "coordinates": _rounded(geometry["coordinates"])},
            }
        )
    frame = mapping(box(*BOX))
    features.append(
        {
            "type": "Feature",
            "properties": {"unit_id": DISTRICT_ID, "synthetic": True},
            "geometry": {"type": frame["type"], "coordinates": _rounded(frame["coordinates"])},
        }
    )
    return {
        "type": "FeatureCollection",
        "name": "Bắc Trà My units: SYNTHETIC Voronoi polygons, not official boundaries (ioc.district.synth)",
        "features": features,
    }


def dumps(collection: dict[str, Any]) -> str:
    """The collection as JSON with one feature per line: readable, and diffs show which unit changed."""
    features = ",\n".join("  " + json.dumps(f, ensure_ascii=False) for f in collection["features"])
    head = {k: v for k, v in collection.items() if k != "features"}
    return json.dumps(head, ensure_ascii=False)[:-1] + ', "features": [\n' + features + "\n]}\n"


def main() -> None:
    sys.stdout.write(dumps(feature_collection()))


if __name__ == "__main__":
    main()
