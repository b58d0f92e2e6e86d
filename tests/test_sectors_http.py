"""Sector figures over HTTP: per unit and day, with each figure's newest source event, stale sources
shown as "no recent data", drill-down rows, commune scoping, and mentions pushed over HTTP."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from fastapi.testclient import TestClient

from ioc.auth import repository
from ioc.auth.tokens import new_api_key
from ioc.clock import LOCAL_TZ
from ioc.district.bootstrap import load_district_into
from ioc.http.app import create_app
from ioc.sectors.store import upsert_attendance, upsert_clinic_day
from tests.staff import app_settings, token


@pytest.fixture(scope="module")
def app(database_factory: Callable[..., str], mqtt_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    url = database_factory(migrated=True)
    settings = app_settings(url, mqtt_url, var_dir=tmp_path_factory.mktemp("var"))
    load_district_into(url, settings, environ={})
    now = datetime.now(UTC)
    today = now.astimezone(LOCAL_TZ).date()
    with psycopg.connect(url) as conn:
        school = dict(day=today - timedelta(days=1), message_id="m")
        upsert_attendance(conn, school_id="truong-ptdtbt-th-tra-kot", unit_id="tra-kot", enrolled=355, present=300,
                          reported_at=now - timedelta(hours=1), **school)  # fmt: skip
        upsert_attendance(conn, school_id="truong-ptdtbt-thcs-tra-kot", unit_id="tra-kot", enrolled=285, present=250,
                          reported_at=now - timedelta(hours=1), **school)  # fmt: skip
        upsert_attendance(conn, school_id="truong-ptdtbt-thcs-tra-son", unit_id="tra-son", enrolled=310, present=300,
                          reported_at=now - timedelta(hours=2), **school)  # fmt: skip
        # This school last sent a register three days ago: longer than its expected interval (2 days).
        upsert_attendance(conn, school_id="truong-ptdtbt-th-tra-son", unit_id="tra-son", enrolled=195, present=190,
                          reported_at=now - timedelta(days=3), day=today - timedelta(days=3),
                          message_id="m")  # fmt: skip
        upsert_clinic_day(conn, clinic_id="tram-y-te-tra-kot", unit_id="tra-kot", day=today - timedelta(days=1),
                          visits=30, vaccinations=12, cases={"sot-xuat-huyet": 2, "cum": 0},
                          reported_at=now - timedelta(hours=3), message_id="c1")  # fmt: skip
    with TestClient(create_app(settings)) as client:
        yield client, url, today


def _auth(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


def test_attendance_per_unit_carries_its_newest_event_and_a_stale_school_shows_no_recent_data(app) -> None:
    client, url, today = app
    operator = token(client, url, "operator")
    period = {"from": (today - timedelta(days=6)).isoformat(), "to": today.isoformat()}
    body = client.get("/api/sectors/education", params=period, headers=_auth(operator)).json()
    kot = body["units"]["tra-kot"]
    assert kot["status"] == "ok" and kot["attendance_pct"] == 85.9  # 550 / 640, rounded half up
    assert kot["pupils_present"] == 550 and kot["school_days"] == 2 and kot["school_days_below_threshold"] == 0
    assert kot["newest_event_at"] is not None
    assert kot["days"] == [{"day": (today - timedelta(days=1)).isoformat(), "pupils_present": 550,
                            "pupils_enrolled": 640, "attendance_pct": 85.9,
                            "newest_event_at": kot["newest_event_at"]}]  # fmt: skip
    drill = {s["id"]: s for s in kot["sources"]}
    assert drill["truong-ptdtbt-th-tra-kot"]["days"][0]["attendance_pct"] == 84.5  # 300 / 355
    son = body["units"]["tra-son"]
    assert son["status"] == "no_recent_data" and son["attendance_pct"] is None
    assert son["stale_sources"] == ["truong-ptdtbt-th-tra-son"]
    assert len(son["days"]) == 2  # the rows stay listed for drill-down
    never = body["units"]["tra-ka"]
    assert never["status"] == "no_recent_data" and never["newest_event_at"] is None and never["days"] == []
    # For a period that ended three days ago, the school that reported up to its end is not stale.
    past = {"from": (today - timedelta(days=9)).isoformat(), "to": (today - timedelta(days=3)).isoformat()}
    son_then = client.get("/api/sectors/education", params=past, headers=_auth(operator)).json()["units"]["tra-son"]
    assert son_then["status"] == "ok" and son_then["attendance_pct"] == 97.4  # 190 / 195


def test_commune_officers_see_only_their_commune(app) -> None:
    client, url, today = app
    officer = token(client, url, "commune_officer", "tra-kot")
    period = {"from": (today - timedelta(days=6)).isoformat(), "to": today.isoformat()}
    for path in ("/api/sectors/education", "/api/sectors/health", "/api/sectors/mentions"):
        response = client.get(path, params=period, headers=_auth(officer))
        assert response.status_code == 200, response.text
        assert set(response.json()["units"]) <= {"tra-kot"}, path
        other = client.get(path, params={**period, "unit": "tra-son"}, headers=_auth(officer))
        assert other.status_code == 403 and "outside yours" in other.json()["detail"]
        assert client.get(path, params=period).status_code == 401
    backwards = client.get("/api/sectors/education", params={"from": today.isoformat(),
                           "to": (today - timedelta(days=1)).isoformat()}, headers=_auth(officer))  # fmt: skip
    assert backwards.status_code == 400 and "before" in backwards.json()["detail"]


def test_health_figures_name_the_diseases_and_list_each_clinic_day(app) -> None:
    client, url, today = app
    operator = token(client, url, "leader")
    period = {"from": (today - timedelta(days=6)).isoformat(), "to": today.isoformat(), "unit": ["tra-kot", "tra-ka"]}
    units = client.get("/api/sectors/health", params=period, headers=_auth(operator)).json()["units"]
    kot = units["tra-kot"]
    assert kot["status"] == "ok" and kot["visits"] == 30 and kot["vaccinations"] == 12
    assert kot["cases"] == {"sot-xuat-huyet": 2}  # a zero is not a case
    assert kot["diseases"]["sot-xuat-huyet"] == {"name": "Sốt xuất huyết", "name_en": "Dengue fever"}
    assert kot["sources"][0]["days"][0]["cases"] == {"sot-xuat-huyet": 2}
    assert units["tra-ka"]["status"] == "no_recent_data" and units["tra-ka"]["visits"] is None


def test_mentions_pushed_over_http_are_scored_tagged_placed_and_stored_once_per_url(app) -> None:
    client, url, today = app
    key = new_api_key()
    with psycopg.connect(url) as conn:
        repository.create_api_key(conn, name=f"tin-{secrets.token_hex(2)}", role="integration", unit_id=None, key=key)
    headers = {"X-API-Key": key}
    mention = {
        "source": "facebook.com/bactramy24h", "url": f"https://facebook.com/p/{secrets.token_hex(4)}",
        "published_at": datetime.now(UTC).isoformat(),
        "title": "Đường vào xã Trà Giáp sạt lở nghiêm trọng, xe không qua được",
        "text": "Bà con rất lo lắng vì học sinh không thể đến trường.",
    }  # fmt: skip
    first = client.post("/api/sectors/mentions", json=mention, headers=headers)
    assert first.status_code == 201, first.text
    out = first.json()
    assert out["sentiment"] == "negative" and out["unit_id"] == "tra-giap" and not out["duplicate"]
    assert {"giao-thong", "thien-tai"} <= set(out["tags"]) and out["phrases"]
    again = client.post("/api/sectors/mentions", json=mention, headers=headers)
    assert again.status_code == 200 and again.json()["duplicate"] is True
    officer = token(client, url, "commune_officer", "tra-giap")
    refused = client.post("/api/sectors/mentions", json={**mention, "url": "https://x.vn/1"}, headers=_auth(officer))
    assert refused.status_code == 403
    bad = client.post("/api/sectors/mentions", json={**mention, "url": "ftp://x"}, headers=headers)
    assert bad.status_code == 422 and "url" in bad.text
    unknown = client.post("/api/sectors/mentions", json={**mention, "url": "https://x.vn/2", "unit_id": "tra-xyz"},
                          headers=headers)  # fmt: skip
    assert unknown.status_code == 422 and "tra-xyz" in unknown.json()["detail"]
    assert count_mentions(url) == 1

    period = {"from": (today - timedelta(days=1)).isoformat(), "to": today.isoformat()}
    figures = client.get("/api/sectors/mentions", params=period, headers=_auth(officer)).json()
    giap = figures["units"]["tra-giap"]
    assert giap["negative"] == 1 and giap["total"] == 1 and giap["tags"]["giao-thong"] == 1
    assert figures["sources"][0]["id"] == "int-giam-sat-mang"  # the monitor's freshness for the tile
    listed = client.get("/api/sectors/mentions/list", params={**period, "sentiment": "negative"},
                        headers=_auth(officer)).json()  # fmt: skip
    assert [m["url"] for m in listed] == [mention["url"]]
    other = token(client, url, "commune_officer", "tra-kot")
    assert client.get("/api/sectors/mentions/list", params=period, headers=_auth(other)).json() == []


def count_mentions(url: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT count(*) FROM mentions").fetchone()[0]  # type: ignore[index]
