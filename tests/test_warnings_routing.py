"""Warnings are safe by construction and routed exactly (issue #17).

Real app, real database, the sample district's real (synthetic Voronoi) boundaries, which share edges
exactly: reading exports of every alert kind creates nothing; device, report and closed alerts never
drive a loudspeaker whatever the radio policy; a polygon equal to a commune's boundary routes to that
commune only; one over two communes is visible to both communes' officers and counts in both; a
geocode-only area routes by administrative code."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
import yaml
from fastapi.testclient import TestClient
from shapely.geometry import shape
from staff import app_settings, token

from ioc.alerts.lifecycle import act
from ioc.alerts.model import AlertDraft, Severity
from ioc.alerts.store import raise_alerts
from ioc.areas import AreaRule, covered_units
from ioc.cap.model import Area
from ioc.district.bootstrap import load_district_into
from ioc.http.app import create_app
from ioc.hub.events import CHANNEL, decode
from ioc.mqtt import BrokerAddress
from ioc.radio.broadcasts import RadioPolicy
from ioc.radio.cap import CapPolicy, IssuedWarning, refusal
from ioc.radio.service import RadioService
from ioc.settings import Settings
from ioc.warnings.config import load_warnings_config

CONFIG = Path(__file__).resolve().parent.parent / "config"
CODES = {"tra-kot": "20308", "tra-nu": "20311", "tra-son": "20305"}


@pytest.fixture(scope="module")
def district(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample district file with official-style codes on three communes (a config variant)."""
    folder = tmp_path_factory.mktemp("district")
    data = yaml.safe_load((CONFIG / "district.yaml").read_text(encoding="utf-8"))
    for unit in data["units"]:
        if unit["id"] in CODES:
            unit["code"] = CODES[unit["id"]]
    shutil.copy(CONFIG / data["geometry_file"], folder / data["geometry_file"])
    path = folder / "district.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def url(database_factory: Callable[..., str], district: Path) -> str:
    url = database_factory()
    load_district_into(url, Settings(_env_file=None, district_config=district), {})  # type: ignore[call-arg]
    return url


@pytest.fixture(scope="module")
def boundaries() -> dict[str, dict]:
    features = json.loads((CONFIG / "district-units.geojson").read_text(encoding="utf-8"))["features"]
    return {f["properties"]["unit_id"]: f["geometry"] for f in features}


class Api:
    def __init__(self, client: TestClient, url: str) -> None:
        self.client, self.url = client, url
        self.op1 = {"Authorization": f"Bearer {token(client, url, 'operator')}"}
        self.op2 = {"Authorization": f"Bearer {token(client, url, 'leader')}"}

    def officer(self, unit: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token(self.client, self.url, 'commune_officer', unit)}"}

    def issue(self, content: dict, category: str = "flood", status: str = "Actual") -> dict:
        created = self.client.post("/api/warnings", headers=self.op1,
                                   json={"category": category, "status": status, "content": content})  # fmt: skip
        assert created.status_code == 201, created.text
        wid = created.json()["id"]
        first = self.client.post(f"/api/warnings/{wid}/issue", headers=self.op1)
        assert first.status_code == 200, first.text
        if first.json()["state"] == "awaiting_confirmation":
            # The same person cannot be the second one.
            assert self.client.post(f"/api/warnings/{wid}/issue", headers=self.op1).status_code == 403
            first = self.client.post(f"/api/warnings/{wid}/issue", headers=self.op2)
            assert first.status_code == 200, first.text
        body = first.json()
        assert body["state"] == "issued"
        return {**body, "id": wid}


@pytest.fixture(scope="module")
def api(url: str, mqtt_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    settings = app_settings(url, mqtt_url, var_dir=tmp_path_factory.mktemp("var"))
    with TestClient(create_app(settings)) as client:
        yield Api(client, url)


def ring(geometry: dict) -> list[list[float]]:
    """A GeoJSON polygon's outer ring in CAP order [lat, lon]."""
    return [[lat, lon] for lon, lat in geometry["coordinates"][0]]


def content(areas: list[dict], headline: str = "Lũ trên sông Trường") -> dict:
    return {"event": "Lũ", "headline": headline, "instruction": "Di dời người dân ven sông.", "areas": areas}


def counts(url: str) -> tuple[int, ...]:
    with psycopg.connect(url) as conn:
        return tuple(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]  # type: ignore[index]
                     for t in ("cap_messages", "warnings", "radio_broadcasts", "warning_deliveries"))  # fmt: skip


def test_reading_any_export_creates_nothing_and_nothing_plays(api: Api, url: str, mqtt_url: str,
                                                               tmp_path: Path) -> None:  # fmt: skip
    now = datetime.now(UTC)
    kinds = ["device.offline", "report.new", "sensor.level", "camera.intrusion", "sensor.rain"]
    with psycopg.connect(url) as conn:
        alerts = [raise_alerts(conn, [AlertDraft(kind=k, severity=Severity.CRITICAL, title=f"Thử {k}", at=now,
                                                 unit_id="tra-kot", dedup_key=f"read-{k}")], now=now)[0].id
                  for k in kinds]  # fmt: skip
        act(conn, alerts[2], "resolve", actor="op", now=now)
        act(conn, alerts[2], "close", actor="op", now=now)  # the closed water-level alert
    before = counts(url)
    for alert_id in alerts:
        for _ in range(2):
            response = api.client.get(f"/api/alerts/{alert_id}/cap", headers=api.op1)
            assert response.status_code == 200 and b"<alert" in response.content
    assert counts(url) == before  # nothing stored, issued or queued by reading
    # Even the most permissive radio policy finds nothing to play.
    everything = CapPolicy(mode="start", media_dir=tmp_path, categories=frozenset({"flood", "met", "other"}))
    radio = RadioService(url, BrokerAddress.from_url(mqtt_url), policy=RadioPolicy(), cap=everything)
    radio.tick()
    radio.stop()
    assert counts(url) == before


@pytest.mark.parametrize("kind,status", [("device.offline", "new"), ("report.new", "new"),
                                         ("sensor.level", "closed"), ("sensor.level", "dismissed")])  # fmt: skip
def test_device_report_and_closed_alerts_never_drive_a_loudspeaker(api: Api, url: str, kind: str,
                                                                    status: str) -> None:  # fmt: skip
    # The act refuses them as the source of a warning...
    now = datetime.now(UTC)
    with psycopg.connect(url) as conn:
        draft = AlertDraft(kind=kind, severity=Severity.CRITICAL, title="x", at=now, unit_id="tra-kot",
                           dedup_key=f"src-{kind}-{status}")  # fmt: skip
        alert = raise_alerts(conn, [draft], now=now)[0].id
        if status == "closed":
            act(conn, alert, "resolve", actor="op", now=now)
            act(conn, alert, "close", actor="op", now=now)
        elif status == "dismissed":
            act(conn, alert, "dismiss", actor="op", now=now, note="sai")
    body = {"category": "flood", "alert_id": alert, "content": content([{"description": "x", "geocodes": [
        {"value": "20308"}]}])}  # fmt: skip
    refused = api.client.post("/api/warnings", headers=api.op1, json=body)
    assert refused.status_code == 422, refused.text
    assert refused.json()["errors"][0]["pointer"] == "#/alert_id"
    # ...and the radio refuses them again, under every policy, even if one slipped into the table.
    from ioc.cap.model import CapMessage

    message = CapMessage(identifier="x", sender="s", sent=now, status="Actual", msg_type="Alert", scope="Public")
    warning = IssuedWarning(1, "flood", "issued", ["tra-kot"], None, None, kind, status)
    for mode in ("off", "propose", "start"):
        assert refusal(message, warning, CapPolicy(mode=mode, categories=frozenset({"flood"}))) is not None


def test_a_polygon_equal_to_a_communes_boundary_routes_to_exactly_that_commune(
        url: str, boundaries: dict[str, dict]) -> None:  # fmt: skip
    area = Area("Trà Kót", [[tuple(p) for p in ring(boundaries["tra-kot"])]])  # type: ignore[misc]
    kot = shape(boundaries["tra-kot"])
    neighbours = [u for u, g in boundaries.items() if u not in ("tra-kot", "bac-tra-my") and shape(g).intersects(kot)]
    assert neighbours, "the sample's communes share edges: the old intersects() routing spilled over"
    with psycopg.connect(url) as conn:
        covered = covered_units(conn, [area])
        assert [c.unit_id for c in covered] == ["tra-kot"] and covered[0].share == pytest.approx(1.0, abs=1e-3)
        # A boundary simplified by the sender leaves slivers over the neighbours: they do not count.
        simplified = shape(boundaries["tra-kot"]).buffer(0.0007)  # ~75 m of simplification error
        sliver = Area("Trà Kót", [[(lat, lon) for lon, lat in simplified.exterior.coords]])
        assert [c.unit_id for c in covered_units(conn, [sliver])] == ["tra-kot"]
        # A surface threshold alone: a 3 km² corner of a commune counts with min_km2=2.
        assert covered_units(conn, [area], AreaRule(min_share=1.1, min_km2=1e9)) == []


def test_a_warning_over_two_communes_is_seen_by_both_officers_and_counts_in_both(
        api: Api, url: str, boundaries: dict[str, dict]) -> None:  # fmt: skip
    # One flood area of two polygons, each a commune's boundary from the configured GeoJSON.
    polygons = [ring(boundaries["tra-kot"]), ring(boundaries["tra-nu"])]
    listener = psycopg.connect(url, autocommit=True)
    listener.execute(f"LISTEN {CHANNEL}")
    issued = api.issue(content([{"description": "Trà Kót, Trà Nú", "polygons": polygons}]))
    assert issued["unit_ids"] == ["tra-kot", "tra-nu"]
    alert_id = issued["alert_id"]
    # Live: the alert is announced for each commune (their consoles' websocket filter is by unit).
    live = [decode(n.payload) for n in listener.notifies(timeout=1.0, stop_after=200)]
    listener.close()
    assert {e.unit_id for e in live if e.topic == "alert" and e.data["id"] == alert_id} >= {"tra-kot", "tra-nu"}
    for unit in ("tra-kot", "tra-nu"):
        officer = api.officer(unit)
        assert api.client.get(f"/api/alerts/{alert_id}", headers=officer).status_code == 200
        assert alert_id in [a["id"] for a in api.client.get("/api/alerts", headers=officer).json()["items"]]
        assert issued["id"] in [w["id"] for w in api.client.get("/api/warnings", headers=officer).json()]
        figures = {f["unit_id"]: f for f in api.client.get("/api/warnings/figures", headers=officer).json()}
        assert set(figures) == {unit} and figures[unit]["issued"] >= 1
    stranger = api.officer("tra-ka")
    assert api.client.get(f"/api/alerts/{alert_id}", headers=stranger).status_code == 404
    assert api.client.get(f"/api/warnings/{issued['id']}", headers=stranger).status_code == 404
    district = {f["unit_id"] for f in api.client.get("/api/warnings/figures", headers=api.op1).json()}
    assert {"tra-kot", "tra-nu"} <= district


def test_a_geocode_only_area_routes_by_administrative_code(api: Api) -> None:
    issued = api.issue(content([{"description": "Trà Sơn, Trà Kót", "geocodes": [
        {"name": "VN-ADMIN", "value": "20305"}, {"name": "VN-ADMIN", "value": "20308"}]}]))  # fmt: skip
    assert issued["unit_ids"] == ["tra-kot", "tra-son"]
    nowhere = api.client.post("/api/warnings", headers=api.op1, json={"category": "flood", "content": content(
        [{"description": "?", "geocodes": [{"value": "99999"}]}])}).json()["id"]  # fmt: skip
    refused = api.client.post(f"/api/warnings/{nowhere}/issue", headers=api.op1)
    refused = refused if refused.status_code != 200 else api.client.post(f"/api/warnings/{nowhere}/issue",
                                                                          headers=api.op2)  # fmt: skip
    assert refused.status_code == 422 and "covers no commune" in refused.text


def test_exercise_warnings_stay_off_public_channels_and_out_of_the_feed(api: Api, url: str) -> None:
    issued = api.issue(content([{"description": "Trà Kót", "geocodes": [{"value": "20308"}]}],
                               headline="Diễn tập lũ"), status="Exercise")  # fmt: skip
    with psycopg.connect(url) as conn:
        channels = {r[0] for r in conn.execute("SELECT channel FROM warning_deliveries WHERE warning_id = %s",
                                               (issued["id"],))}  # fmt: skip
    assert channels and not channels & {"radio", "webhook"}
    feed = api.client.get("/api/warnings/feed.atom")
    assert feed.status_code == 200 and feed.headers["content-type"].startswith("application/atom+xml")
    assert "Diễn tập lũ" not in feed.text and "Lũ trên sông Trường" in feed.text
    assert api.client.get(f"/api/warnings/messages/{issued['message_id']}/cap").status_code == 404


def test_categories_without_radio_and_unknown_categories_are_refused_or_silent(api: Api) -> None:
    config = load_warnings_config(CONFIG / "warnings.yaml")
    assert "flood" in config.radio_categories() and "device" not in config.categories
    unknown = api.client.post("/api/warnings", headers=api.op1,
                              json={"category": "device", "content": content([{"description": "x"}])})  # fmt: skip
    assert unknown.status_code == 422 and unknown.json()["errors"][0]["pointer"] == "#/category"
    officer = api.officer("tra-kot")
    assert api.client.post("/api/warnings", headers=officer, json={"category": "flood", "content": content(
        [{"description": "x"}])}).status_code == 403  # fmt: skip
