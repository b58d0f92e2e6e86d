"""Every dossier figure is explained, and units are found by whatever a sheet calls them (#20)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ioc.district.aliases import UnitResolver, UnknownUnit
from ioc.district.boundaries import build_skeleton, split_name
from ioc.kpi.definitions import DEFINITIONS
from ioc.kpi.figures import FIGURES, RATES, compare, online_level_kind

DATA = Path(__file__).parent / "data"


def test_every_figure_and_rate_has_a_label_a_definition_and_a_formula() -> None:
    assert set(DEFINITIONS) == set(FIGURES) | set(RATES)
    assert all(all(part.strip() for part in text) for text in DEFINITIONS.values())


def test_equal_rates_share_a_rank_and_offices_are_ranked_apart() -> None:
    figures = {u: dict.fromkeys(RATES) | {"on_time_rate": r}
               for u, r in (("a", 90.0), ("b", 90.0), ("c", 80.0), ("d", None), ("office", 50.0))}  # fmt: skip
    groups = {"a": "commune", "b": "commune", "c": "commune", "d": "commune", "office": "office"}
    ranks = {u: f["rank"] for u, f in compare(figures, {}, groups).items()}
    assert ranks == {"a": 1, "b": 1, "c": 3, "d": None, "office": 1}


def test_units_resolve_by_id_code_name_and_agency_name_and_ambiguity_is_refused() -> None:
    resolver = UnitResolver()
    resolver.add("tra-don-20938", "Trà Dơn", "20938", ["UBND xã Trà Dơn"])
    resolver.add("tra-don-20956", "Trà Don", "20956", ["UBND xã Trà Don"])
    resolver.add("nam-tra-my", "Nam Trà My", "516", ["UBND huyện Nam Trà My"])
    assert resolver.resolve("20938") == "tra-don-20938"
    assert resolver.resolve("UBND xã Trà Dơn") == "tra-don-20938"
    assert resolver.resolve("Trà Don") == "tra-don-20956"
    assert resolver.resolve("Bộ phận một cửa huyện Nam Trà My") == "nam-tra-my"
    with pytest.raises(UnknownUnit, match="several units"):
        resolver.resolve("Xã Tra Don")  # without diacritics it could be either
    with pytest.raises(UnknownUnit, match="not a unit"):
        resolver.resolve("Xã Không Có")


def test_a_boundary_file_becomes_units_with_codes_aliases_and_distinct_ids() -> None:
    skeleton = build_skeleton(json.loads((DATA / "nam-tra-my-communes.geojson").read_text(encoding="utf-8")),
                              district_name="Nam Trà My")  # fmt: skip
    units = {u["id"]: u for u in skeleton.config["units"]}
    assert len(units) == 11 and units["nam-tra-my"]["level"] == "district"
    assert units["tra-don-20938"]["name"] == "Trà Dơn" and units["tra-don-20956"]["name"] == "Trà Don"
    assert units["tra-leng"] == {"id": "tra-leng", "name": "Trà Leng", "level": "commune", "code": "20935",
                                 "aliases": ["UBND xã Trà Leng"], "parent": "nam-tra-my"}  # fmt: skip
    assert split_name("Thị trấn Trà My") == ("Trà My", "town", "thị trấn")
    assert {f["properties"]["unit_id"] for f in skeleton.features} == set(units)


@pytest.mark.parametrize(("level", "kind"), [("Toàn trình", "full"), ("Một phần", "partial"), ("Mức độ 4", "full"),
                                             ("2", "none"), ("", None), (None, None)])  # fmt: skip
def test_online_levels(level: str | None, kind: str | None) -> None:
    assert online_level_kind(level) == kind
