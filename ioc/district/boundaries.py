"""A configuration skeleton from a real boundary file (``ioc district init --boundaries FILE``).

A district adopting the product has its communes' boundaries as GeoJSON: an OpenStreetMap export
(``name``, ``admin_level``, ``ref``), a national or GADM-style administrative export (``Ten_Xa``,
``Ma_Xa``, ``NAME_3``, ``ADM3_PCODE``...). This module reads such a file and writes

* ``<out>.yaml``: the district with one unit per feature (id, name, level, official code, the agency
  name as an alias), ready for ``ioc config check`` and ``ioc district apply``; devices, users and
  categories are left for the district to fill in;
* ``<out>-units.geojson``: the same geometries with ``properties.unit_id`` (the ``geometry_file`` of
  the YAML), plus the district's own outline, the union of its communes when the file has none.

Names are read as written ("Xã Trà Leng" -> level ``commune``, name "Trà Leng", alias "UBND xã Trà
Leng"). Two units whose names fold to the same id (Nam Trà My has "Trà Dơn" and "Trà Don") get their
code appended to the id, never a silent overwrite.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import shapely
from shapely.geometry import mapping, shape

from ioc.text import fold, nfc

NAME_KEYS = ("name:vi", "name", "ten", "Ten", "TEN", "Ten_Xa", "ten_xa", "TEN_XA", "NAME_3", "ADM3_VI", "ADM3_EN",
             "NAME_2", "ADM2_VI")  # fmt: skip
CODE_KEYS = ("ma", "Ma", "MA", "Ma_Xa", "ma_xa", "MA_XA", "ref:VN", "ref", "code", "ADM3_PCODE", "GID_3",
             "ADM2_PCODE", "GID_2")  # fmt: skip
#: Name prefix -> (level, the word used in the agency name).
PREFIXES = (("thị trấn", "town"), ("phường", "ward"), ("xã", "commune"), ("thị xã", "district"),
            ("huyện", "district"), ("quận", "district"))  # fmt: skip
#: OpenStreetMap admin_level in Vietnam: 4 province, 6 district, 8 commune/ward/town.
OSM_LEVELS = {"4": "province", "6": "district", "8": "commune"}


class BoundaryError(ValueError):
    """The boundary file cannot be turned into units; the message says which feature and why."""


@dataclass
class Skeleton:
    config: dict[str, Any]
    features: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", fold(text)).strip("-")[:64] or "unit"


def split_name(raw: str) -> tuple[str, str | None, str | None]:
    """ "Xã Trà Leng" -> ("Trà Leng", "commune", "xã"); a name without a level word stays whole."""
    name = " ".join(nfc(raw).split())
    lowered = name.casefold()
    for word, level in sorted(PREFIXES, key=lambda p: -len(p[0])):
        if lowered.startswith(word + " "):
            return name[len(word) + 1 :].strip(), level, word
    return name, None, None


def _first(props: dict[str, Any], keys: tuple[str, ...], chosen: str | None) -> Any:
    if chosen:
        return props.get(chosen)
    return next((props[k] for k in keys if props.get(k) not in (None, "")), None)


def build_skeleton(
    collection: Any, *, district_id: str | None = None, district_name: str | None = None,
    name_key: str | None = None, code_key: str | None = None, geometry_file: str = "units.geojson",
) -> Skeleton:  # fmt: skip
    """The configuration and the features of ``geometry_file`` for a parsed GeoJSON document."""
    if not isinstance(collection, dict) or collection.get("type") != "FeatureCollection":
        raise BoundaryError("not a GeoJSON FeatureCollection")
    features = collection.get("features")
    if not isinstance(features, list) or not features:
        raise BoundaryError("the FeatureCollection has no features")
    units: list[dict[str, Any]] = []
    shapes: dict[str, Any] = {}
    district: dict[str, Any] | None = None
    notes: list[str] = []
    for number, feature in enumerate(features):
        props = feature.get("properties") or {} if isinstance(feature, dict) else {}
        raw_name = _first(props, NAME_KEYS, name_key)
        if not raw_name:
            raise BoundaryError(f"features[{number}]: no name (looked for {name_key or ', '.join(NAME_KEYS)})")
        try:
            geometry = shape(feature.get("geometry"))
        except (AttributeError, TypeError, ValueError, shapely.errors.GEOSException) as exc:
            raise BoundaryError(f"features[{number}] ({raw_name}): not a geometry: {exc}") from exc
        if geometry.geom_type not in ("Polygon", "MultiPolygon"):
            # OpenStreetMap exports carry the admin centres (points) and borders (lines) too.
            notes.append(f"features[{number}] ({raw_name}): a {geometry.geom_type}, not a boundary; skipped")
            continue
        name, level, word = split_name(str(raw_name))
        level = OSM_LEVELS.get(str(props.get("admin_level", ""))) if level is None else level
        code = _first(props, CODE_KEYS, code_key)
        unit: dict[str, Any] = {"id": slug(name), "name": name, "level": level or "commune"}
        if code not in (None, ""):
            unit["code"] = str(code)
        if word:
            unit["aliases"] = [f"UBND {word} {name}"]
        if level is None:
            notes.append(f"{name}: no level word or admin_level; written as commune, check it")
        if unit["level"] == "district" and district is None:
            district = unit
            shapes["__district__"] = geometry
            continue
        units.append(unit)
        shapes[f"u{len(units) - 1}"] = geometry
    # Ids: the folded name; names that fold alike get their code (or their position) appended.
    taken: dict[str, int] = {}
    for unit in units:
        taken[unit["id"]] = taken.get(unit["id"], 0) + 1
    for index, unit in enumerate(units):
        if taken[unit["id"]] > 1:
            suffix = unit.get("code") or str(index + 1)
            notes.append(
                f"{unit['name']}: another unit's name folds to '{unit['id']}'; id '{unit['id']}-{slug(suffix)}'"
            )
            unit["id"] = f"{unit['id']}-{slug(suffix)}"
    if district is None:
        name = district_name or "Huyện"
        district = {
            "id": district_id or slug(name),
            "name": name,
            "level": "district",
            "aliases": [f"UBND huyện {name}"],
        }
        shapes["__district__"] = shapely.union_all([shapes[f"u{i}"] for i in range(len(units))])
        notes.append("no district outline in the file: the district's polygon is the union of its units")
    else:
        district["id"] = district_id or district["id"]
        district["name"] = district_name or district["name"]
    if district["id"] in {u["id"] for u in units}:
        district["id"] = f"{district['id']}-district"
    for unit in units:
        unit["parent"] = district["id"]
    out_features = [_feature(district["id"], shapes["__district__"], district)]
    out_features += [_feature(u["id"], shapes[f"u{i}"], u) for i, u in enumerate(units)]
    config = {
        "id": district["id"],
        "name": district["name"],
        "timezone": "Asia/Ho_Chi_Minh",
        "geometry_file": geometry_file,
        "units": [district, *units],
        "integrations": [
            {
                "id": "mot-cua",
                "name": "Hệ thống một cửa điện tử",
                "kind": "dossier",
                "unit": district["id"],
                "expected_interval_s": 86400,
            },
        ],  # fmt: skip
        "report_categories": [],
        "users": [],
    }
    return Skeleton(config=config, features=out_features, notes=notes)


def _feature(unit_id: str, geometry: Any, unit: dict[str, Any]) -> dict[str, Any]:
    props = {"unit_id": unit_id, "name": unit["name"]}
    if unit.get("code"):
        props["code"] = unit["code"]
    return {"type": "Feature", "properties": props, "geometry": mapping(geometry)}


def write_skeleton(boundaries: Path, out: Path, **options: Any) -> Skeleton:
    """Read ``boundaries``, write ``out`` (YAML) and its geometry file beside it; refuses to overwrite."""
    import yaml

    geometry_path = out.with_name(f"{out.stem}-units.geojson")
    for path in (out, geometry_path):
        if path.exists():
            raise BoundaryError(f"{path} exists; choose another --out (nothing was written)")
    try:
        collection = json.loads(boundaries.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BoundaryError(f"cannot read {boundaries}: {exc}") from exc
    skeleton = build_skeleton(collection, geometry_file=geometry_path.name, **options)
    header = (
        f"# District configuration made by `ioc district init --boundaries {boundaries.name}`.\n"
        "# Next: add cameras, radio_clusters, sensors, schools, clinics, report_categories and users, then\n"
        f"# `ioc config check {out.name}` and `ioc district apply {out.name}` (docs/configuration.md).\n"
    )
    text = yaml.safe_dump(skeleton.config, allow_unicode=True, sort_keys=False, width=120)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(header + text, encoding="utf-8")
    geometry_path.write_text(
        json.dumps({"type": "FeatureCollection", "features": skeleton.features}, ensure_ascii=False), encoding="utf-8"
    )
    return skeleton
