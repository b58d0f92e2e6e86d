"""The HTTP API around the alerts: units as GeoJSON, devices and evidence within a unit, search
with or without diacritics, CAP refusals with reasons, security headers and CORS."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient
from staff import app_settings, token
from test_cap import MALFORMED

from ioc.alerts.model import AlertDraft, Severity
from ioc.alerts.store import raise_alerts
from ioc.district.bootstrap import load_district_into
from ioc.http.app import create_app

ROOT = Path(__file__).resolve().parent.parent
CAMERA = "cam-tra-kot-school-01"


@pytest.fixture(scope="module")
def api(database_factory: Callable[..., str], mqtt_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    url = database_factory(migrated=True)
    var = tmp_path_factory.mktemp("var")
    settings = app_settings(url, mqtt_url, var_dir=var, cors_origins=["https://tuong.example.vn"])
    load_district_into(url, settings, environ={})
    with TestClient(create_app(settings)) as client:
        yield client, url, var


_TOKENS: dict[tuple[str, str | None], str] = {}


def _bearer(client: TestClient, url: str, role: str, unit: str | None = None) -> dict[str, str]:
    """One login per (role, unit): logins are rate-limited per address, as they should be."""
    if (role, unit) not in _TOKENS:
        _TOKENS[(role, unit)] = token(client, url, role, unit)
    return {"Authorization": f"Bearer {_TOKENS[(role, unit)]}"}


def test_units_are_public_geojson_with_vietnamese_names(api) -> None:
    client, _, _ = api
    response = client.get("/api/units")
    assert response.status_code == 200
    features = {f["id"]: f for f in response.json()["features"]}
    assert features["tra-kot"]["properties"]["name"] == "Trà Kót"
    assert features["tra-kot"]["geometry"]["type"] == "Polygon"
    assert len([f for f in features.values() if f["properties"]["level"] == "commune" or f["id"] == "tra-my"]) == 13


def test_devices_are_scoped_to_the_officers_unit(api) -> None:
    client, url, _ = api
    everything = client.get("/api/devices", headers=_bearer(client, url, "operator")).json()
    own = client.get("/api/devices", headers=_bearer(client, url, "commune_officer", "tra-kot")).json()
    assert {d["unit_id"] for d in everything} > {"tra-kot"}
    assert own and {d["unit_id"] for d in own} == {"tra-kot"}
    assert client.get("/api/devices").status_code == 401


def test_evidence_images_are_served_only_within_the_unit(api) -> None:
    client, url, var = api
    digest = secrets.token_hex(32)
    ref = f"evidence/{CAMERA}/{digest[:2]}/{digest}.jpg"
    (var / "media" / ref).parent.mkdir(parents=True)
    (var / "media" / ref).write_bytes(b"\xff\xd8\xff\xe0jpeg\xff\xd9")
    own = client.get(f"/api/media/{ref}", headers=_bearer(client, url, "commune_officer", "tra-kot"))
    assert own.status_code == 200 and own.headers["content-type"] == "image/jpeg"
    other = client.get(f"/api/media/{ref}", headers=_bearer(client, url, "commune_officer", "tra-ka"))
    assert other.status_code == 404
    traversal = client.get("/api/media/evidence/..%2F..%2Fsecret_key", headers=_bearer(client, url, "admin"))
    assert traversal.status_code == 404


@pytest.mark.parametrize("query", ["tra kot", "Trà Kót", "TRÀ KÓT", "xam nhap"])
def test_alert_search_works_with_and_without_diacritics(api, query: str) -> None:
    client, url, _ = api
    with psycopg.connect(url) as conn:
        key = f"search-{secrets.token_hex(3)}"
        draft = AlertDraft(kind="camera.intrusion", severity=Severity.SEVERE, title="Xâm nhập trường Trà Kót",
                           at=datetime.now(UTC), unit_id="tra-kot", dedup_key=key)  # fmt: skip
        alert = raise_alerts(conn, [draft], now=datetime.now(UTC))[0]
    found = client.get("/api/alerts", params={"q": query}, headers=_bearer(client, url, "operator")).json()
    assert alert.id in {a["id"] for a in found["items"]}
    none = client.get("/api/alerts", params={"q": "trà ka không có"}, headers=_bearer(client, url, "operator"))
    assert alert.id not in {a["id"] for a in none.json()["items"]}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_cap_gets_a_400_problem_with_the_reason(api, name: str) -> None:
    client, url, _ = api
    data, reason = MALFORMED[name]
    response = client.post("/api/cap", content=data, headers={**_bearer(client, url, "operator"),
                                                               "Content-Type": "application/cap+xml"})  # fmt: skip
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/problem+json")
    assert reason in response.json()["detail"]


def test_security_headers_and_cors_for_listed_origins_only(api) -> None:
    client, _, _ = api
    response = client.get("/api/units", headers={"Origin": "https://tuong.example.vn"})
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert response.headers["access-control-allow-origin"] == "https://tuong.example.vn"
    stranger = client.get("/api/units", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in stranger.headers


def test_live_camera_frame_and_mjpeg_within_the_unit(api) -> None:
    client, url, var = api
    live = var / "media" / "live"
    live.mkdir(parents=True, exist_ok=True)
    (live / f"{CAMERA}.jpg").write_bytes(b"\xff\xd8\xff\xe0frame\xff\xd9")
    own = _bearer(client, url, "commune_officer", "tra-kot")["Authorization"].split()[1]
    other = _bearer(client, url, "commune_officer", "tra-ka")["Authorization"].split()[1]
    ok = client.get(f"/api/cameras/{CAMERA}/latest.jpg", params={"access_token": own})
    assert ok.status_code == 200 and ok.content.startswith(b"\xff\xd8")
    assert client.get(f"/api/cameras/{CAMERA}/latest.jpg", params={"access_token": other}).status_code == 404
    assert client.get(f"/api/cameras/{CAMERA}/latest.jpg").status_code == 401
    with client.stream("GET", f"/api/cameras/{CAMERA}/mjpeg", params={"access_token": own}) as stream:
        assert stream.headers["content-type"].startswith("multipart/x-mixed-replace")
        received = b""
        for chunk in stream.iter_bytes():
            received += chunk
            if b"\xff\xd9" in received:
                break
    assert received.startswith(b"--frame\r\nContent-Type: image/jpeg")


def test_dossier_kpis_respect_the_officers_units(api) -> None:
    client, url, _ = api
    params = {"from": "2026-10-01", "to": "2026-10-31"}
    operator = client.get("/api/kpi/dossiers", params=params, headers=_bearer(client, url, "operator"))
    assert operator.status_code == 200 and operator.json()["from"] == "2026-10-01"
    assert operator.json()["source_stale"] is True  # no event from the one-stop system yet: "no recent data"
    with psycopg.connect(url) as conn:
        conn.execute("INSERT INTO dossier_events (time, dossier_id, unit_id, event, message_id, payload)"
                     " VALUES (now(), 'F-1', 'tra-kot', 'received', 'F-1-received', '{}')")  # fmt: skip
    fresh = client.get("/api/kpi/dossiers", params=params, headers=_bearer(client, url, "operator")).json()
    assert fresh["source_stale"] is False and fresh["source_newest_event_hour"] is not None
    officer = _bearer(client, url, "commune_officer", "tra-kot")
    assert client.get("/api/kpi/dossiers", params={**params, "unit": "tra-ka"}, headers=officer).status_code == 403
    assert client.get("/api/kpi/dossiers", params=params, headers=officer).status_code == 200
    assert client.get("/api/kpi/dossiers", params={"from": "2026-10-31", "to": "2026-10-01"},
                      headers=officer).status_code == 400  # fmt: skip


def test_dossier_drill_down_and_due_list(api) -> None:
    client, url, _ = api
    operator = _bearer(client, url, "operator")
    params = {"from": "2026-10-01", "to": "2026-10-31", "figure": "received"}
    assert client.get("/api/kpi/dossiers/list", params=params, headers=operator).status_code == 200
    bad = client.get("/api/kpi/dossiers/list", params={**params, "figure": "nope"}, headers=operator)
    assert bad.status_code == 400 and "resolved_late" in bad.json()["detail"]
    assert client.get("/api/kpi/dossiers/due", params={"days": 7}, headers=operator).status_code == 200


def test_the_page_needs_no_inline_script_or_style_under_the_csp(api) -> None:
    client, _, _ = api
    page = client.get("/")
    assert page.status_code == 200 and "script-src 'self'" in page.headers["content-security-policy"]
    assert "<script>" not in page.text and "<style>" not in page.text
    assert client.get("/status.js").status_code == 200 and client.get("/status.css").status_code == 200
