"""Loading the district into the database: idempotent, NFC names, folded search, env-only passwords, merges."""

from __future__ import annotations

import logging
import unicodedata
from collections.abc import Callable
from datetime import date
from pathlib import Path

import psycopg
import pytest
import yaml

from ioc.auth.passwords import verify_password
from ioc.district.bootstrap import load_district_into
from ioc.settings import Settings

CONFIG = Path(__file__).resolve().parent.parent / "config"
ADMIN_PASSWORD = "correct horse battery staple"


def _counts(url: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        return {
            table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # type: ignore[index]
            for table in ("units", "unit_names", "devices", "users")
        }


@pytest.fixture(scope="module")
def seeded(database_factory: Callable[..., str]) -> str:
    """A fresh database with the sample district loaded twice."""
    url = database_factory()
    settings = Settings(district_config=CONFIG / "district.yaml")
    first = load_district_into(url, settings, {"IOC_SEED_PASSWORD_ADMIN": ADMIN_PASSWORD})
    assert first.units == 15 and first.units_changed >= 15
    return url


def test_loading_twice_changes_nothing(seeded: str) -> None:
    before = _counts(seeded)
    settings = Settings(district_config=CONFIG / "district.yaml")
    summary = load_district_into(seeded, settings, {"IOC_SEED_PASSWORD_ADMIN": ADMIN_PASSWORD})
    assert (summary.units_changed, summary.devices_changed, summary.users_changed) == (0, 0, 0)
    assert _counts(seeded) == before
    assert before["units"] == 15 and before["devices"] == 31 + 65 + 11 + 4 + 19 + 13 and before["users"] == 17


def test_unit_names_are_nfc_and_searchable_without_diacritics(seeded: str) -> None:
    with psycopg.connect(seeded) as conn:
        name, level, parent = conn.execute(
            "SELECT name, level, parent_id FROM units WHERE name_search = %s", ("tra doc",)
        ).fetchone()  # type: ignore[misc]
    assert name == "Trà Đốc" and unicodedata.is_normalized("NFC", name)
    assert (level, parent) == ("commune", "bac-tra-my")


def test_devices_carry_kind_unit_position_and_their_configuration(seeded: str) -> None:
    with psycopg.connect(seeded) as conn:
        kinds = dict(conn.execute("SELECT kind, count(*) FROM devices GROUP BY kind").fetchall())
        unit, lat, props = conn.execute(
            "SELECT unit_id, lat, properties FROM devices WHERE id = 'cam-tra-my-school-01'"
        ).fetchone()  # type: ignore[misc]
        horns = conn.execute("SELECT properties->>'horns' FROM devices WHERE id = 'radio-tra-kot-1'").fetchone()
    assert kinds == {"camera": 31, "radio": 65, "sensor": 11, "report": 2, "dossier": 1, "mention": 1,
                     "school": 19, "clinic": 13}
    assert unit == "tra-my" and 15.1 < lat < 15.5
    assert props["stream_url"].startswith("file:") and props["zones"][0]["kind"] == "school_yard"
    assert {r["kind"] for r in props["rules"]} >= {"intrusion", "tamper"}
    assert horns == ("4",)  # the loudspeaker cluster (one receiver box) is the device


def test_seed_passwords_come_only_from_the_environment(seeded: str, caplog: pytest.LogCaptureFixture) -> None:
    with psycopg.connect(seeded) as conn:
        rows = dict(conn.execute("SELECT username, password_hash FROM users").fetchall())
        officer = conn.execute("SELECT role, unit_id FROM users WHERE username = 'cb-tra-kot'").fetchone()
    assert verify_password(rows["admin"], ADMIN_PASSWORD)
    assert rows["operator1"] is None  # IOC_SEED_PASSWORD_OPERATOR1 unset: exists, cannot log in
    assert officer == ("commune_officer", "tra-kot")

    settings = Settings(district_config=CONFIG / "district.yaml")
    with caplog.at_level(logging.WARNING, logger="ioc.district.seed"):
        summary = load_district_into(seeded, settings, {"IOC_SEED_PASSWORD_ADMIN": "another password 123"})
    assert "operator1 (IOC_SEED_PASSWORD_OPERATOR1)" in caplog.text
    assert "admin" not in summary.users_without_password
    with psycopg.connect(seeded) as conn:
        admin_hash = conn.execute("SELECT password_hash FROM users WHERE username = 'admin'").fetchone()[0]  # type: ignore[index]
    assert verify_password(admin_hash, ADMIN_PASSWORD)  # an existing password is never overwritten


def test_merged_unit_keeps_its_row_and_rolls_up_to_its_successor(
    database_factory: Callable[..., str], tmp_path: Path
) -> None:
    data = yaml.safe_load((CONFIG / "district.yaml").read_text(encoding="utf-8"))
    data["geometry_file"] = str(CONFIG / "district-units.geojson")
    data["units"].append(
        {"id": "tra-son-moi", "name": "Trà Sơn", "level": "commune", "parent": "bac-tra-my",
         "valid_from": date(2025, 7, 1), "former_names": [{"name": "Trà Sơn cũ", "valid_to": date(2025, 7, 1)}]}
    )  # fmt: skip
    for unit in data["units"]:
        if unit["id"] in ("tra-son", "tra-kot"):
            unit.update(valid_to=date(2025, 7, 1), successor="tra-son-moi")
    for section in ("cameras", "radio_clusters", "sensors"):
        for item in data[section]:
            if item["unit"] in ("tra-son", "tra-kot"):
                item["unit"] = "tra-son-moi"
    path = tmp_path / "district.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")

    url = database_factory()
    load_district_into(url, Settings(district_config=path), {})
    load_district_into(url, Settings(district_config=path), {})
    with psycopg.connect(url) as conn:
        rollups = conn.execute(
            "SELECT id, unit_rollup(id), valid_to FROM units WHERE id IN ('tra-kot', 'tra-son', 'tra-my') ORDER BY id"
        ).fetchall()
        names = conn.execute("SELECT unit_id, name FROM unit_names").fetchall()
        moved = conn.execute("SELECT count(*) FROM devices WHERE unit_id = 'tra-son-moi'").fetchone()
    assert rollups == [
        ("tra-kot", "tra-son-moi", date(2025, 7, 1)),
        ("tra-my", "tra-my", None),
        ("tra-son", "tra-son-moi", date(2025, 7, 1)),
    ]
    assert names == [("tra-son-moi", "Trà Sơn cũ")]
    assert moved is not None and moved[0] > 0
