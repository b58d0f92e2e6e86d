"""Citizen reports: tracking codes, photo checks (EXIF stripped, bombs and fakes refused), routing
to the commune by polygon with an alert that reaches only that commune, public lookup without
personal data, rating rules and the rate limit."""

from __future__ import annotations

import io
import struct
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from shapely.geometry import shape
from staff import district_app_settings, token

from ioc.district.loader import load_district
from ioc.http.app import create_app
from ioc.reports import codes
from ioc.reports.media import MediaRefused, store_photo

ROOT = Path(__file__).resolve().parent.parent


def _inside(unit_id: str) -> tuple[float, float]:
    district = load_district(ROOT / "config" / "district.yaml")
    unit = next(u for u in district.units if u.id == unit_id)
    point = shape(unit.polygon.model_dump()).representative_point()
    return point.y, point.x


def _jpeg_with_gps(lat: float, lon: float) -> bytes:
    image = Image.new("RGB", (64, 48), (200, 120, 40))
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"  # Make

    def dms(value: float) -> tuple:
        d = int(value)
        m = int((value - d) * 60)
        s = round(((value - d) * 60 - m) * 60, 2)
        return (float(d), float(m), float(s))

    exif[0x8825] = {1: "N", 2: dms(lat), 3: "E", 4: dms(lon)}
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif)
    return out.getvalue()


def _png_bomb(width: int = 50_000, height: int = 50_000) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 1024))
        + chunk(b"IEND", b"")
    )


def test_tracking_codes_are_unique_readable_and_not_sequential() -> None:
    made = [codes.new_code() for _ in range(10_000)]
    assert len(set(made)) == 10_000
    assert all(len(c) == 8 and set(c) <= set(codes.ALPHABET) for c in made)
    # No sequence: consecutive codes share no more leading symbols than chance would give.
    shared = sum(a[:2] == b[:2] for a, b in zip(made, made[1:], strict=False))
    assert shared < 50  # expected ~10 of 9,999 with 1024 two-symbol prefixes
    code = made[0]
    shown = codes.display(code)
    assert shown.startswith("PA-") and codes.normalise(shown.lower().replace("-", " ")) == code
    assert codes.normalise("PA-1234") is None


def test_photo_exif_is_read_then_stripped(tmp_path: Path) -> None:
    stored = store_photo(_jpeg_with_gps(15.43, 108.07), tmp_path)
    assert stored.gps is not None and abs(stored.gps[0] - 15.43) < 1e-3 and abs(stored.gps[1] - 108.07) < 1e-3
    for key in (stored.storage_key, stored.thumb_key):
        with Image.open(tmp_path / key) as image:
            assert dict(image.getexif()) == {} and "exif" not in image.info


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("png bomb", _png_bomb(), "vượt giới hạn"),
        ("30 MB", b"\xff\xd8" + b"\0" * (30 * 1024 * 1024), "quá lớn"),
        ("php renamed .jpg", b"<?php system($_GET['c']); ?>", "không phải ảnh"),
        ("truncated jpeg", _jpeg_with_gps(15.4, 108.1)[:300], "hỏng"),
        ("gif", b"GIF89a\x01\x00\x01\x00\x00\x00\x00;", "không"),
    ],
)
def test_bad_photos_are_refused_with_a_reason_and_nothing_is_stored(tmp_path: Path, name: str, data: bytes,
                                                                     reason: str) -> None:  # fmt: skip
    with pytest.raises(MediaRefused, match=reason):
        store_photo(data, tmp_path)
    assert not any(p.is_file() for p in tmp_path.rglob("*")), name


@pytest.fixture(scope="module")
def app(database_factory: Callable[..., str], mqtt_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    url = database_factory(migrated=True)
    settings = district_app_settings(url, mqtt_url, tmp_path_factory.mktemp("var"))
    with TestClient(create_app(settings)) as client:
        yield client, url


def test_report_with_a_photo_in_tra_kot_reaches_only_tra_kot_over_the_websocket(app) -> None:
    client, url = app
    kot = token(client, url, "commune_officer", "tra-kot")
    giap = token(client, url, "commune_officer", "tra-giap")
    lat, lon = _inside("tra-kot")
    with client.websocket_connect(f"/ws?topics=alert&access_token={kot}") as ws_kot, \
            client.websocket_connect(f"/ws?topics=alert&access_token={giap}") as ws_giap:  # fmt: skip
        for ws in (ws_kot, ws_giap):
            while ws.receive_json()["type"] != "snapshot_end":
                pass
        deadline = time.monotonic() + 10
        while not client.app.state.hub_ready.is_set():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        sent = time.monotonic()
        response = client.post(
            "/api/public/reports",
            data={"category": "ha-tang", "description": "Cầu treo bị hỏng ván, rất nguy hiểm cho học sinh.",
                  "phone": "0905 123 456", "name": "Hồ Văn A", "lat": str(lat), "lon": str(lon)},
            files=[("photos", ("cau.jpg", _jpeg_with_gps(lat, lon), "image/jpeg"))],
        )  # fmt: skip
        assert response.status_code == 201, response.text
        receipt = response.json()
        assert receipt["unit_id"] == "tra-kot" and receipt["tracking_code"].startswith("PA-")
        frame = ws_kot.receive_json()
        assert time.monotonic() - sent < 1.5
        event = frame["event"]
        assert event["type"] == "alert.created" and event["unit_id"] == "tra-kot"
        alert_id = event["data"]["id"]
    # Trà Giáp's officer: not on the websocket (checked by scope in the RBAC tests), not over HTTP.
    assert client.get(f"/api/alerts/{alert_id}", headers={"Authorization": f"Bearer {giap}"}).status_code == 404
    detail = client.get(f"/api/alerts/{alert_id}", headers={"Authorization": f"Bearer {kot}"}).json()
    assert "0905" not in str(detail["evidence"])
    public = client.get(f"/api/public/reports/{receipt['tracking_code'].lower()}").json()
    assert public["status"] == "received" and public["unit_name"] == "Trà Kót" and public["photos"] == 1
    assert "0905" not in str(public) and "Hồ Văn A" not in str(public)
    early = client.post(f"/api/public/reports/{receipt['tracking_code']}/rating", json={"rating": 5})
    assert early.status_code == 409


def test_a_photo_gps_places_a_report_sent_without_a_location(app) -> None:
    client, _ = app
    lat, lon = _inside("tra-ka")
    response = client.post(
        "/api/public/reports",
        data={"category": "moi-truong", "description": "Rác thải đổ bừa bãi ven suối."},
        files=[("photos", ("rac.jpg", _jpeg_with_gps(lat, lon), "image/jpeg"))],
    )
    assert response.status_code == 201, response.text
    assert (response.json()["unit_id"], response.json()["location_from"]) == ("tra-ka", "photo")


def test_refusals_have_reasons_and_the_rate_limit_answers_429(app) -> None:
    client, _ = app
    fake = client.post("/api/public/reports", data={"category": "khac", "description": "ảnh giả mạo"},
                       files=[("photos", ("a.jpg", b"<?php echo 1; ?>", "image/jpeg"))])  # fmt: skip
    assert fake.status_code in (400, 429)
    if fake.status_code == 400:
        assert "không phải ảnh" in fake.json()["detail"]
    assert client.get("/api/public/reports/PA-12").status_code == 400
    assert client.get("/api/public/reports/PA-AAAA-BBBB").status_code == 404
    statuses = [client.post("/api/public/reports", data={"category": "khac", "description": "thử giới hạn"}).status_code
                for _ in range(8)]  # fmt: skip
    assert 429 in statuses
    limited = client.post("/api/public/reports", data={"category": "khac", "description": "thử giới hạn"})
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
    assert client.get("/api/public/report-categories").status_code == 200  # others keep being served


def test_the_report_follows_its_alert_and_can_then_be_rated_once(app) -> None:
    client, url = app
    client.app.state.__dict__.pop("public_submit", None)  # a fresh address bucket after the rate-limit test
    lat, lon = _inside("tra-nu")
    receipt = client.post("/api/public/reports", data={"category": "dien-nuoc", "description": "Mất nước 3 ngày.",
                                                        "lat": str(lat), "lon": str(lon)}).json()  # fmt: skip
    code = receipt["tracking_code"]
    officer = {"Authorization": f"Bearer {token(client, url, 'commune_officer', 'tra-nu')}"}
    alert_id = next(a["id"] for a in client.get("/api/alerts", headers=officer).json()["items"]
                    if a["kind"] == "report.new")  # fmt: skip
    steps = [("acknowledge", "in_progress"), ("resolve", "resolved")]
    for action, status in steps:
        moved = client.post(f"/api/alerts/{alert_id}/actions", json={"action": action, "note": "đã sửa"},
                            headers=officer)  # fmt: skip
        assert moved.status_code == 200, moved.text
        public = client.get(f"/api/public/reports/{code}").json()
        assert public["status"] == status
    assert public["resolved_at"] is not None
    # The citizen's history: each change after receipt, once, in order, with times only (no staff, no notes).
    assert [step["status"] for step in public["history"]] == ["in_progress", "resolved"]
    assert all(set(step) == {"at", "status"} for step in public["history"])
    assert client.post(f"/api/public/reports/{code}/rating", json={"rating": 4, "comment": "Nhanh"}).status_code == 204
    assert client.post(f"/api/public/reports/{code}/rating", json={"rating": 5}).status_code == 409


def test_staff_see_their_communes_reports_with_contact_and_replies_reach_the_citizen(app) -> None:
    client, url = app
    client.app.state.__dict__.pop("public_submit", None)
    lat, lon = _inside("tra-doc")
    receipt = client.post(
        "/api/public/reports",
        data={"category": "y-te", "description": "Trạm y tế thôn 3 đóng cửa giờ hành chính.", "lat": str(lat),
              "lon": str(lon), "phone": "0905 777 888"},
        files=[("photos", ("tram.jpg", _jpeg_with_gps(lat, lon), "image/jpeg"))],
    ).json()  # fmt: skip
    officer = {"Authorization": f"Bearer {token(client, url, 'commune_officer', 'tra-doc')}"}
    stranger = {"Authorization": f"Bearer {token(client, url, 'commune_officer', 'tra-tan')}"}
    listed = client.get("/api/reports", params={"q": "tram y te"}, headers=officer).json()
    [item] = [r for r in listed if r["tracking_code"] == receipt["tracking_code"]]
    detail = client.get(f"/api/reports/{item['id']}", headers=officer).json()
    assert detail["reporter_phone"] == "0905 777 888" and len(detail["media"]) == 1
    photo = client.get(detail["media"][0]["url"], headers=officer)
    assert photo.status_code == 200 and photo.content[:2] == b"\xff\xd8"
    assert client.get(f"/api/reports/{item['id']}", headers=stranger).status_code == 404
    assert receipt["tracking_code"] not in str(client.get("/api/reports", headers=stranger).json())
    for text, public in (("Đã cử cán bộ xuống kiểm tra.", True), ("Ghi chú nội bộ: liên hệ trưởng thôn.", False)):
        made = client.post(f"/api/reports/{item['id']}/replies", json={"text": text, "public": public},
                           headers=officer)  # fmt: skip
        assert made.status_code == 201, made.text
    public_view = client.get(f"/api/public/reports/{receipt['tracking_code']}").json()
    assert [r["text"] for r in public_view["replies"]] == ["Đã cử cán bộ xuống kiểm tra."]


def test_ioc_only_reports_never_reach_the_commune(app) -> None:
    client, url = app
    client.app.state.__dict__.pop("public_submit", None)
    lat, lon = _inside("tra-bui")
    receipt = client.post("/api/public/reports", data={"category": "can-bo", "lat": str(lat), "lon": str(lon),
                          "description": "Cán bộ địa chính xã đòi tiền khi làm hồ sơ."}).json()  # fmt: skip
    assert receipt["unit_id"] == "tra-bui"
    officer = {"Authorization": f"Bearer {token(client, url, 'commune_officer', 'tra-bui')}"}
    operator = {"Authorization": f"Bearer {token(client, url, 'operator')}"}
    assert receipt["tracking_code"] not in str(client.get("/api/reports", headers=officer).json())
    assert not any(a["kind"] == "report.new" and "Cán bộ" in a["title"]
                   for a in client.get("/api/alerts", headers=officer).json()["items"])  # fmt: skip
    seen = [r for r in client.get("/api/reports", headers=operator).json()
            if r["tracking_code"] == receipt["tracking_code"]]  # fmt: skip
    assert len(seen) == 1
    alert = client.get(f"/api/alerts/{seen[0]['alert_id']}", headers=operator).json()
    assert alert["unit_id"] is None  # a district-level alert


def _video(path: Path, seconds: float, fps: int = 10) -> bytes:
    import cv2
    import numpy as np

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (160, 120))
    for i in range(int(seconds * fps)):
        writer.write(np.full((120, 160, 3), i % 255, np.uint8))
    writer.release()
    return path.read_bytes()


def test_videos_short_ones_are_kept_long_ones_refused_and_nothing_half_stored_remains(app, tmp_path: Path) -> None:
    client, url = app
    client.app.state.__dict__.pop("public_submit", None)
    lat, lon = _inside("tra-son")
    form = {"category": "thien-tai", "description": "Nước suối dâng cao, cuốn trôi cầu tạm.", "lat": str(lat),
            "lon": str(lon)}  # fmt: skip
    short = client.post("/api/public/reports", data=form,
                        files=[("video", ("lu.mp4", _video(tmp_path / "s.mp4", 3), "video/mp4"))])  # fmt: skip
    assert short.status_code == 201, short.text
    photo = _jpeg_with_gps(lat, lon)
    media_root = Path(client.app.state.ioc.settings.var_dir) / "media"
    before = {p.name for p in media_root.rglob("*") if p.is_file()}
    long = client.post("/api/public/reports", data=form,
                       files=[("photos", ("x.jpg", photo, "image/jpeg")),
                              ("video", ("dai.mp4", _video(tmp_path / "l.mp4", 600, fps=1), "video/mp4"))])  # fmt: skip
    assert long.status_code == 400 and "tối đa 60 giây" in long.json()["detail"]
    assert {p.name for p in media_root.rglob("*") if p.is_file()} == before  # the photo was not left behind
    operator = {"Authorization": f"Bearer {token(client, url, 'operator')}"}
    report = next(r for r in client.get("/api/reports", headers=operator).json()
                  if r["tracking_code"] == short.json()["tracking_code"])  # fmt: skip
    detail = client.get(f"/api/reports/{report['id']}", headers=operator).json()
    assert [m["kind"] for m in detail["media"]] == ["video"]


def test_served_photos_carry_no_exif(app) -> None:
    client, url = app
    client.app.state.__dict__.pop("public_submit", None)
    lat, lon = _inside("tra-giang")
    sent = client.post("/api/public/reports", data={"category": "ha-tang", "description": "Ổ gà lớn giữa đường."},
                       files=[("photos", ("o-ga.jpg", _jpeg_with_gps(lat, lon), "image/jpeg"))]).json()  # fmt: skip
    operator = {"Authorization": f"Bearer {token(client, url, 'operator')}"}
    report = next(r for r in client.get("/api/reports", headers=operator).json()
                  if r["tracking_code"] == sent["tracking_code"])  # fmt: skip
    url_photo = client.get(f"/api/reports/{report['id']}", headers=operator).json()["media"][0]["url"]
    for params in ({}, {"thumb": "true"}):
        served = client.get(url_photo, params=params, headers=operator)
        with Image.open(io.BytesIO(served.content)) as image:
            assert dict(image.getexif()) == {} and "exif" not in image.info


def test_a_nearby_report_of_the_same_category_is_suggested_merged_and_counts_plus_one(app) -> None:
    client, url = app
    client.app.state.__dict__.pop("public_submit", None)
    lat, lon = _inside("tra-ka")
    first = client.post("/api/public/reports", data={"category": "an-toan-giao-thong", "lat": str(lat),
                        "lon": str(lon), "description": "Đá lăn xuống đường ĐT616."}).json()  # fmt: skip
    second = client.post("/api/public/reports", data={"category": "an-toan-giao-thong", "lat": str(lat + 0.0002),
                         "lon": str(lon), "description": "Sạt đá trên ĐT616 gần cầu."}).json()  # fmt: skip
    operator = {"Authorization": f"Bearer {token(client, url, 'operator')}"}
    reports = {r["tracking_code"]: r for r in client.get("/api/reports", headers=operator).json()}
    a, b = reports[first["tracking_code"]], reports[second["tracking_code"]]
    assert b["suggested_duplicate_of"] == a["id"]
    merged = client.post(f"/api/reports/{b['id']}/merge", json={"into": a["id"]}, headers=operator)
    assert merged.status_code == 204, merged.text
    view = client.get(f"/api/public/reports/{second['tracking_code']}").json()
    assert view["merged_into"] == first["tracking_code"] and view["tracking_code"] == second["tracking_code"]
    assert view["supporters"] == 2
    # The second reporter now follows the first report's status.
    client.post(f"/api/alerts/{a['alert_id']}/actions", json={"action": "start"}, headers=operator)
    assert client.get(f"/api/public/reports/{second['tracking_code']}").json()["status"] == "in_progress"
    again = client.post(f"/api/reports/{a['id']}/merge", json={"into": a["id"]}, headers=operator)
    assert again.status_code == 409


def test_a_citizen_reopens_a_resolved_report_with_a_photo(app) -> None:
    client, url = app
    client.app.state.__dict__.pop("public_submit", None)
    lat, lon = _inside("tra-my")
    sent = client.post("/api/public/reports", data={"category": "moi-truong", "lat": str(lat), "lon": str(lon),
                       "description": "Rác tồn đọng ở chợ Trà My."}).json()  # fmt: skip
    code = sent["tracking_code"]
    photo = [("photo", ("van-con.jpg", _jpeg_with_gps(lat, lon), "image/jpeg"))]
    early = client.post(f"/api/public/reports/{code}/reopen", data={"text": "Vẫn còn rác."}, files=photo)
    assert early.status_code == 409
    operator = {"Authorization": f"Bearer {token(client, url, 'operator')}"}
    report = next(r for r in client.get("/api/reports", headers=operator).json() if r["tracking_code"] == code)
    client.post(f"/api/alerts/{report['alert_id']}/actions", json={"action": "resolve", "note": "đã dọn"},
                headers=operator)  # fmt: skip
    assert client.get(f"/api/public/reports/{code}").json()["status"] == "resolved"
    reopened = client.post(f"/api/public/reports/{code}/reopen", data={"text": "Vẫn còn rác sau 2 ngày."}, files=photo)
    assert reopened.status_code == 204, reopened.text
    assert client.get(f"/api/public/reports/{code}").json()["status"] == "in_progress"
    audit = client.get(f"/api/alerts/{report['alert_id']}", headers=operator).json()["audit"]
    assert audit[-1]["action"] == "reopen" and audit[-1]["actor"] == "citizen" and audit[-1]["photo_ref"]


def test_an_officer_resolves_with_a_photo_from_the_phone(app) -> None:
    client, url = app
    client.app.state.__dict__.pop("public_submit", None)
    lat, lon = _inside("tra-giap")
    sent = client.post("/api/public/reports", data={"category": "ha-tang", "lat": str(lat), "lon": str(lon),
                       "description": "Cống thoát nước bị tắc."}).json()  # fmt: skip
    officer = {"Authorization": f"Bearer {token(client, url, 'commune_officer', 'tra-giap')}"}
    other = {"Authorization": f"Bearer {token(client, url, 'commune_officer', 'tra-kot')}"}
    report = next(r for r in client.get("/api/reports", headers=officer).json()
                  if r["tracking_code"] == sent["tracking_code"])  # fmt: skip
    alert_id = report["alert_id"]
    upload = client.post(f"/api/alerts/{alert_id}/photos", headers=officer,
                         files={"photo": ("sau.jpg", _jpeg_with_gps(lat, lon), "image/jpeg")})  # fmt: skip
    assert upload.status_code == 201, upload.text
    ref = upload.json()
    denied = client.post(f"/api/alerts/{alert_id}/photos", headers=other,
                         files={"photo": ("x.jpg", _jpeg_with_gps(lat, lon), "image/jpeg")})  # fmt: skip
    assert denied.status_code == 404
    done = client.post(f"/api/alerts/{alert_id}/actions", headers=officer,
                       json={"action": "resolve", "note": "Đã thông cống.", "photo_ref": ref["photo_ref"]})  # fmt: skip
    assert done.status_code == 200, done.text
    served = client.get(ref["url"], headers=officer)
    assert served.status_code == 200
    with Image.open(io.BytesIO(served.content)) as image:
        assert dict(image.getexif()) == {}
    assert client.get(ref["url"], headers=other).status_code == 404
    assert client.get(f"/api/public/reports/{sent['tracking_code']}").json()["status"] == "resolved"
