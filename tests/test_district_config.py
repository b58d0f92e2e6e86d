"""`ioc config check`: the sample passes; each kind of mistake is reported at its exact path."""

from __future__ import annotations

import copy
import json
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from shapely.geometry import mapping, shape
from typer.testing import CliRunner

from ioc.cli import exit_codes
from ioc.cli.main import app
from ioc.district.loader import ConfigError, DistrictConfigError, check_district, load_district
from ioc.district.synth import SEEDS

CONFIG = Path(__file__).resolve().parent.parent / "config"
SAMPLE = CONFIG / "district.yaml"
NAMES = ["Trà My", "Trà Sơn", "Trà Kót", "Trà Nú", "Trà Đông", "Trà Dương", "Trà Giang", "Trà Bui", "Trà Đốc",
         "Trà Tân", "Trà Giác", "Trà Giáp", "Trà Ka"]  # fmt: skip


@cache
def _sample_text() -> str:
    return SAMPLE.read_text(encoding="utf-8")


def sample() -> dict[str, Any]:
    """A fresh copy of the sample document, to break in one place."""
    return yaml.safe_load(_sample_text())


def cell(unit_id: str) -> Any:
    """The shapely polygon of a unit in the sample geometry file."""
    collection = json.loads((CONFIG / "district-units.geojson").read_text(encoding="utf-8"))
    return next(shape(f["geometry"]) for f in collection["features"] if f["properties"]["unit_id"] == unit_id)


def errors_of(data: dict[str, Any]) -> list[ConfigError]:
    return check_district(data, base_dir=CONFIG)


def index_of(data: dict[str, Any], section: str, item_id: str) -> int:
    return next(i for i, item in enumerate(data[section]) if item["id"] == item_id)


# -- the sample -----------------------------------------------------------------------------------


def test_sample_district_is_valid_with_13_named_communes_and_synthetic_polygons() -> None:
    assert check_district(SAMPLE) == []
    district = load_district(SAMPLE)
    leaves = district.leaf_units()
    assert sorted(u.name for u in leaves) == sorted(NAMES)
    assert all(u.polygon is not None and u.properties.get("synthetic_geometry") for u in leaves)
    assert len(district.cameras) >= 25 and len(district.sensors) >= 8
    assert len(district.radio_clusters) == 5 * len(leaves)  # five loudspeaker clusters in every unit
    assert {c.unit for c in district.radio_clusters} == {u.id for u in leaves}
    assert {u.unit for u in district.users if u.role == "commune_officer"} == {u.id for u in leaves}
    assert all(u.password_env for u in district.users)


def test_sample_polygons_cover_the_box_without_overlap() -> None:
    cells = [cell(unit_id) for unit_id in SEEDS]
    total = sum(c.area for c in cells)
    assert total == pytest.approx(0.4 * 0.4, abs=1e-9)  # the cells tile lon 108.0–108.4 × lat 15.1–15.5
    for i, a in enumerate(cells):
        for b in cells[i + 1 :]:
            assert a.intersection(b).area < 1e-12


def test_sample_geometry_file_is_exactly_what_the_generator_makes() -> None:
    from ioc.district import synth

    expected = synth.dumps(synth.feature_collection())
    assert (CONFIG / "district-units.geojson").read_text(encoding="utf-8") == expected, (
        "regenerate: python -m ioc.district.synth > config/district-units.geojson"
    )


def test_names_typed_decomposed_are_stored_nfc() -> None:
    data = sample()
    data["units"][4]["name"] = "Tra\u0300 Ko\u0301t"
    assert errors_of(data) == []
    from ioc.district.loader import validate_district

    district, _ = validate_district(data, base_dir=CONFIG)
    assert district is not None and district.units[4].name == "Trà Kót"


def test_a_merged_unit_and_its_successor_may_cover_the_same_ground_at_different_times() -> None:
    data = sample()
    merged = mapping(cell("tra-son").union(cell("tra-kot")))
    data["units"].append(
        {"id": "tra-son-moi", "name": "Trà Sơn", "level": "commune", "parent": "bac-tra-my",
         "valid_from": date(2025, 7, 1), "polygon": {"type": merged["type"], "coordinates": merged["coordinates"]}}
    )  # fmt: skip
    for unit in data["units"]:
        if unit["id"] in ("tra-son", "tra-kot"):
            unit.update(valid_to=date(2025, 7, 1), successor="tra-son-moi")
    for section in ("cameras", "radio_clusters", "sensors"):
        for item in data[section]:
            if item["unit"] in ("tra-son", "tra-kot"):
                item["unit"] = "tra-son-moi"
    assert errors_of(data) == []


# -- broken variants: each names its path ---------------------------------------------------------


def test_overlapping_units_name_the_other_unit() -> None:
    data = sample()
    nu = index_of(data, "units", "tra-nu")
    grown = mapping(cell("tra-nu").union(cell("tra-kot").buffer(-0.01)))  # into Trà Kót only
    data["units"][nu]["polygon"] = {"type": grown["type"], "coordinates": grown["coordinates"]}
    [error] = errors_of(data)
    assert error.path == f"units[{nu}].polygon"
    assert error.message.startswith("overlaps Trà Kót")


def test_unknown_unit_references_suggest_the_close_id() -> None:
    data = sample()
    data["cameras"][0]["unit"] = "tra-kott"
    data["units"][3]["parent"] = "bac-tra-mi"
    data["users"][-1]["unit"] = "nowhere"
    data["integrations"][1]["unit"] = "quang-ngai"
    assert [str(e) for e in errors_of(data)] == [
        "units[3].parent: unknown unit 'bac-tra-mi' (did you mean 'bac-tra-my'?)",
        "cameras[0].unit: unknown unit 'tra-kott' (did you mean 'tra-kot'?)",
        "integrations[1].unit: unknown unit 'quang-ngai' (did you mean 'quang-nam'?)",
        f"users[{len(data['users']) - 1}].unit: unknown unit 'nowhere'",
    ]


def test_duplicate_ids_point_at_the_second_occurrence() -> None:
    data = sample()
    data["cameras"][3]["id"] = data["cameras"][1]["id"]
    data["radio_clusters"][1]["id"] = data["sensors"][0]["id"]  # one id space for devices
    data["units"][5]["id"] = "tra-kot"
    data["integrations"][0]["id"] = data["cameras"][0]["id"]  # integrations are devices too
    paths = {e.path: e.message for e in errors_of(data)}
    assert paths["integrations[0].id"] == f"duplicate id '{data['cameras'][0]['id']}' (first at cameras[0])"
    assert paths["cameras[3].id"] == f"duplicate id '{data['cameras'][1]['id']}' (first at cameras[1])"
    assert paths["sensors[0].id"].startswith("duplicate id")  # radio clusters are listed before sensors
    assert paths["units[5].id"] == "duplicate id 'tra-kot' (first at units[4])"


def test_self_intersecting_polygon_is_invalid_geometry() -> None:
    data = sample()
    bowtie = [[108.30, 15.30], [108.36, 15.36], [108.36, 15.30], [108.30, 15.36], [108.30, 15.30]]
    data["units"][2]["polygon"] = {"type": "Polygon", "coordinates": [bowtie]}
    [error] = errors_of(data)
    assert error.path == "units[2].polygon"
    assert error.message.startswith("invalid geometry: Self-intersection")


def test_polygon_from_the_geometry_file_says_so(tmp_path: Path) -> None:
    collection = json.loads((CONFIG / "district-units.geojson").read_text(encoding="utf-8"))
    collection["features"][0]["geometry"]["coordinates"][0][1] = [108.1, 14.0]  # a spike through neighbours
    collection["features"].append({"type": "Feature", "properties": {"unit_id": "tra-xyz"}, "geometry": None})
    (tmp_path / "district-units.geojson").write_text(json.dumps(collection), encoding="utf-8")
    (tmp_path / "district.yaml").write_text(_sample_text(), encoding="utf-8")
    errors = check_district(tmp_path / "district.yaml")
    last = len(collection["features"]) - 1
    assert f"geometry_file.features[{last}].properties.unit_id" in {e.path for e in errors}
    assert any(e.path == "units[2].polygon" and "district-units.geojson" in e.message for e in errors)


def test_device_outside_its_unit_says_where_it_is() -> None:
    data = sample()
    lon, lat = SEEDS["tra-kot"]
    data["cameras"][0]["position"] = {"lat": lat, "lon": lon}
    data["radio_clusters"][0]["position"] = {"lat": 15.0, "lon": 108.2}
    assert [str(e) for e in errors_of(data)] == [
        "cameras[0].position: outside its unit Trà My (it lies in Trà Kót)",
        "radio_clusters[0].position: outside its unit Trà My (it lies in no unit)",
    ]


def test_schema_errors_name_the_field_even_inside_rules() -> None:
    data = sample()
    data["sensors"][0]["position"]["lat"] = "north"
    data["cameras"][2]["zones"][0]["colour"] = "red"
    crowd = next(i for i, r in enumerate(data["cameras"][0]["rules"]) if r["kind"] == "crowd")
    data["cameras"][0]["rules"][crowd]["min_people"] = "many"
    data["users"][0]["role"] = "superuser"
    del data["report_categories"][0]["sla_hours"]
    paths = {e.path: e.message for e in errors_of(data)}
    assert paths["sensors[0].position.lat"].startswith("Input should be a valid number")
    assert paths["cameras[2].zones[0].colour"] == "unknown key"
    assert paths[f"cameras[0].rules[{crowd}].min_people"].startswith("Input should be a valid integer")
    assert paths["users[0].role"].startswith("Input should be")
    assert paths["report_categories[0].sla_hours"] == "required"


def test_a_unit_with_a_schema_error_is_not_also_reported_as_unknown_everywhere() -> None:
    data = sample()
    data["units"][4]["level"] = 5
    data["units"][5]["id"] = "Trà Nú"
    errors = errors_of(data)
    assert [str(e) for e in errors[1:3]] == [
        "units[4].level: Input should be a valid string",
        "units[5].id: 'Trà Nú' is not an id: use lower-case ASCII words joined by '-', e.g. 'tra-kot'",
    ]
    # Renaming an id does break the references to the old one, and only those.
    assert [e.path for e in errors[:1] + errors[3:]] == [
        "geometry_file.features[3].properties.unit_id",
        *_paths_of_unit(data, "tra-nu"),
    ]
    assert all(e.message.startswith("unknown unit 'tra-nu'") for e in errors[:1] + errors[3:])


def _paths_of_unit(data: dict[str, Any], unit_id: str) -> list[str]:
    return [
        f"{section}[{i}].unit"
        for section in ("cameras", "radio_clusters", "sensors", "users")
        for i, item in enumerate(data[section])
        if item.get("unit") == unit_id
    ]


def test_unquoted_time_is_refused_rather_than_read_as_base_60() -> None:
    data = sample()
    data["cameras"][0]["rules"][1]["schedule"] = [{"start": 1110, "end": "05:00"}]  # YAML 1.1 reads 18:30 so
    [error] = errors_of(data)
    assert error.path == "cameras[0].rules[1].schedule[0].start"
    assert "quotes" in error.message


def test_camera_zones_and_rules_are_checked_against_the_frame() -> None:
    data = sample()
    camera = data["cameras"][5]  # a school camera: zones school-yard and gate
    camera["zones"][1]["polygon"] = [[0, 0], [100, 100], [100, 0], [0, 100]]
    camera["zones"][0]["polygon"] = [[0, 0], [5000, 0], [5000, 10], [0, 10]]
    camera["rules"][0]["zone"] = "playground"
    assert [str(e) for e in errors_of(data)] == [
        "cameras[5].zones[0].polygon: outside the 768×576 frame",
        "cameras[5].zones[1].polygon: invalid zone: Self-intersection[50 50]",
        "cameras[5].rules[0].zone: unknown zone 'playground'",
    ]


def test_cycles_in_the_unit_tree_are_reported_once() -> None:
    data = sample()
    data["units"][0]["parent"] = "tra-my"
    errors = errors_of(data)
    assert [e.path for e in errors] == ["units[0].parent"]
    assert errors[0].message == "cycle: quang-nam > tra-my > bac-tra-my > quang-nam"


def test_every_error_of_a_file_is_reported_in_one_run() -> None:
    data = sample()
    data["cameras"][0]["unit"] = "tra-kott"
    data["sensors"][1]["position"]["lon"] = "east"
    data["cameras"][3]["id"] = data["cameras"][1]["id"]
    assert {e.path for e in errors_of(data)} == {"cameras[0].unit", "sensors[1].position.lon", "cameras[3].id"}


def test_yaml_syntax_error_gives_the_line(tmp_path: Path) -> None:
    broken = tmp_path / "district.yaml"
    broken.write_text("id: x\nname: X\nunits:\n  - id: a\n    name: [unclosed\n", encoding="utf-8")
    [error] = check_district(broken)
    assert error.path == "line 6"
    assert error.message.startswith("YAML syntax")


def test_duplicate_yaml_keys_are_errors_not_silently_overwritten(tmp_path: Path) -> None:
    broken = tmp_path / "district.yaml"
    broken.write_text("id: x\nname: X\nname: Y\nunits: []\n", encoding="utf-8")
    [error] = check_district(broken)
    assert error.path == "line 3"
    assert "duplicate key 'name'" in error.message


def test_load_district_raises_with_every_error() -> None:
    with pytest.raises(DistrictConfigError) as caught:
        load_district(CONFIG / "does-not-exist.yaml")
    assert "cannot read" in str(caught.value.errors[0])


# -- the command ----------------------------------------------------------------------------------

runner = CliRunner()


def test_cli_check_sample_exits_0_with_a_summary() -> None:
    result = runner.invoke(app, ["config", "check", str(SAMPLE)])
    assert result.exit_code == exit_codes.OK, result.output
    assert "OK" in result.output and "31 cameras" in result.output


def test_cli_check_broken_file_prints_paths_and_exits_1(tmp_path: Path) -> None:
    data = sample()
    data["cameras"][0]["unit"] = "tra-kott"
    data["units"][2]["polygon"] = {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]}
    data["geometry_file"] = str(CONFIG / "district-units.geojson")
    broken = tmp_path / "district.yaml"
    broken.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    result = runner.invoke(app, ["config", "check", str(broken)])
    assert result.exit_code == exit_codes.FAILED
    assert "cameras[0].unit: unknown unit 'tra-kott'" in result.output
    assert "units[2].polygon: invalid geometry" in result.output
    assert "INVALID: 2 error(s)" in result.output


def test_cli_check_missing_file_exits_3(tmp_path: Path) -> None:
    result = runner.invoke(app, ["config", "check", str(tmp_path / "nope.yaml")])
    assert result.exit_code == exit_codes.UNAVAILABLE


def test_cli_show_units_prints_the_tree() -> None:
    result = runner.invoke(app, ["config", "show-units", str(SAMPLE)])
    assert result.exit_code == 0, result.output
    assert "Bắc Trà My" in result.output and "Trà Kót" in result.output


def test_sample_is_not_changed_by_checks() -> None:
    data = sample()
    before = copy.deepcopy(data)
    errors_of(data)
    assert data == before
