"""Sector configuration: the thresholds file and the schools and clinics of the district file are
checked, and a mistake is reported with its path."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from ioc.district.loader import check_district, load_district
from ioc.sectors.thresholds import SectorThresholds, load_thresholds

CONFIG = Path(__file__).resolve().parent.parent / "config"


def test_the_shipped_thresholds_load_and_every_leaf_unit_has_a_school_and_a_clinic() -> None:
    thresholds = load_thresholds(CONFIG / "sector-thresholds.yaml")
    assert thresholds.education.attendance_min_pct == 80
    assert thresholds.health.cluster_rule("soi") == (2, 21, "severe")
    assert thresholds.health.cluster_rule("benh-la") is None  # not notifiable: never alerted
    assert thresholds.health.disease("tay-chan-mieng").name == "Tay chân miệng"  # type: ignore[union-attr]
    district = load_district(CONFIG / "district.yaml")
    leaves = {u.id for u in district.leaf_units()}
    assert leaves <= {s.unit for s in district.schools}
    assert leaves <= {c.unit for c in district.clinics}
    assert any(i.kind == "mention" for i in district.integrations)


def test_a_misspelt_threshold_is_an_error_with_its_path(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text("education:\n  attendance_min_pc: 70\nhealth:\n  default_cluster_days: 0\n", encoding="utf-8")
    with pytest.raises(ValidationError) as raised:
        load_thresholds(path)
    text = str(raised.value)
    assert "education.attendance_min_pc" in text and "health.default_cluster_days" in text
    assert SectorThresholds().mentions.spike_min_negative == 5


def test_a_school_in_an_unknown_unit_or_with_a_taken_id_is_reported() -> None:
    data = yaml.safe_load((CONFIG / "district.yaml").read_text(encoding="utf-8"))
    data["schools"][0]["unit"] = "tra-kott"
    data["clinics"][1]["id"] = data["cameras"][0]["id"]
    errors = [str(e) for e in check_district(data, base_dir=CONFIG)]
    assert any("schools[0].unit: unknown unit 'tra-kott'" in e for e in errors), errors
    assert any(f"clinics[1].id: duplicate id '{data['cameras'][0]['id']}'" in e for e in errors), errors
