"""Read and check the district configuration, reporting every error at once with its path.

A configuration is usually written by hand, so one run of ``ioc config check`` must list all of its
mistakes, each with a path into the file (``units[3].polygon: overlaps Trà Kót``), instead of
stopping at the first. Checking happens in three stages:

1. YAML syntax (with line numbers; duplicate keys are errors, not a silent "last one wins");
2. the schema (:mod:`ioc.district.models`): every item of every section is validated, and the items
   that pass go on to stage 3 even when others fail;
3. checks across the file: duplicate ids, references to unknown units, cycles in the unit tree or in
   successor chains, geometry validity (shapely), overlapping units, devices placed outside their unit,
   camera zones and the rules that use them.
"""

from __future__ import annotations

import contextlib
import copy
import difflib
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import shapely
import yaml
from pydantic import BaseModel, ValidationError
from shapely.geometry import LineString, Point, Polygon, shape
from shapely.geometry.base import BaseGeometry

from ioc.district.models import (
    RULE_KINDS,
    SLUG_PATTERN,
    Camera,
    District,
    Integration,
    KpiTarget,
    RadioCluster,
    ReportCategory,
    SeedUser,
    Sensor,
    Unit,
)

# Overlaps smaller than this (square degrees, about 10 m²) are rounding noise of shared borders.
OVERLAP_TOLERANCE_DEG2 = 1e-9
_KM_PER_DEGREE = 111.32

_SECTIONS: dict[str, type[BaseModel]] = {
    "units": Unit,
    "cameras": Camera,
    "radio_clusters": RadioCluster,
    "sensors": Sensor,
    "integrations": Integration,
    "report_categories": ReportCategory,
    "kpi_targets": KpiTarget,
    "users": SeedUser,
}


@dataclass(frozen=True, order=True)
class ConfigError:
    """One problem of a configuration file: where (a path such as ``cameras[2].zones[0]``) and what."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class DistrictConfigError(ValueError):
    """The configuration is invalid; ``errors`` lists every problem found."""

    def __init__(self, errors: list[ConfigError], source: str = "district configuration") -> None:
        self.errors = errors
        lines = "\n".join(f"  {e}" for e in errors)
        super().__init__(f"{source}: {len(errors)} error(s)\n{lines}")


def load_district(path: Path | str) -> District:
    """The validated district of the YAML file at ``path``; raises :class:`DistrictConfigError`."""
    district, errors = _check(Path(path))
    if errors or district is None:
        raise DistrictConfigError(errors, str(path))
    return district


def check_district(source: Path | str | Mapping[str, Any], *, base_dir: Path | None = None) -> list[ConfigError]:
    """Every error of a configuration: a file path, or the already parsed YAML document.

    ``base_dir`` resolves a relative ``geometry_file`` when ``source`` is a mapping (default: the
    current directory); for a file it is the file's directory.
    """
    return _check(source, base_dir=base_dir)[1]


def validate_district(
    source: Path | str | Mapping[str, Any], *, base_dir: Path | None = None
) -> tuple[District | None, list[ConfigError]]:
    """The district and no errors, or ``None`` and every error: one pass for callers that need both."""
    return _check(source, base_dir=base_dir)


# -- stage 1: YAML -------------------------------------------------------------------------------


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys: with plain YAML the second silently wins."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                "while reading a mapping", node.start_mark, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def read_yaml(path: Path) -> tuple[Any, list[ConfigError]]:
    """The parsed document, or the syntax error with its line (path ``line N``)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return None, [ConfigError("", f"cannot read {path}: {exc}")]
    try:
        return yaml.load(text, Loader=_StrictLoader), []  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}" if mark else "yaml"
        column = f" (column {mark.column + 1})" if mark else ""
        return None, [ConfigError(where, f"YAML syntax: {exc.problem}{column}")]
    except yaml.YAMLError as exc:
        return None, [ConfigError("yaml", f"YAML syntax: {exc}")]


# -- stage 2: schema ------------------------------------------------------------------------------


def path_of(loc: Iterable[int | str]) -> str:
    """A pydantic location as a path: ``('units', 3, 'polygon')`` → ``units[3].polygon``.

    The tag pydantic adds for a discriminated union (``rules[1].intrusion.zone``) is dropped: the
    file has no such key.
    """
    out = ""
    previous: int | str | None = None
    for item in loc:
        if isinstance(item, int):
            out += f"[{item}]"
        elif isinstance(previous, int) and item in RULE_KINDS and out.endswith(f"rules[{previous}]"):
            continue
        else:
            out += f".{item}" if out else str(item)
        previous = item
    return out


def _schema_errors(exc: ValidationError, prefix: tuple[int | str, ...] = ()) -> list[ConfigError]:
    errors = []
    for err in exc.errors(include_url=False):
        kind = err["type"]
        if kind == "extra_forbidden":
            message = "unknown key"
        elif kind == "missing":
            message = "required"
        elif kind == "string_pattern_mismatch" and err.get("ctx", {}).get("pattern") == SLUG_PATTERN:
            message = f"{err['input']!r} is not an id: use lower-case ASCII words joined by '-', e.g. 'tra-kot'"
        else:
            message = err["msg"].removeprefix("Value error, ")
        errors.append(ConfigError(path_of(prefix + tuple(err["loc"])), message))
    return errors


@dataclass
class _Parts:
    """The items that passed the schema, with their index in the file, for the cross checks."""

    units: list[tuple[int, Unit]] = field(default_factory=list)
    cameras: list[tuple[int, Camera]] = field(default_factory=list)
    radio_clusters: list[tuple[int, RadioCluster]] = field(default_factory=list)
    sensors: list[tuple[int, Sensor]] = field(default_factory=list)
    integrations: list[tuple[int, Integration]] = field(default_factory=list)
    report_categories: list[tuple[int, ReportCategory]] = field(default_factory=list)
    kpi_targets: list[tuple[int, KpiTarget]] = field(default_factory=list)
    users: list[tuple[int, SeedUser]] = field(default_factory=list)
    geometry_from_file: set[int] = field(default_factory=set)
    geometry_file: str = ""
    # Ids of every unit in the file, valid or not: a unit with a schema error is still "known", so
    # references to it are not reported as unknown as well.
    declared_units: set[str] = field(default_factory=set)


def _validate(data: dict[str, Any], parts: _Parts) -> tuple[District | None, list[ConfigError]]:
    try:
        district = District.model_validate(data)
    except ValidationError as exc:
        errors = _schema_errors(exc)
        # Keep the items that are valid on their own, so stage 3 still reports what it can.
        for name, model in _SECTIONS.items():
            items = data.get(name)
            if not isinstance(items, list):
                continue
            for index, item in enumerate(items):
                with contextlib.suppress(ValidationError):
                    getattr(parts, name).append((index, model.model_validate(item)))
        return None, errors
    for name in _SECTIONS:
        setattr(parts, name, list(enumerate(getattr(district, name))))
    return district, []


# -- geometry file --------------------------------------------------------------------------------


def _merge_geometry_file(data: dict[str, Any], base_dir: Path, parts: _Parts) -> list[ConfigError]:
    """Copy each feature's geometry of ``geometry_file`` onto the unit named by ``properties.unit_id``.

    A unit's inline ``polygon`` wins over the file, so one boundary can be corrected in the YAML.
    """
    name = data.get("geometry_file")
    if not isinstance(name, str):
        return []  # absent, or a type error the schema reports
    path = base_dir / name
    parts.geometry_file = path.name
    try:
        collection = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        return [ConfigError("geometry_file", f"cannot read {path}: {exc.strerror or exc}")]
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return [ConfigError("geometry_file", f"{path.name} is not valid JSON: {exc}")]
    features = collection.get("features") if isinstance(collection, dict) else None
    if not isinstance(features, list) or collection.get("type") != "FeatureCollection":
        return [ConfigError("geometry_file", f"{path.name} is not a GeoJSON FeatureCollection")]
    units = data.get("units") if isinstance(data.get("units"), list) else []
    index_of = {u.get("id"): i for i, u in enumerate(units) if isinstance(u, dict)}
    errors: list[ConfigError] = []
    claimed: dict[str, int] = {}
    for number, feature in enumerate(features):
        where = f"geometry_file.features[{number}]"
        props = feature.get("properties") if isinstance(feature, dict) else None
        unit_id = props.get("unit_id") if isinstance(props, dict) else None
        if not isinstance(unit_id, str):
            errors.append(ConfigError(f"{where}.properties.unit_id", "required (the id of a unit)"))
            continue
        if unit_id not in index_of:
            errors.append(ConfigError(f"{where}.properties.unit_id", _unknown("unit", unit_id, index_of)))
            continue
        if unit_id in claimed:
            first = f"features[{claimed[unit_id]}]"
            errors.append(ConfigError(where, f"second geometry for unit '{unit_id}' (first: {first})"))
            continue
        claimed[unit_id] = number
        unit = units[index_of[unit_id]]
        if unit.get("polygon") is None:
            unit["polygon"] = feature.get("geometry")
            parts.geometry_from_file.add(index_of[unit_id])
            if props.get("synthetic"):
                unit.setdefault("properties", {})
                if isinstance(unit["properties"], dict):
                    unit["properties"].setdefault("synthetic_geometry", True)
    return errors


# -- stage 3: cross checks ------------------------------------------------------------------------


def _unknown(what: str, value: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(value, list(known), n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return f"unknown {what} '{value}'{hint}"


def _duplicates(items: Iterable[tuple[str, str]], what: str = "id") -> list[ConfigError]:
    """Errors for repeated keys; ``items`` are (path of the key, key) in file order."""
    first: dict[str, str] = {}
    errors = []
    for path, key in items:
        if key in first:
            errors.append(ConfigError(path, f"duplicate {what} '{key}' (first at {first[key].rsplit('.', 1)[0]})"))
        else:
            first[key] = path
    return errors


def _periods_meet(a: Unit, b: Unit) -> bool:
    start = max(a.valid_from or date.min, b.valid_from or date.min)
    end = min(a.valid_to or date.max, b.valid_to or date.max)
    return start < end


def _km2(area_deg2: float, lat: float) -> float:
    return area_deg2 * _KM_PER_DEGREE**2 * math.cos(math.radians(lat))


def _chain_cycle(start: str, step: Mapping[str, str | None]) -> list[str] | None:
    """The cycle reached by following ``step`` from ``start``, or None when the chain ends."""
    seen: list[str] = []
    node: str | None = start
    while node is not None and node in step:
        if node in seen:
            return seen[seen.index(node) :] + [node]
        seen.append(node)
        node = step[node]
    return None


def _check_units(parts: _Parts) -> tuple[list[ConfigError], dict[str, BaseGeometry]]:
    errors: list[ConfigError] = []
    by_id = {u.id: (i, u) for i, u in parts.units}
    known = parts.declared_units
    errors += _duplicates((f"units[{i}].id", u.id) for i, u in parts.units)
    errors += _duplicates(((f"units[{i}].code", u.code) for i, u in parts.units if u.code), "code")
    for i, unit in parts.units:
        if unit.parent is not None and unit.parent not in known:
            errors.append(ConfigError(f"units[{i}].parent", _unknown("unit", unit.parent, known)))
        if unit.successor is not None and unit.successor not in known:
            errors.append(ConfigError(f"units[{i}].successor", _unknown("unit", unit.successor, known)))
    for attr in ("parent", "successor"):
        step = {u.id: getattr(u, attr) for _, u in parts.units}
        reported: set[str] = set()
        for i, unit in parts.units:
            cycle = _chain_cycle(unit.id, step)
            if cycle and unit.id in cycle and not reported.intersection(cycle):
                reported.update(cycle)
                errors.append(ConfigError(f"units[{i}].{attr}", "cycle: " + " > ".join(cycle)))

    shapes: dict[str, BaseGeometry] = {}
    for i, unit in parts.units:
        if unit.polygon is None:
            continue
        where = f"units[{i}].polygon"
        origin = f" (from {parts.geometry_file})" if i in parts.geometry_from_file else ""
        try:
            geometry = shape(unit.polygon.model_dump())
        except (ValueError, TypeError, IndexError, AttributeError, shapely.errors.GEOSException) as exc:
            errors.append(ConfigError(where, f"not a GeoJSON {unit.polygon.type}: {exc}{origin}"))
            continue
        if not geometry.is_valid:
            errors.append(ConfigError(where, f"invalid geometry: {shapely.is_valid_reason(geometry)}{origin}"))
            continue
        if geometry.is_empty or geometry.area == 0:
            errors.append(ConfigError(where, f"empty polygon{origin}"))
            continue
        min_lon, min_lat, max_lon, max_lat = geometry.bounds
        if min_lon < -180 or max_lon > 180 or min_lat < -90 or max_lat > 90:
            errors.append(ConfigError(where, f"coordinates outside lon/lat ranges (write [lon, lat]){origin}"))
            continue
        shapes[unit.id] = geometry

    errors += _overlaps([(i, u) for i, u in parts.units if u.id in shapes], shapes)
    for i, unit in parts.units:
        parent = by_id.get(unit.parent or "")
        if unit.id in shapes and parent and parent[1].id in shapes:
            outside = shapes[unit.id].difference(shapes[parent[1].id]).area
            if outside > OVERLAP_TOLERANCE_DEG2:
                lat = shapes[unit.id].centroid.y
                errors.append(
                    ConfigError(
                        f"units[{i}].polygon",
                        f"extends outside its parent {parent[1].name} by about {_km2(outside, lat):.2f} km²",
                    )
                )
    return errors, shapes


def _overlaps(shaped: list[tuple[int, Unit]], shapes: dict[str, BaseGeometry]) -> list[ConfigError]:
    """Siblings, and leaf units anywhere in the tree, must not share area while they both exist.

    A unit and its ancestors do overlap (a commune lies in its district), and so may a merged unit and
    its successor, which exist at different times. The later unit in the file names the earlier one.
    """
    parents = {u.parent for _, u in shaped}
    geoms = [shapes[u.id] for _, u in shaped]
    errors: list[ConfigError] = []
    if len(geoms) < 2:  # nothing can overlap; STRtree.query also refuses an empty list (TypeError)
        return errors
    for a, b in zip(*shapely.STRtree(geoms).query(geoms, predicate="intersects"), strict=True):
        (ia, ua), (ib, ub) = shaped[a], shaped[b]
        if ia >= ib or not _periods_meet(ua, ub):
            continue
        both_leaves = ua.id not in parents and ub.id not in parents
        if not (both_leaves or ua.parent == ub.parent):
            continue
        area = geoms[a].intersection(geoms[b]).area
        if area > OVERLAP_TOLERANCE_DEG2:
            km2 = _km2(area, geoms[a].centroid.y)
            errors.append(
                ConfigError(f"units[{ib}].polygon", f"overlaps {ua.name} (units[{ia}]) by about {km2:.2f} km²")
            )
    return errors


def _check_devices(parts: _Parts, shapes: dict[str, BaseGeometry]) -> list[ConfigError]:
    errors: list[ConfigError] = []
    units = {u.id: u for _, u in parts.units}
    device_ids: list[tuple[str, str]] = [(f"cameras[{i}].id", c.id) for i, c in parts.cameras]
    placed: list[tuple[str, str, str, Any]] = []  # (path of the unit, path of the position, unit id, position)
    for i, camera in parts.cameras:
        placed.append((f"cameras[{i}].unit", f"cameras[{i}].position", camera.unit, camera.position))
    for i, cluster in parts.radio_clusters:
        device_ids.append((f"radio_clusters[{i}].id", cluster.id))
        placed.append((f"radio_clusters[{i}].unit", f"radio_clusters[{i}].position", cluster.unit, cluster.position))
    for i, sensor in parts.sensors:
        device_ids.append((f"sensors[{i}].id", sensor.id))
        placed.append((f"sensors[{i}].unit", f"sensors[{i}].position", sensor.unit, sensor.position))
    for i, integration in parts.integrations:
        device_ids.append((f"integrations[{i}].id", integration.id))
        placed.append((f"integrations[{i}].unit", "", integration.unit, None))
    errors += _duplicates(device_ids)

    from ioc.geo import UnitLocator

    parents = {u.parent for u in units.values()}
    locator = UnitLocator({uid: g for uid, g in shapes.items() if units[uid].valid_on(None) and uid not in parents})
    reported_units: set[str] = set()
    for unit_path, position_path, unit_id, position in placed:
        unit = units.get(unit_id)
        if unit is None and unit_id in parts.declared_units:
            continue  # the unit itself has a schema error, reported already
        if unit is None:
            if unit_path not in reported_units:
                reported_units.add(unit_path)
                errors.append(ConfigError(unit_path, _unknown("unit", unit_id, parts.declared_units)))
            continue
        if unit.valid_to is not None:
            if unit_path not in reported_units:
                reported_units.add(unit_path)
                successor = f"; move it to '{unit.successor}'" if unit.successor else ""
                errors.append(ConfigError(unit_path, f"unit '{unit_id}' ended on {unit.valid_to}{successor}"))
            continue
        polygon = shapes.get(unit_id)
        if position is not None and polygon is not None and not polygon.covers(Point(position.lon, position.lat)):
            found = locator.unit_at(position.lon, position.lat)
            where = f"it lies in {units[found].name}" if found else "it lies in no unit"
            errors.append(ConfigError(position_path, f"outside its unit {unit.name} ({where})"))
    for i, camera in parts.cameras:
        errors += _check_camera(f"cameras[{i}]", camera)
    return errors


def _check_camera(where: str, camera: Camera) -> list[ConfigError]:
    """Zones are valid polygons inside the frame; rules name zones that exist; lines are in the frame."""
    errors = _duplicates((f"{where}.zones[{j}].name", z.name) for j, z in enumerate(camera.zones))
    errors += _duplicates((f"{where}.rules[{k}].id", r.id) for k, r in enumerate(camera.rules))
    frame = shapely.box(0, 0, camera.frame.width, camera.frame.height)
    for j, zone in enumerate(camera.zones):
        polygon = Polygon(zone.polygon)
        if not polygon.is_valid or polygon.area == 0:
            reason = shapely.is_valid_reason(polygon) if not polygon.is_valid else "no area"
            errors.append(ConfigError(f"{where}.zones[{j}].polygon", f"invalid zone: {reason}"))
        elif not frame.covers(polygon):
            size = f"{camera.frame.width}×{camera.frame.height}"
            errors.append(ConfigError(f"{where}.zones[{j}].polygon", f"outside the {size} frame"))
    zones = [z.name for z in camera.zones]
    for k, rule in enumerate(camera.rules):
        zone = getattr(rule, "zone", None)
        if zone is not None and zone not in zones:
            errors.append(ConfigError(f"{where}.rules[{k}].zone", _unknown("zone", zone, zones)))
        line = getattr(rule, "line", None)
        if line is not None:
            segment = LineString(line)
            if segment.length == 0:
                errors.append(ConfigError(f"{where}.rules[{k}].line", "the two points are the same"))
            elif not frame.covers(segment):
                errors.append(ConfigError(f"{where}.rules[{k}].line", "outside the frame"))
    return errors


def _check_rest(parts: _Parts) -> list[ConfigError]:
    units = parts.declared_units
    errors = _duplicates((f"report_categories[{i}].id", c.id) for i, c in parts.report_categories)
    errors += _duplicates((f"kpi_targets[{i}].id", k.id) for i, k in parts.kpi_targets)
    errors += _duplicates(((f"users[{i}].username", u.username) for i, u in parts.users), "username")
    for i, user in parts.users:
        if user.unit is not None and user.unit not in units:
            errors.append(ConfigError(f"users[{i}].unit", _unknown("unit", user.unit, units)))
    return errors


# -- the pipeline ---------------------------------------------------------------------------------


def _check(
    source: Path | str | Mapping[str, Any], *, base_dir: Path | None = None
) -> tuple[District | None, list[ConfigError]]:
    if isinstance(source, Mapping):
        data: Any = copy.deepcopy(dict(source))
        base = base_dir or Path.cwd()
    else:
        path = Path(source)
        data, errors = read_yaml(path)
        if errors:
            return None, errors
        base = base_dir or path.parent
    if not isinstance(data, dict):
        return None, [ConfigError("", "the file must be a mapping (district: id, name, units, ...)")]

    parts = _Parts()
    raw_units = data.get("units") if isinstance(data.get("units"), list) else []
    parts.declared_units = {u["id"] for u in raw_units if isinstance(u, dict) and isinstance(u.get("id"), str)}
    errors = _merge_geometry_file(data, base, parts)
    district, schema_errors = _validate(data, parts)
    for error in schema_errors:
        if any(error.path.startswith(f"units[{i}].polygon") for i in parts.geometry_from_file):
            error = ConfigError(error.path, f"{error.message} (from {parts.geometry_file})")
        errors.append(error)
    unit_errors, shapes = _check_units(parts)
    errors += unit_errors
    errors += _check_devices(parts, shapes)
    errors += _check_rest(parts)
    return (district if not errors else None), errors
