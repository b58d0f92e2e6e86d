"""Incidents: signals grouped by the configured rules on the production path (alerts raised by
``raise_alerts`` as the ingest worker does, citizens' reports through the HTTP form, a radio warning
through ``broadcasts.create``), seen per commune, worked by operators with an audit; and the
labelled scenario that ``ioc incidents eval`` measures."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient
from shapely.geometry import shape
from staff import district_app_settings, token

from ioc.alerts.lifecycle import act
from ioc.alerts.model import AlertDraft, Severity
from ioc.alerts.store import raise_alerts
from ioc.district.loader import load_district
from ioc.http.app import create_app
from ioc.incidents.correlate import Signal, choose
from ioc.incidents.evaluate import evaluate, load_scenario
from ioc.incidents.rules import load_rules
from ioc.radio import broadcasts

ROOT = Path(__file__).resolve().parent.parent
RULES = load_rules(ROOT / "config" / "incident-rules.yaml")
SCENARIO = ROOT / "tests" / "data" / "incidents-scenario.yaml"


def _inside(unit_id: str) -> tuple[float, float]:
    district = load_district(ROOT / "config" / "district.yaml")
    unit = next(u for u in district.units if u.id == unit_id)
    point = shape(unit.polygon.model_dump()).representative_point()
    return point.y, point.x


@pytest.fixture(scope="module")
def app(database_factory: Callable[..., str], mqtt_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    url = database_factory(migrated=True)
    settings = district_app_settings(url, mqtt_url, tmp_path_factory.mktemp("var"), public_submit_burst=50)
    with TestClient(create_app(settings)) as client:
        yield client, url


def _raise(url: str, drafts: list[AlertDraft], now: datetime) -> list[int]:
    with psycopg.connect(url) as conn, conn.transaction():
        return [c.id for c in raise_alerts(conn, drafts, now=now)]


def _level(station: str, unit: str, at: datetime, lat: float, lon: float) -> AlertDraft:
    return AlertDraft(kind="sensor.level", severity=Severity.SEVERE, title=f"{station}: vượt mức báo động (310 cm)",
                      at=at, unit_id=unit, dedup_key=f"{station}:water_level_cm", lat=lat, lon=lon,
                      evidence={"water_level_cm": 310}, policy="urgent")  # fmt: skip


def _intrusion(camera: str, unit: str, at: datetime, lat: float, lon: float) -> AlertDraft:
    return AlertDraft(kind="camera.intrusion", severity=Severity.SEVERE, title=f"Xâm nhập Sân trường – {camera}",
                      at=at, unit_id=unit, dedup_key=f"{camera}:san-truong", lat=lat, lon=lon)  # fmt: skip


def _incident_of_alert(url: str, alert_id: int) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT incident_id FROM incident_signals WHERE signal = 'alert' AND ref = %s",
                           (alert_id,)).fetchone()  # fmt: skip
    assert row is not None, f"alert {alert_id} is in no incident"
    return int(row[0])


def test_water_levels_flood_reports_and_the_radio_warning_in_one_commune_are_one_incident(app) -> None:
    client, url = app
    now = datetime.now(UTC)
    lat, lon = _inside("tra-kot")
    alert_ids = _raise(url, [_level(f"tk-flood-{i}", "tra-kot", now + timedelta(minutes=5 * i), lat + i * 0.001, lon)
                             for i in range(5)], now)  # fmt: skip
    assert len(set(alert_ids)) == 5
    for i in range(3):
        response = client.post("/api/public/reports", data={
            "category": "thien-tai", "description": f"Nước lũ dâng cao tràn qua đường, ngập nhà dân ({i})",
            "lat": str(lat + 0.002 * i), "lon": str(lon)})  # fmt: skip
        assert response.status_code == 201, response.text
        assert response.json()["unit_id"] == "tra-kot"
    with psycopg.connect(url) as conn, conn.transaction():
        broadcast_id = broadcasts.create(conn, title="Cảnh báo lũ khẩn cấp xã Trà Kót", text="Nước lũ đang lên.",
                                         audio_id=None, repeat=3, urgent=True,
                                         targets={"unit_ids": ["tra-kot"], "cluster_ids": [], "polygon": None},
                                         requested_by="cap:test", policy=broadcasts.RadioPolicy(), now=now,
                                         source="cap", proposed=True)  # fmt: skip
    incident_id = _incident_of_alert(url, alert_ids[0])
    assert {_incident_of_alert(url, a) for a in alert_ids} == {incident_id}

    operator = {"Authorization": f"Bearer {token(client, url, 'operator')}"}
    detail = client.get(f"/api/incidents/{incident_id}", headers=operator).json()
    kinds = sorted((s["signal"], s["topic"]) for s in detail["signals"])
    assert kinds.count(("alert", "sensor.level")) == 5
    assert kinds.count(("alert", "report.thien-tai")) == 3
    assert ("broadcast", "radio.urgent") in kinds and any(s["ref"] == broadcast_id for s in detail["signals"])
    assert detail["rule_id"] == "thien-tai" and detail["lead_unit_id"] == "tra-kot" and detail["signal_count"] == 9
    assert detail["title"] == "Thiên tai – mưa lũ, ngập, sạt lở – Trà Kót"
    assert [s["id"] for s in detail["checklist"]][:2] == ["canh-bao-dai", "bao-chu-tich"]
    assert sum(e["action"] == "signal" for e in detail["timeline"]) == 9

    # Trà Kót's officer sees it, ticks a step; Trà Giáp's officer cannot tell it exists.
    kot = {"Authorization": f"Bearer {token(client, url, 'commune_officer', 'tra-kot')}"}
    giap = {"Authorization": f"Bearer {token(client, url, 'commune_officer', 'tra-giap')}"}
    assert incident_id in [i["id"] for i in client.get("/api/incidents", headers=kot).json()["items"]]
    assert incident_id not in [i["id"] for i in client.get("/api/incidents", headers=giap).json()["items"]]
    assert client.get(f"/api/incidents/{incident_id}", headers=giap).status_code == 404
    done = client.post(f"/api/incidents/{incident_id}/actions", headers=kot,
                       json={"action": "step", "step": "canh-bao-dai", "note": "Đã phát cảnh báo"})  # fmt: skip
    assert done.status_code == 200, done.text
    step = next(s for s in done.json()["checklist"] if s["id"] == "canh-bao-dai")
    assert step["done_by"].startswith("commune-officer-") and step["done_at"]
    assert client.post(f"/api/incidents/{incident_id}/actions", headers=kot,
                       json={"action": "step", "step": "canh-bao-dai"}).status_code == 409  # fmt: skip
    assert client.post(f"/api/incidents/{incident_id}/actions", headers=kot,
                       json={"action": "close"}).status_code == 403  # fmt: skip
    assert client.post(f"/api/incidents/{incident_id}/actions", headers=giap,
                       json={"action": "comment", "note": "x"}).status_code == 404  # fmt: skip


def test_intrusions_in_two_communes_are_two_incidents_and_a_cause_reopening_joins_its_own(app) -> None:
    client, url = app
    now = datetime.now(UTC) + timedelta(days=2)
    kot, son = _inside("tra-kot"), _inside("tra-son")
    first_kot, first_son = _raise(url, [_intrusion("cam-kot", "tra-kot", now, *kot),
                                        _intrusion("cam-son", "tra-son", now, *son)], now)  # fmt: skip
    assert _incident_of_alert(url, first_kot) != _incident_of_alert(url, first_son)
    incident_id = _incident_of_alert(url, first_kot)
    # The guard resolves it; the same cause fires again ten minutes later: a new alert, the same incident.
    with psycopg.connect(url) as conn, conn.transaction():
        act(conn, first_kot, "resolve", actor="operator1", now=now + timedelta(minutes=2))
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT status FROM incidents WHERE id = %s", (incident_id,)).fetchone()[0] == "resolved"
    [again] = _raise(url, [_intrusion("cam-kot", "tra-kot", now + timedelta(minutes=10), *kot)],
                     now + timedelta(minutes=10))  # fmt: skip
    assert again != first_kot and _incident_of_alert(url, again) == incident_id
    operator = {"Authorization": f"Bearer {token(client, url, 'operator')}"}
    detail = client.get(f"/api/incidents/{incident_id}", headers=operator).json()
    assert detail["status"] == "open" and detail["signal_count"] == 2
    actions = [e["action"] for e in detail["timeline"]
               if e["source"] == "incident" and not e["action"].startswith("on_call")]  # pages: tests/test_on_call.py
    assert actions == ["opened", "signal", "status:resolved", "reopened", "signal"]


def test_operators_merge_and_split_with_an_audit(app) -> None:
    client, url = app
    now = datetime.now(UTC) + timedelta(days=4)
    a, b = _inside("tra-nu"), _inside("tra-ka")
    first, second = _raise(url, [_intrusion("cam-nu", "tra-nu", now, *a), _intrusion("cam-ka", "tra-ka", now, *b)], now)
    one, two = _incident_of_alert(url, first), _incident_of_alert(url, second)
    assert one != two
    operator = {"Authorization": f"Bearer {token(client, url, 'operator')}"}
    merged = client.post(f"/api/incidents/{two}/actions", headers=operator,
                         json={"action": "merge", "into": one, "note": "Cùng một nhóm đối tượng"})  # fmt: skip
    assert merged.status_code == 200, merged.text
    assert merged.json()["status"] == "merged" and merged.json()["merged_into"] == one
    target = client.get(f"/api/incidents/{one}", headers=operator).json()
    assert target["signal_count"] == 2 and target["helper_unit_ids"] == ["tra-ka"]
    merge_event = next(e for e in target["timeline"] if e["action"] == "merged_from")
    assert merge_event["actor"].startswith("operator-") and merge_event["note"] == "Cùng một nhóm đối tượng"
    assert client.post(f"/api/incidents/{two}/actions", headers=operator,
                       json={"action": "merge", "into": one}).status_code == 409  # fmt: skip

    split = client.post(f"/api/incidents/{one}/actions", headers=operator,
                        json={"action": "split", "signals": [{"signal": "alert", "ref": second}], "note": "Khác vụ"})
    assert split.status_code == 200, split.text
    assert split.json()["signal_count"] == 1
    new_id = _incident_of_alert(url, second)
    assert new_id not in (one, two)
    new = client.get(f"/api/incidents/{new_id}", headers=operator).json()
    assert new["lead_unit_id"] == "tra-ka"
    assert [e["action"] for e in new["timeline"] if e["source"] == "incident"][0] == "split_from"
    # Every signal cannot leave; a signal of another incident cannot be split off.
    assert client.post(f"/api/incidents/{new_id}/actions", headers=operator,
                       json={"action": "split", "signals": [{"signal": "alert", "ref": second}]}).status_code == 409
    assert client.post(f"/api/incidents/{new_id}/actions", headers=operator,
                       json={"action": "split", "signals": [{"signal": "alert", "ref": first}]}).status_code == 409
    # API keys and anonymous callers read nothing here.
    assert client.get("/api/incidents").status_code == 401


def test_two_workers_raising_one_flood_at_once_open_one_incident(app) -> None:
    _, url = app
    now = datetime.now(UTC) + timedelta(days=6)
    lat, lon = _inside("tra-giac")
    barrier = threading.Barrier(4)
    ids: list[int] = []

    def worker(i: int) -> None:
        barrier.wait()
        ids.extend(_raise(url, [_level(f"giac-{i}", "tra-giac", now, lat, lon + 0.001 * i)], now))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(ids) == 4 and len({_incident_of_alert(url, a) for a in ids}) == 1


def test_a_district_level_signal_never_joins_a_communes_incident() -> None:
    at = datetime(2026, 10, 14, tzinfo=UTC)
    report = Signal("alert", 1, "report.thien-tai", at, ("tra-kot",), 15.44, 108.06)
    from ioc.incidents.correlate import Candidate

    commune_case = Candidate(7, "thien-tai", at, at, {"tra-kot"}, [(15.44, 108.06)])
    unitless = Signal("alert", 2, "report.thien-tai", at, (), 15.44, 108.06)
    assert choose(RULES, report, [commune_case]).join == 7
    assert choose(RULES, unitless, [commune_case]).join is None


def test_the_labelled_scenario_has_no_false_or_missed_merges_and_the_measure_can_fail() -> None:
    result = evaluate(RULES, load_scenario(SCENARIO))
    assert (result.false_merges, result.missed_merges) == (0, 0)
    assert result.signals == 30 and result.incidents == result.labelled_incidents == 12
    # The same scenario under rules that group nothing by place must show the missed merges.
    strict = RULES.model_copy(update={"rules": tuple(r.model_copy(update={"place": "cause"}) for r in RULES.rules)})
    assert evaluate(strict, load_scenario(SCENARIO)).missed_merges > 0
    # ... and under one catch-all commune rule, the false ones.
    loose = load_rules_text("rules: [{id: khac, name: Tất cả, signals: ['*'], joins: ['radio.urgent'], place: unit, "
                            "radius_m: 50000, window_min: 1440}]")
    assert evaluate(loose, load_scenario(SCENARIO)).false_merges > 0


def load_rules_text(text: str):
    import yaml

    from ioc.incidents.rules import RuleSet

    return RuleSet.model_validate(yaml.safe_load(text))


def test_ioc_incidents_eval_prints_one_json_line() -> None:
    done = subprocess.run([sys.executable, "-m", "ioc.cli.main", "incidents", "eval", str(SCENARIO)],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)  # fmt: skip
    assert done.returncode == 0, done.stderr
    import json

    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["signals"] == 30 and figures["false_merges"] == 0 and figures["missed_merges"] == 0


def test_a_sensor_incident_shows_the_current_value_and_a_days_readings(app) -> None:
    """The wall draws a station's day beside its alert: hourly buckets and the newest reading; another
    commune's officer cannot read the station; the alert's title carries its latest reading."""
    client, url = app
    now = datetime.now(UTC).replace(microsecond=0)
    device = "sensor-tra-son-bridge-water"
    with psycopg.connect(url) as conn:
        for i in range(24 * 12):  # one reading every 5 minutes, rising
            at = now - timedelta(minutes=5 * i)
            conn.execute(
                "INSERT INTO telemetry (time, device_id, unit_id, kind, message_id, payload)"
                " VALUES (%s, %s, 'tra-son', 'sensor', %s, %s)",
                (at, device, f"m-{i}", psycopg.types.json.Jsonb({"metrics": {"water_level_cm": 500.0 - i}})),
            )
        conn.execute(
            "INSERT INTO telemetry (time, device_id, unit_id, kind, message_id, payload) VALUES (%s, %s, 'tra-son',"
            " 'sensor', 'junk', %s)", (now - timedelta(minutes=1), device,
                                        psycopg.types.json.Jsonb({"metrics": {"water_level_cm": "n/a"}})))  # fmt: skip
    operator = {"Authorization": f"Bearer {token(client, url, 'operator')}"}
    got = client.get(f"/api/devices/{device}/readings", params={"metric": "water_level_cm"}, headers=operator)
    assert got.status_code == 200, got.text
    body = got.json()
    assert body["latest"] == 500.0
    assert 24 <= len(body["buckets"]) <= 25 and sum(b["n"] for b in body["buckets"]) == 24 * 12
    assert all(b["min"] <= b["avg"] <= b["max"] for b in body["buckets"])
    giap = {"Authorization": f"Bearer {token(client, url, 'commune_officer', 'tra-giap')}"}
    assert client.get(f"/api/devices/{device}/readings", params={"metric": "water_level_cm"},
                      headers=giap).status_code == 404  # fmt: skip
    assert client.get(f"/api/devices/{device}/readings", params={"metric": "x;drop"},
                      headers=operator).status_code == 422  # fmt: skip

    at = now + timedelta(days=8)
    first, = _raise(url, [_level("sensor-tra-son-bridge-water", "tra-son", at, 15.44, 108.18)], at)
    later = AlertDraft(kind="sensor.level", severity=Severity.SEVERE, title="Trạm Trà Sơn: vượt mức báo động (480 cm)",
                       at=at + timedelta(minutes=5), unit_id="tra-son",
                       dedup_key="sensor-tra-son-bridge-water:water_level_cm")  # fmt: skip
    again, = _raise(url, [later], at + timedelta(minutes=5))
    assert again == first
    alert = client.get(f"/api/alerts/{first}", headers=operator).json()
    assert alert["title"].endswith("(480 cm)") and alert["count"] == 2


def test_a_warning_over_two_communes_is_in_an_incident_both_communes_see(app) -> None:
    """An issued warning's alert concerns two communes: its incident names both, both officers see it."""
    client, url = app
    features = __import__("json").loads((ROOT / "config" / "district-units.geojson").read_text(encoding="utf-8"))
    rings = {f["properties"]["unit_id"]: [[lat, lon] for lon, lat in f["geometry"]["coordinates"][0]]
             for f in features["features"]}  # fmt: skip
    op1 = {"Authorization": f"Bearer {token(client, url, 'operator')}"}
    op2 = {"Authorization": f"Bearer {token(client, url, 'leader')}"}
    created = client.post("/api/warnings", headers=op1, json={"category": "flood", "status": "Actual", "content": {
        "event": "Lũ", "headline": "Lũ trên sông Trường", "instruction": "Di dời người dân ven sông.",
        "areas": [{"description": "Trà Đốc, Trà Giáp", "polygons": [rings["tra-doc"], rings["tra-giap"]]}]}})
    assert created.status_code == 201, created.text
    wid = created.json()["id"]
    for issuer in (op1, op2):
        issued = client.post(f"/api/warnings/{wid}/issue", headers=issuer)
        assert issued.status_code == 200, issued.text
        if issued.json()["state"] == "issued":
            break
    alert_id = issued.json()["alert_id"]
    incident_id = _incident_of_alert(url, alert_id)
    for unit in ("tra-doc", "tra-giap"):
        officer = {"Authorization": f"Bearer {token(client, url, 'commune_officer', unit)}"}
        detail = client.get(f"/api/incidents/{incident_id}", headers=officer)
        assert detail.status_code == 200, (unit, detail.text)
        assert [s["ref"] for s in detail.json()["signals"]] == [alert_id]
    stranger = {"Authorization": f"Bearer {token(client, url, 'commune_officer', 'tra-ka')}"}
    assert client.get(f"/api/incidents/{incident_id}", headers=stranger).status_code == 404


def test_routes_filtering_by_unit_take_its_name_code_or_alias(app) -> None:
    """[adoption]: staff of a second district type names, not ids: every `unit` filter resolves them."""
    client, url = app
    operator = {"Authorization": f"Bearer {token(client, url, 'operator')}"}
    with psycopg.connect(url) as conn:
        code = conn.execute("SELECT properties->>'code' FROM units WHERE id = 'tra-kot'").fetchone()[0]
    for path in ("/api/alerts", "/api/incidents", "/api/devices"):
        by_id = client.get(path, headers=operator, params={"unit": "tra-kot"})
        assert by_id.status_code == 200, by_id.text
        names = ["Trà Kót", "tra kot", "UBND xã Trà Kót"] + ([code] if code else [])
        for name in names:
            by_name = client.get(path, headers=operator, params={"unit": name})
            assert by_name.status_code == 200 and by_name.json() == by_id.json(), (path, name, by_name.text[:200])
        unknown = client.get(path, headers=operator, params={"unit": "Xã Không Có"})
        assert unknown.status_code == 422 and unknown.json()["errors"][0]["parameter"] == "unit", unknown.text
    sectors = client.get("/api/sectors/education", headers=operator,
                         params={"from": "2026-10-01", "to": "2026-10-07", "unit": "UBND xã Trà Kót"})  # fmt: skip
    assert sectors.status_code == 200, sectors.text


def test_a_citizen_following_a_report_sees_the_incident_it_belongs_to(app) -> None:
    client, url = app
    lat, lon = _inside("tra-doc")
    now = datetime.now(UTC)
    _raise(url, [_level("doc-flood", "tra-doc", now, lat, lon)], now)
    sent = client.post("/api/public/reports", data={"category": "thien-tai", "description": "Nước ngập đường vào bản",
                                                     "lat": str(lat), "lon": str(lon)})  # fmt: skip
    assert sent.status_code == 201, sent.text
    view = client.get(f"/api/public/reports/{sent.json()['tracking_code']}").json()
    assert view["incident"] == {"title": "Thiên tai – mưa lũ, ngập, sạt lở – Trà Đốc", "status": "open",
                                "signals": 2, "reports": 1}  # fmt: skip
    # A complaint about an official (IOC only) is no commune's incident: nothing is shown.
    complaint = client.post("/api/public/reports", data={"category": "can-bo", "description": "Cán bộ xã hách dịch",
                                                          "lat": str(lat), "lon": str(lon)})  # fmt: skip
    assert client.get(f"/api/public/reports/{complaint.json()['tracking_code']}").json()["incident"] is None


def _incident_events_until_sentinel(ws: object) -> list[dict]:
    """Read a websocket until the test's sentinel system event; answer the incident events before it."""
    seen: list[dict] = []
    while True:
        message = ws.receive_json()  # type: ignore[attr-defined]
        items = message["items"] if message["type"] == "batch" else [message]
        for item in items:
            if item["type"] != "event":
                continue
            event = item["event"]
            if event["topic"] == "system" and event["type"] == "test.sentinel":
                return seen
            if event["topic"] == "incident":
                seen.append(event)


def test_live_incident_events_reach_the_lead_and_helping_communes_and_no_other(app) -> None:
    """An incident led by Trà Đốc with Trà Giang helping: an operator's note on it reaches Trà Giang's
    console live (not only over HTTP), never Trà Bui's, which still hears of its own incident."""
    import time

    from ioc.hub.events import LiveEvent, notify

    client, url = app
    now = datetime.now(UTC) + timedelta(days=8)
    lead_alert, helper_alert = _raise(url, [_intrusion("cam-ld", "tra-doc", now, *_inside("tra-doc")),
                                            _intrusion("cam-hp", "tra-giang", now, *_inside("tra-giang"))], now)
    one, two = _incident_of_alert(url, lead_alert), _incident_of_alert(url, helper_alert)
    operator = {"Authorization": f"Bearer {token(client, url, 'operator')}"}
    merged = client.post(f"/api/incidents/{two}/actions", headers=operator, json={"action": "merge", "into": one})
    assert merged.status_code == 200, merged.text
    incident = client.get(f"/api/incidents/{one}", headers=operator).json()
    assert (incident["lead_unit_id"], incident["helper_unit_ids"]) == ("tra-doc", ["tra-giang"])

    deadline = time.monotonic() + 10
    while not client.app.state.hub_ready.is_set():
        assert time.monotonic() < deadline, "hub listener did not start"
        time.sleep(0.05)
    helper = token(client, url, "commune_officer", "tra-giang")
    stranger = token(client, url, "commune_officer", "tra-bui")
    with (
        client.websocket_connect(f"/ws?topics=incident,system&access_token={helper}") as helper_ws,
        client.websocket_connect(f"/ws?topics=incident,system&access_token={stranger}") as stranger_ws,
    ):
        for ws in (helper_ws, stranger_ws):
            assert ws.receive_json()["type"] == "hello"
            assert ws.receive_json()["type"] == "snapshot_end"
        noted = client.post(f"/api/incidents/{one}/actions", headers=operator,
                            json={"action": "comment", "note": "Hai xã cùng theo dõi"})  # fmt: skip
        assert noted.status_code == 200, noted.text
        [own_alert] = _raise(url, [_intrusion("cam-bui", "tra-bui", now, *_inside("tra-bui"))], now)
        with psycopg.connect(url) as conn:
            notify(conn, LiveEvent(topic="system", type="test.sentinel"))
            conn.commit()
        helper_events = _incident_events_until_sentinel(helper_ws)
        stranger_events = _incident_events_until_sentinel(stranger_ws)
    to_helper = [e for e in helper_events if e["data"]["id"] == one]
    assert to_helper and to_helper[0]["type"] == "incident.updated"
    assert to_helper[0]["unit_id"] == "tra-doc" and to_helper[0]["unit_ids"] == ["tra-doc", "tra-giang"]
    assert one not in {e["data"]["id"] for e in stranger_events}
    # The stranger's stream works: its own commune's new incident reached it.
    assert _incident_of_alert(url, own_alert) in {e["data"]["id"] for e in stranger_events}
    assert _incident_of_alert(url, own_alert) not in {e["data"]["id"] for e in helper_events}


def test_a_commune_acknowledges_its_own_new_alerts_of_an_incident(app) -> None:
    """`acknowledge` on an incident takes the new alerts the caller sees in it (a helping commune: its
    own), names them in the timeline, and answers 409 once there is nothing left to take."""
    client, url = app
    now = datetime.now(UTC) + timedelta(days=9)
    lead_alert, helper_alert = _raise(url, [_intrusion("cam-ak1", "tra-nu", now, *_inside("tra-nu")),
                                            _intrusion("cam-ak2", "tra-dong", now, *_inside("tra-dong"))], now)
    one, two = _incident_of_alert(url, lead_alert), _incident_of_alert(url, helper_alert)
    operator = {"Authorization": f"Bearer {token(client, url, 'operator')}"}
    assert client.post(f"/api/incidents/{two}/actions", headers=operator,
                       json={"action": "merge", "into": one}).status_code == 200  # fmt: skip
    leader = {"Authorization": f"Bearer {token(client, url, 'leader')}"}
    refused = client.post(f"/api/incidents/{one}/actions", headers=leader, json={"action": "acknowledge"})
    assert refused.status_code == 403
    helper = {"Authorization": f"Bearer {token(client, url, 'commune_officer', 'tra-dong')}"}
    taken = client.post(f"/api/incidents/{one}/actions", headers=helper, json={"action": "acknowledge"})
    assert taken.status_code == 200, taken.text
    statuses = {s["ref"]: s["status"] for s in client.get(f"/api/incidents/{one}", headers=operator).json()["signals"]}
    assert statuses == {lead_alert: "new", helper_alert: "acknowledged"}
    entry = next(e for e in taken.json()["timeline"] if e["action"] == "acknowledged")
    assert entry["actor"].startswith("commune-officer-") and entry["data"] == {"alerts": [helper_alert]}
    again = client.post(f"/api/incidents/{one}/actions", headers=helper, json={"action": "acknowledge"})
    assert again.status_code == 409 and "nothing to acknowledge" in again.json()["detail"]
