"""Points are attributed to the leaf unit whose polygon holds them."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from shapely.geometry import box

from ioc.district.loader import load_district
from ioc.district.synth import SEEDS
from ioc.geo import UnitLocator

ROOT = Path(__file__).resolve().parent.parent


def test_unit_at_finds_the_polygon_holding_the_point() -> None:
    locator = UnitLocator({"west": box(0, 0, 1, 1), "east": box(1, 0, 2, 1)})
    assert locator.unit_at(0.5, 0.5) == "west"
    assert locator.unit_at(1.5, 0.5) == "east"
    assert locator.unit_at(3, 3) is None


def test_a_point_on_a_shared_border_goes_to_the_first_unit_every_time() -> None:
    locator = UnitLocator({"west": box(0, 0, 1, 1), "east": box(1, 0, 2, 1)})
    assert {locator.unit_at(1.0, 0.5) for _ in range(5)} == {"west"}


def test_sample_district_locates_each_seed_point_in_its_commune() -> None:
    district = load_district(ROOT / "config" / "district.yaml")
    locator = UnitLocator.from_district(district)
    assert len(locator) == 13  # leaf units only: not the province or the district
    for unit_id, (lon, lat) in SEEDS.items():
        assert locator.unit_at(lon, lat) == unit_id
    assert locator.unit_at(107.5, 15.3) is None


def test_locator_for_a_date_uses_the_units_of_that_date() -> None:
    district = load_district(ROOT / "config" / "district.yaml")
    merged = district.model_copy(deep=True)
    kot = merged.unit("tra-kot")
    assert kot is not None
    kot.valid_to = date(2025, 7, 1)
    kot.successor = "tra-son"
    assert UnitLocator.from_district(merged, on=date(2025, 1, 1)).unit_at(*SEEDS["tra-kot"]) == "tra-kot"
    assert UnitLocator.from_district(merged).unit_at(*SEEDS["tra-kot"]) is None
