"""Every route of the app has a declared access rule, and no route leaks another commune's records.

The walk covers ``app.routes`` whole (HTTP routes, the websocket, static mounts). For each route:

* it must have a rule in ``ioc.http.access.RULES`` (a new route without one fails here);
* anonymous callers get 401 unless the rule says ``public``;
* every role outside a ``roles(...)`` rule is refused (403/404);
* a route with ``unit=...`` must have a probe below, run as the officer of Trà Kót (A) against Trà
  Sơn's (B) records: an id of B in the path must be refused (404/403) while the operator gets it (so
  the probe points at a real record), and a list answered to A must not name B or carry B's marker
  while the operator's does. Leaks are collected and must be 0.

The test of the test adds an undeclared route (the walk must fail) and a declared route that leaks
(the probe must catch it).
"""

from __future__ import annotations

import io
import json
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from radio_support import wav
from staff import PASSWORD, app_settings

from ioc.alerts.model import AlertDraft, Severity
from ioc.alerts.store import raise_alerts
from ioc.auth import passwords, repository
from ioc.auth.tokens import new_api_key
from ioc.district.bootstrap import load_district_into
from ioc.http import access
from ioc.http.app import create_app
from ioc.reports import codes
from ioc.settings import Settings

CONFIG = Path(__file__).resolve().parent.parent / "config"
A, B = "tra-kot", "tra-son"
MARK = "LEAKB" + secrets.token_hex(3)  # in B's texts: a list answering it to A leaks
B_SIGNS = ("tra-son", "Trà Sơn", MARK)
POINT_B = (15.4446, 108.178)  # inside Trà Sơn (its primary school)
CAMERA_B = "cam-tra-son-school-01"


def jpeg(seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(buffer, format="JPEG")
    return buffer.getvalue()


@dataclass
class World:
    client: TestClient
    db: str
    var: Path
    headers: dict[str, dict[str, str]] = field(default_factory=dict)
    ids: dict[str, Any] = field(default_factory=dict)

    def sql(self, query: str, params: Any = None) -> list[tuple]:
        with psycopg.connect(self.db) as conn:
            cur = conn.execute(query, params)
            return cur.fetchall() if cur.description else []

    def user(self, role: str, unit: str | None = None) -> dict[str, str]:
        name = f"acc-{role.replace('_', '-')}-{secrets.token_hex(3)}"
        with psycopg.connect(self.db) as conn:
            repository.create_user(conn, username=name, display_name=name, role=role, unit_id=unit,
                                   password_hash=passwords.hash_password(PASSWORD))  # fmt: skip
        response = self.client.post("/api/auth/login", json={"username": name, "password": PASSWORD})
        assert response.status_code == 200, response.text
        return {"Authorization": f"Bearer {response.json()['access_token']}"}

    def key(self, role: str, unit: str | None = None) -> dict[str, str]:
        key = new_api_key()
        with psycopg.connect(self.db) as conn:
            repository.create_api_key(conn, name=f"{role}-{secrets.token_hex(3)}", role=role, unit_id=unit, key=key)
        return {"X-API-Key": key}


def _alert(db: str, unit: str, title: str, **extra: Any) -> int:
    with psycopg.connect(db) as conn:
        draft = AlertDraft(kind="camera.intrusion", severity=Severity.SEVERE, title=title, at=datetime.now(UTC),
                           unit_id=unit, dedup_key=f"acc-{secrets.token_hex(4)}", **extra)  # fmt: skip
        return raise_alerts(conn, [draft], now=datetime.now(UTC))[0].id


def _report(world: World, lat: float, lon: float, text: str) -> tuple[int, str]:
    response = world.client.post(
        "/api/public/reports",
        data={"category": "moi-truong", "description": text, "lat": str(lat), "lon": str(lon),
              "phone": "0905123456", "consent": "true"},
        files=[("photos", ("anh.jpg", jpeg(lat.__hash__() % 100), "image/jpeg"))],
    )  # fmt: skip
    assert response.status_code == 201, response.text
    code = response.json()["tracking_code"]
    row = world.sql("SELECT id FROM reports WHERE tracking_code = %s", (codes.normalise(code),))
    return row[0][0], code


@pytest.fixture(scope="module")
def world(database_factory: Callable[..., str], mqtt_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    url = database_factory()
    load_district_into(url, Settings(_env_file=None, district_config=CONFIG / "district.yaml"), {})  # type: ignore[call-arg]
    var = tmp_path_factory.mktemp("var")
    settings = app_settings(url, mqtt_url, var_dir=var, district_config=CONFIG / "district.yaml",
                            public_submit_burst=100)  # fmt: skip
    address = f"10.77.{secrets.randbelow(250)}.{secrets.randbelow(250) + 1}"
    with TestClient(create_app(settings), client=(address, 50000)) as client:
        w = World(client, url, var)
        w.headers = {
            "anonymous": {},
            "admin": w.user("admin"),
            "operator": w.user("operator"),
            "leader": w.user("leader"),
            "officer_a": w.user("commune_officer", A),
            "device": w.key("device"),
            "integration": w.key("integration"),
            "integration_a": w.key("integration", A),
        }
        _seed_b(w)
        yield w


def _seed_b(w: World) -> None:
    """Records of commune B (and a few of A) through the API where it exists, else the store."""
    op = w.headers["operator"]
    ids = w.ids
    # An alert of B with camera evidence, and one of A.
    digest = "ab" * 32
    evidence_ref = f"evidence/{CAMERA_B}/{digest[:2]}/{digest}.jpg"
    (w.var / "media" / evidence_ref).parent.mkdir(parents=True, exist_ok=True)
    (w.var / "media" / evidence_ref).write_bytes(jpeg(1))
    ids["alert_id"] = _alert(w.db, B, f"Xâm nhập {MARK}", evidence={"snapshot_ref": evidence_ref})
    ids["ref"] = evidence_ref
    ids["alert_a"] = _alert(w.db, A, "Xâm nhập ở Trà Kót")
    # B's alert opened an incident of B; a water-level station of B has readings.
    ids["incident_id"] = w.sql("SELECT incident_id FROM incident_signals WHERE signal = 'alert' AND ref = %s",
                               (ids["alert_id"],))[0][0]  # fmt: skip
    ids["device_id"] = "sensor-tra-son-bridge-water"
    ids["page_id"] = 2**31 - 1  # on-call pages are the caller's own: any id (others' answer 404)
    photo = w.client.post(f"/api/alerts/{ids['alert_id']}/photos", headers=op,
                          files={"photo": ("hien-truong.jpg", jpeg(2), "image/jpeg")})  # fmt: skip
    assert photo.status_code == 201, photo.text
    ids["photo_ref"] = photo.json()["photo_ref"]
    ids["sha256"] = photo.json()["url"].rsplit("/", 1)[1]
    # The camera's live frame.
    (w.var / "media" / "live").mkdir(parents=True, exist_ok=True)
    (w.var / "media" / "live" / f"{CAMERA_B}.jpg").write_bytes(jpeg(3))
    ids["camera_id"] = CAMERA_B
    # Citizen reports in B and in A.
    ids["report_id"], _ = _report(w, *POINT_B, f"Rác thải ở suối {MARK}")
    ids["report_a"] = _report_in(w, A)
    ids["media_id"] = w.sql("SELECT id FROM report_media WHERE report_id = %s", (ids["report_id"],))[0][0]
    # Radio: a recording, a broadcast, a command and a programme for B only.
    audio = w.client.post("/api/radio/audio", headers=op, files={"file": ("ban-tin.wav", wav(1.0), "audio/wav")})
    assert audio.status_code == 201, audio.text
    ids["audio_id"] = audio.json()["id"]
    broadcast = w.client.post("/api/radio/broadcasts", headers=op,
                              json={"title": f"Bản tin {MARK}", "audio_id": ids["audio_id"],
                                    "unit_ids": [B]})  # fmt: skip
    assert broadcast.status_code == 201, broadcast.text
    ids["broadcast_id"] = broadcast.json()["id"]
    command = w.client.post("/api/radio/clusters/radio-tra-son-1/commands", headers=op,
                            json={"command": "volume", "volume": 70})  # fmt: skip
    assert command.status_code == 202, command.text
    ids["correlation_id"] = command.json()["correlation_id"]
    schedule = w.client.post("/api/radio/schedules", headers=op,
                             json={"title": f"Chương trình {MARK}", "audio_id": ids["audio_id"], "unit_ids": [B],
                                   "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
                                   "start": "05:30"})  # fmt: skip
    assert schedule.status_code == 201, schedule.text
    ids["schedule_id"] = schedule.json()["id"]
    # An issued public warning over B (its boundary from the configured GeoJSON).
    features = json.loads((CONFIG / "district-units.geojson").read_text(encoding="utf-8"))["features"]
    boundary = next(f["geometry"] for f in features if f["properties"]["unit_id"] == B)
    area = {"description": f"Xã Trà Sơn {MARK}", "polygons": [[[lat, lon] for lon, lat in boundary["coordinates"][0]]]}
    warning = w.client.post("/api/warnings", headers=op, json={"category": "flood", "status": "Actual", "content": {
        "event": "Lũ", "headline": f"Lũ {MARK}", "instruction": "Di dời.", "areas": [area]}})  # fmt: skip
    assert warning.status_code == 201, warning.text
    ids["warning_id"] = warning.json()["id"]
    for issuer in (op, w.headers["leader"]):
        issued = w.client.post(f"/api/warnings/{ids['warning_id']}/issue", headers=issuer)
        assert issued.status_code == 200, issued.text
        if issued.json()["state"] == "issued":
            break
    assert issued.json()["unit_ids"] == [B]
    # A mention about B.
    mention = w.client.post("/api/sectors/mentions", headers=op,
                            json={"source": "báo điện tử", "url": f"https://bao.example/{MARK}",
                                  "published_at": datetime.now(UTC).isoformat(), "title": f"Tin {MARK}",
                                  "text": "Người dân Trà Sơn phản ánh", "unit_id": B})  # fmt: skip
    assert mention.status_code == 201, mention.text
    # A dossier of B received today, open and due soon (KPI figures and lists).
    from psycopg.types.json import Jsonb

    from ioc.kpi.dossiers import refresh
    from ioc.storage.timeseries import ensure_months

    now = datetime.now(UTC)
    with psycopg.connect(w.db) as conn:
        ensure_months(conn, {now.date().replace(day=1)})
        conn.execute(
            "INSERT INTO dossier_events (time, dossier_id, unit_id, event, message_id, payload)"
            " VALUES (%s, %s, %s, 'received', %s, %s)",
            (now - timedelta(hours=1), f"hs-{MARK}", B, f"hs-{MARK}-received",
             Jsonb({"event": "received", "channel": "online", "due_at": (now + timedelta(days=2)).isoformat()})),
        )  # fmt: skip
        refresh(conn, {f"hs-{MARK}"})


def _report_in(w: World, unit: str) -> int:
    """A report inside ``unit`` (a point of one of its devices)."""
    lat, lon = w.sql("SELECT lat, lon FROM devices WHERE unit_id = %s AND lat IS NOT NULL ORDER BY id LIMIT 1",
                     (unit,))[0]  # fmt: skip
    report_id, _ = _report(w, lat, lon, "Đèn đường hỏng ở Trà Kót")
    assert w.sql("SELECT unit_id FROM reports WHERE id = %s", (report_id,))[0][0] == unit
    return report_id


# -- probes ------------------------------------------------------------------------------------------

TODAY = datetime.now(UTC).date()
PERIOD = {"from": str(TODAY - timedelta(days=6)), "to": str(TODAY)}


@dataclass(frozen=True)
class Probe:
    """How to point a unit route at B's records. ``list``: check the answer's content; otherwise the
    path holds B's ids and A must be refused. ``proof``: the operator's GET must succeed (the probe
    hits a real record); off for streams. ``custom``: a function(world) -> list of leaks."""

    list: bool = False
    params: dict[str, Any] = field(default_factory=dict)
    body: dict[str, Any] | None = None
    files: dict[str, Any] | None = None
    proof: bool = True
    custom: Callable[[World], list[str]] | None = None


def _ws_probe(w: World) -> list[str]:
    """Officer A's live stream: the snapshot of open alerts carries none of B's (the operator's does)."""

    def snapshot(headers: dict[str, str]) -> str:
        token = headers["Authorization"].split(" ", 1)[1]
        seen = []
        with w.client.websocket_connect("/ws?topics=alert") as ws:
            ws.send_text(json.dumps({"type": "auth", "access_token": token}))
            while True:
                message = ws.receive_json()
                seen.append(message)
                if message.get("type") in ("snapshot_end", "error"):
                    break
        return json.dumps(seen, ensure_ascii=False)

    leaks = []
    theirs = snapshot(w.headers["officer_a"])
    if any(sign in theirs for sign in B_SIGNS) or f'"id": {w.ids["alert_id"]},' in theirs:
        leaks.append("WS /ws: B's alert in A's snapshot")
    assert str(w.ids["alert_id"]) in snapshot(w.headers["operator"]), "probe does not reach B's alert"
    return leaks


def _mention_probe(w: World) -> list[str]:
    """An integration key bound to A cannot record for B: not by naming B in the text, not by unit_id."""
    key = w.headers["integration_a"]
    body = {"source": "giám sát", "url": f"https://bao.example/{secrets.token_hex(4)}",
            "published_at": datetime.now(UTC).isoformat(), "title": "Tin xã Trà Sơn",
            "text": "Đường ở xã Trà Sơn bị sạt lở"}  # fmt: skip
    leaks = []
    named = w.client.post("/api/sectors/mentions", headers=key, json=body)
    if named.status_code < 300 and named.json()["unit_id"] == B:
        leaks.append("POST /api/sectors/mentions: A's key stored a mention for B (named in the text)")
    explicit = w.client.post("/api/sectors/mentions", headers=key, json=body | {"unit_id": B, "url": body["url"] + "x"})
    if explicit.status_code < 300:
        leaks.append("POST /api/sectors/mentions: A's key stored a mention with unit_id B")
    return leaks


def _photo_ref_probe(w: World) -> list[str]:
    """A's own alert cannot cite B's photo (then read it through A's alert)."""
    officer = w.headers["officer_a"]
    leaks = []
    cite = w.client.post(f"/api/alerts/{w.ids['alert_a']}/actions", headers=officer,
                         json={"action": "comment", "note": "ảnh", "photo_ref": w.ids["photo_ref"]})  # fmt: skip
    if cite.status_code < 300:
        leaks.append("POST /api/alerts/{id}/actions: A cited B's photo_ref")
    read = w.client.get(f"/api/alerts/{w.ids['alert_a']}/photos/{w.ids['sha256']}", headers=officer)
    if read.status_code < 300:
        leaks.append("GET /api/alerts/{id}/photos/{sha}: B's photo through A's alert")
    return leaks


def _cap_about(lat: float, lon: float, identifier: str) -> bytes:
    d = 0.002
    polygon = f"{lat - d},{lon - d} {lat - d},{lon + d} {lat + d},{lon + d} {lat + d},{lon - d} {lat - d},{lon - d}"
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">
  <identifier>{identifier}</identifier><sender>kttv@quangnam.gov.vn</sender>
  <sent>2026-10-20T08:00:00+07:00</sent><status>Actual</status><msgType>Alert</msgType><scope>Public</scope>
  <info><language>vi-VN</language><category>Met</category><event>Lũ quét</event><urgency>Immediate</urgency>
    <severity>Severe</severity><certainty>Likely</certainty><headline>Lũ quét {MARK}</headline>
    <area><areaDesc>Xã Trà Sơn</areaDesc><polygon>{polygon}</polygon></area></info>
</alert>""".encode()


def _cap_probe(w: World) -> list[str]:
    """An integration key bound to A cannot raise an alert in B by a CAP area there (the district's can)."""
    headers = {"Content-Type": "application/cap+xml"}
    mine = w.client.post("/api/cap", headers=w.headers["integration_a"] | headers,
                         content=_cap_about(*POINT_B, f"acc-{secrets.token_hex(4)}"))  # fmt: skip
    district = w.client.post("/api/cap", headers=w.headers["integration"] | headers,
                             content=_cap_about(*POINT_B, f"acc-{secrets.token_hex(4)}"))  # fmt: skip
    assert district.status_code == 200, district.text  # the probe is a valid CAP message about B
    return [f"POST /api/cap: A's key raised an alert in B ({mine.status_code})"] if mine.status_code < 300 else []


def _merge_probe(w: World) -> list[str]:
    """Merging A's report into B's (a reference to B in the body) is refused."""
    response = w.client.post(f"/api/reports/{w.ids['report_a']}/merge", headers=w.headers["officer_a"],
                             json={"into": w.ids["report_id"]})  # fmt: skip
    return ["POST /api/reports/{id}/merge: A merged into B's report"] if response.status_code < 300 else []


PROBES: dict[str, Probe] = {
    "GET /api/alerts": Probe(list=True),
    "GET /api/alerts/changes": Probe(list=True, params={"since": 0}),
    "GET /api/alerts/{alert_id}": Probe(),
    "POST /api/alerts/{alert_id}/actions": Probe(body={"action": "comment", "note": "thử"}, custom=_photo_ref_probe),
    "GET /api/alerts/{alert_id}/cap": Probe(),
    "POST /api/alerts/{alert_id}/photos": Probe(files={"photo": ("a.jpg", jpeg(5), "image/jpeg")}),
    "GET /api/alerts/{alert_id}/photos/{sha256}": Probe(),
    "WS /ws": Probe(custom=_ws_probe),
    "POST /api/cap": Probe(custom=_cap_probe),
    "GET /api/devices": Probe(list=True),
    "GET /api/cameras/{camera_id}/latest.jpg": Probe(),
    "GET /api/cameras/{camera_id}/mjpeg": Probe(proof=False),
    "GET /api/media/{ref:path}": Probe(),
    "GET /api/reports": Probe(list=True),
    "GET /api/reports/{report_id}": Probe(),
    "GET /api/reports/{report_id}/media/{media_id}": Probe(),
    "POST /api/reports/{report_id}/replies": Probe(body={"text": "đã nhận", "public": False}),
    "POST /api/reports/{report_id}/merge": Probe(body={"into": 0}, custom=_merge_probe),
    "GET /api/kpi/dossiers": Probe(list=True, params=PERIOD),
    "GET /api/kpi/dossiers/list": Probe(list=True, params=PERIOD | {"figure": "received"}),
    "GET /api/kpi/dossiers/due": Probe(list=True),
    "GET /api/kpi/766": Probe(list=True, params=PERIOD),
    "GET /api/kpi/report": Probe(list=True, params=PERIOD),
    "GET /api/warnings": Probe(list=True),
    "GET /api/warnings/figures": Probe(list=True),
    "GET /api/warnings/{warning_id}": Probe(),
    "GET /api/warnings/{warning_id}/ledger": Probe(),
    "POST /api/warnings/{warning_id}/acknowledge": Probe(),
    "GET /api/incidents": Probe(list=True),
    "GET /api/on-call": Probe(list=True, params={"role": "commune_officer", "unit": B}),
    "GET /api/incidents/{incident_id}": Probe(),
    "POST /api/incidents/{incident_id}/actions": Probe(body={"action": "comment", "note": "thử"}),
    "GET /api/devices/{device_id}/readings": Probe(params={"metric": "water_level_cm"}),
    "GET /api/sectors/education": Probe(list=True, params=PERIOD),
    "GET /api/sectors/health": Probe(list=True, params=PERIOD),
    "GET /api/sectors/mentions": Probe(list=True, params=PERIOD),
    "GET /api/sectors/mentions/list": Probe(list=True, params=PERIOD),
    "POST /api/sectors/mentions": Probe(custom=_mention_probe),
    "GET /api/radio/status": Probe(list=True),
    "GET /api/radio/clusters": Probe(list=True),
    "GET /api/radio/commands/{correlation_id}": Probe(),
    "GET /api/radio/audio/{audio_id}/file": Probe(),
    "GET /api/radio/broadcasts": Probe(list=True),
    "GET /api/radio/broadcasts/{broadcast_id}": Probe(),
    "GET /api/radio/broadcasts/{broadcast_id}/proof": Probe(),
    "GET /api/radio/schedules": Probe(list=True),
    "GET /api/radio/schedules/{schedule_id}": Probe(),
}


def _path(template: str, ids: dict[str, Any]) -> str:
    path = template
    for name, value in ids.items():
        path = path.replace("{" + name + "}", str(value)).replace("{" + name + ":path}", str(value))
    return path


#: Valid bodies for routes that check the caller's role only after the body (so a refusal is not a 422).
ROLE_BODIES: dict[str, Probe] = {
    "POST /api/warnings/push/subscriptions": Probe(body={"endpoint": "https://push.example/abc",
                                                         "keys": {"p256dh": "x" * 87, "auth": "y" * 22}}),
    "POST /api/auth/password": Probe(body={"current_password": "một mật khẩu cũ", "new_password": "một mật khẩu mới"}),
    "POST /api/cap": Probe(body={}),
    "POST /api/sectors/mentions": Probe(body={"source": "giám sát", "url": "https://bao.example/x",
                                              "published_at": "2026-12-01T08:00:00+07:00", "title": "Tin"}),
}  # fmt: skip


def _call(w: World, method: str, path: str, headers: dict[str, str], probe: Probe | None = None) -> Any:
    kwargs: dict[str, Any] = {"headers": headers}
    if path == "/api/cap":
        return w.client.post(path, headers=headers | {"Content-Type": "application/cap+xml"}, content=b"<alert/>")
    if probe is not None and probe.params:
        kwargs["params"] = probe.params
    if method in ("POST", "PUT") and probe is not None and probe.files:
        kwargs["files"] = probe.files
    elif method in ("POST", "PUT"):
        kwargs["json"] = probe.body if probe is not None and probe.body is not None else {}
    if path.endswith("/mjpeg"):  # a stream: read its status and stop
        with w.client.stream(method, path, **kwargs) as response:
            return response
    return w.client.request(method, path, **kwargs)


def run_probe(w: World, key: str, probe: Probe) -> list[str]:
    """The leaks of one unit route for officer A against B's records."""
    method, template = key.split(" ", 1)
    leaks = list(probe.custom(w)) if probe.custom else []
    if method == "WS" or (probe.custom and probe.body is None and not probe.list):
        return leaks
    path = _path(template, w.ids)
    officer = _call(w, method, path, w.headers["officer_a"], probe)
    if probe.list:
        operator = _call(w, method, path, w.headers["operator"], probe)
        assert operator.status_code == 200, (key, operator.text)
        assert any(sign in operator.text for sign in B_SIGNS), f"{key}: the operator's answer shows nothing of B"
        if officer.status_code < 300 and any(sign in officer.text for sign in B_SIGNS):
            leaks.append(f"{key}: A's list shows B's records")
        return leaks
    if probe.proof and method == "GET":
        operator = _call(w, method, path, w.headers["operator"], probe)
        assert operator.status_code == 200, (key, path, operator.status_code, operator.text[:300])
    if officer.status_code < 300:
        leaks.append(f"{key}: A got B's record ({officer.status_code})")
    elif officer.status_code not in (403, 404):
        leaks.append(f"{key}: A got {officer.status_code} instead of 403/404: {officer.text[:200]}")
    return leaks


def check_declared(app: Any) -> None:
    missing = access.undeclared(app)
    assert not missing, f"routes without an access rule in ioc/http/access.py: {missing}"


# -- the tests ---------------------------------------------------------------------------------------


def test_every_route_has_a_declared_rule_and_every_unit_route_a_probe(world: World) -> None:
    app = world.client.app
    check_declared(app)
    keys = {key for key, _ in access.route_keys(app)}
    assert set(access.RULES) <= keys, f"rules for routes that do not exist: {set(access.RULES) - keys}"
    unit_routes = {k for k in keys if access.RULES[k].unit}
    assert unit_routes == set(PROBES), (
        f"unit routes without a probe: {unit_routes - set(PROBES)}; "
        f"probes of no unit route: {set(PROBES) - unit_routes}"
    )


def test_officer_of_tra_kot_gets_nothing_of_tra_son_on_any_route(world: World) -> None:
    leaks: list[str] = []
    for key in sorted(PROBES):
        leaks += run_probe(world, key, PROBES[key])
    assert leaks == [], f"{len(leaks)} leak(s):\n" + "\n".join(leaks)


def test_anonymous_and_other_roles_are_refused_as_declared(world: World) -> None:
    problems = []
    principals = ("admin", "operator", "leader", "officer_a", "device", "integration")
    role_of = {"officer_a": "commune_officer"}
    for key, _route in access.route_keys(world.client.app):
        rule = access.RULES[key]
        method, template = key.split(" ", 1)
        if method in ("MOUNT", "HEAD"):
            continue
        if rule.audience == "public":
            if method == "GET" and "{" not in template:  # declared public: it answers without credentials
                status = world.client.get(template, params=PERIOD).status_code
                if status in (401, 403):
                    problems.append(f"{key}: declared public but answers {status} without credentials")
            continue
        path = _path(template, world.ids | {"username": "khong-co", "name": "khong-co"})
        probe = ROLE_BODIES.get(key) or PROBES.get(key)
        if method == "WS":
            with world.client.websocket_connect(path) as ws:
                ws.send_text(json.dumps({"type": "auth", "access_token": "not-a-token"}))
                if ws.receive_json().get("type") != "error":
                    problems.append(f"{key}: a bad token was not refused")
            continue
        anonymous = _call(world, method, path, {}, probe)
        if anonymous.status_code != 401:
            problems.append(f"{key}: anonymous got {anonymous.status_code}")
        if rule.audience != "roles":
            continue
        for who in principals:
            if role_of.get(who, who) in rule.roles:
                continue
            response = _call(world, method, path, world.headers[who], probe)
            if response.status_code not in (403, 404):
                problems.append(f"{key}: {who} got {response.status_code}: {response.text[:160]}")
    assert problems == [], "\n".join(problems)


# -- the test of the test ----------------------------------------------------------------------------


def test_a_route_without_a_rule_fails_the_walk(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    app = world.client.app

    @app.get("/api/undeclared-thing")
    def undeclared_thing() -> dict[str, str]:
        return {"ok": "yes"}

    try:
        with pytest.raises(AssertionError, match="/api/undeclared-thing"):
            check_declared(app)
        monkeypatch.setitem(access.RULES, "GET /api/undeclared-thing", access.public())
        check_declared(app)  # declared: the walk passes again
    finally:
        app.router.routes.pop()


def _first(app: Any, count: int) -> None:
    """Move the last ``count`` routes added to the front (before the pages' catch-all mount)."""
    added = [app.router.routes.pop() for _ in range(count)]
    for route in added:
        app.router.routes.insert(0, route)


def test_a_declared_route_that_leaks_is_caught(world: World) -> None:
    app = world.client.app

    @app.get("/api/leaky-alert/{alert_id}")
    def leaky_alert(alert_id: int) -> dict[str, Any]:  # no confinement at all
        return {"rows": world.sql("SELECT id, unit_id, title FROM alerts WHERE id = %s", (alert_id,))}

    @app.get("/api/leaky-alerts")
    def leaky_alerts() -> dict[str, Any]:
        return {"rows": world.sql("SELECT id, unit_id, title FROM alerts")}

    _first(app, 2)
    try:
        assert run_probe(world, "GET /api/leaky-alert/{alert_id}", Probe()) != []
        assert run_probe(world, "GET /api/leaky-alerts", Probe(list=True)) != []
    finally:
        del app.router.routes[:2]


def test_the_commune_an_alert_is_assigned_to_sees_its_evidence(world: World) -> None:
    digest = secrets.token_hex(32)
    ref = f"evidence/{CAMERA_B}/{digest[:2]}/{digest}.jpg"
    (world.var / "media" / ref).parent.mkdir(parents=True, exist_ok=True)
    (world.var / "media" / ref).write_bytes(jpeg(7))
    alert = _alert(world.db, B, "Xâm nhập cầu Trà Sơn", evidence={"snapshot_ref": ref})
    officer = world.headers["officer_a"]
    assert world.client.get(f"/api/media/{ref}", headers=officer).status_code == 404  # not theirs yet
    assigned = world.client.post(f"/api/alerts/{alert}/actions", headers=world.headers["operator"],
                                 json={"action": "assign", "unit_id": A})  # fmt: skip
    assert assigned.status_code == 200, assigned.text
    seen = world.client.get(f"/api/media/{ref}", headers=officer)
    assert seen.status_code == 200 and seen.content == jpeg(7)
    # ... but not B's other evidence from the same camera.
    assert world.client.get(f"/api/media/{world.ids['ref']}", headers=officer).status_code == 404


def test_an_evidence_clip_follows_its_snapshot_s_access_and_answers_ranges(world: World) -> None:
    """The clip beside a snapshot (``<sha256>-clip.webm``): the camera's commune and district staff see
    it, with range requests (a <video> seeks with them); another commune does not, until the alert citing
    the snapshot is assigned to it."""
    digest = secrets.token_hex(32)
    snapshot = f"evidence/{CAMERA_B}/{digest[:2]}/{digest}.jpg"
    clip = snapshot.removesuffix(".jpg") + "-clip.webm"
    (world.var / "media" / snapshot).parent.mkdir(parents=True, exist_ok=True)
    (world.var / "media" / snapshot).write_bytes(jpeg(8))
    body = b"\x1a\x45\xdf\xa3" + bytes(range(256)) * 8
    (world.var / "media" / clip).write_bytes(body)
    alert = _alert(world.db, B, "Xâm nhập trường Trà Sơn", evidence={"snapshot_ref": snapshot, "clip_ref": clip})
    officer, operator = world.headers["officer_a"], world.headers["operator"]
    whole = world.client.get(f"/api/media/{clip}", headers=operator)
    assert whole.status_code == 200 and whole.content == body
    assert whole.headers["content-type"] == "video/webm" and whole.headers["accept-ranges"] == "bytes"
    part = world.client.get(f"/api/media/{clip}", headers=operator | {"Range": "bytes=4-99"})
    assert part.status_code == 206 and part.content == body[4:100]
    assert world.client.get(f"/api/media/{clip}", headers=officer).status_code == 404
    assert world.client.get(f"/api/media/{clip.replace('-clip', '-clap')}", headers=operator).status_code == 404
    assigned = world.client.post(f"/api/alerts/{alert}/actions", headers=operator,
                                 json={"action": "assign", "unit_id": A})  # fmt: skip
    assert assigned.status_code == 200, assigned.text
    assert world.client.get(f"/api/media/{clip}", headers=officer).content == body


def test_the_live_websocket_ends_within_5_s_of_token_expiry(world: World, mqtt_url: str) -> None:
    """Expiry, on an injected clock: the access token lapses 15 minutes after login; the stream's
    next credential check (every 2 s) ends it."""
    import time

    from staff import SECRET

    from ioc.auth.service import AuthContext
    from ioc.clock import ManualClock

    app = create_app(app_settings(world.db, mqtt_url, district_config=CONFIG / "district.yaml"))
    with TestClient(app, client=("10.99.0.1", 50000)) as client:
        clock = ManualClock(datetime.now(UTC))
        app.state.auth = AuthContext(SECRET, clock=clock)
        probe = World(client, world.db, world.var)
        token = probe.user("commune_officer", A)["Authorization"].split(" ", 1)[1]
        with client.websocket_connect("/ws?topics=alert") as ws:
            ws.send_text(json.dumps({"type": "auth", "access_token": token}))
            while ws.receive_json().get("type") != "snapshot_end":
                pass
            clock.advance(timedelta(minutes=16))
            since = time.monotonic()
            message = ws.receive_json()
            assert message["type"] == "error" and "expired" in message["reason"], message
            assert time.monotonic() - since < 5.0
