"""Against a real `ioc serve` process: a third-party Open311 client (PyPI ``georeport``) reads the public
list and finds no contact data, no tracking codes, no sensitive text; streams end within 5 s of a
logout or a disabled account; and after the whole session no token appears in the server's log."""

from __future__ import annotations

import io
import json
import os
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psycopg
import pytest
import requests
from georeport import GeoReport
from PIL import Image
from websockets.sync.client import connect

from ioc.auth import repository
from ioc.auth.tokens import new_api_key
from ioc.district.bootstrap import load_district_into
from ioc.net import free_port
from ioc.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "config" / "district.yaml"
PASSWORD = "mật khẩu đủ dài 2026"
CAMERA_A = "cam-tra-kot-school-01"


@dataclass
class Live:
    base: str
    db: str
    var: Path
    log: Path
    proc: subprocess.Popen
    #: Every secret handed out during the session: none may appear in the log.
    secrets: list[str] = field(default_factory=list)

    def login(self, username: str) -> dict[str, Any]:
        response = httpx.post(f"{self.base}/api/auth/login", json={"username": username, "password": PASSWORD})
        assert response.status_code == 200, response.text
        pair = response.json()
        self.secrets += [pair["access_token"], pair["refresh_token"]]
        return pair

    def user(self, role: str, unit: str | None = None) -> str:
        from ioc.auth import passwords

        name = f"live-{role.replace('_', '-')}-{secrets.token_hex(3)}"
        with psycopg.connect(self.db) as conn:
            repository.create_user(conn, username=name, display_name=name, role=role, unit_id=unit,
                                   password_hash=passwords.hash_password(PASSWORD))  # fmt: skip
        return name


def jpeg(seed: int) -> bytes:
    buffer = io.BytesIO()
    pixels = np.random.default_rng(seed).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(buffer, format="JPEG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def live(database_factory: Callable[..., str], mqtt_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    url = database_factory()
    load_district_into(url, Settings(_env_file=None, district_config=CONFIG), {})  # type: ignore[call-arg]
    var = tmp_path_factory.mktemp("var")
    log = var / "serve.log"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("IOC_")}
    env.update(IOC_DATABASE_URL=url, IOC_MQTT_URL=mqtt_url, IOC_SECRET_KEY="live-test-secret-" + "z" * 40,
               IOC_VAR_DIR=str(var), IOC_DISTRICT_CONFIG=str(CONFIG), IOC_ARGON2_PROFILE="test-insecure",
               IOC_LOG_LEVEL="INFO", PYTHONUNBUFFERED="1")  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-m", "ioc.cli.main", "serve", "--host", "127.0.0.1", "--port", str(port)],
                            env=env, cwd=ROOT, stdout=log.open("w"), stderr=subprocess.STDOUT)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log.read_text()[-3000:]
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)
        yield Live(base, url, var, log, proc)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _point(live: Live, unit: str) -> tuple[float, float]:
    with psycopg.connect(live.db) as conn:
        return conn.execute("SELECT lat, lon FROM devices WHERE unit_id = %s AND lat IS NOT NULL ORDER BY id LIMIT 1",
                            (unit,)).fetchone()  # fmt: skip


def _submit(live: Live, category: str, text: str, point: tuple[float, float], **extra: str) -> str:
    form = {"category": category, "description": text, "lat": str(point[0]), "lon": str(point[1]),
            "name": "Nguyễn Văn Bí Mật", "phone": "0905123987", "email": "bimat@example.vn", "consent": "true",
            **extra}  # fmt: skip
    response = httpx.post(f"{live.base}/api/public/reports", data=form)
    assert response.status_code == 201, response.text
    code = response.json()["tracking_code"]
    live.secrets.append(code)
    return code


# -- privacy through a third-party Open311 client ------------------------------------------------------


def test_a_third_party_open311_client_sees_no_contact_data_no_codes_no_sensitive_text(live: Live) -> None:
    point = _point(live, "tra-kot")
    tag = secrets.token_hex(3)
    public_code = _submit(live, "ha-tang", f"Cầu treo hỏng ván {tag}", point, address="Thôn 2, Trà Kót")
    coarse_code = _submit(live, "an-toan-giao-thong", f"Ổ gà giữa đường {tag}", point, address="Nhà ông Ba, thôn 3")
    sensitive_text = f"Có người buôn bán trái phép ở nhà số 5 {tag}"
    sensitive_code = _submit(live, "an-ninh-trat-tu", sensitive_text, point)
    officials_text = f"Cán bộ xã Trà Kót nhận tiền khi làm giấy tờ {tag}"
    officials_code = _submit(live, "can-bo", officials_text, point)
    codes = [public_code, coarse_code, sensitive_code, officials_code]

    client = GeoReport(f"{live.base}/open311/v2", jurisdiction="bac-tra-my")
    listed = client.get_service_requests()
    as_xml = GeoReport(f"{live.base}/open311/v2", jurisdiction="bac-tra-my", output_format="xml")
    listed_xml = as_xml.get_service_requests()
    text = json.dumps(listed, ensure_ascii=False, default=str) + json.dumps(listed_xml, ensure_ascii=False)
    for secret in ("0905123987", "bimat@example.vn", "Bí Mật", sensitive_text, officials_text, "Nhà ông Ba"):
        assert secret not in text, secret
    for code in codes:
        assert code not in text and code.replace("-", "") not in text, code
    mine = {r["service_code"]: r for r in listed if tag in (r.get("description") or "") or r["service_code"] in
            ("an-ninh-trat-tu",)}  # fmt: skip
    assert "can-bo" not in {r["service_code"] for r in listed}  # IOC-only: not listed at all
    assert mine["ha-tang"]["lat"] == pytest.approx(point[0]) and mine["ha-tang"]["address"] == "Thôn 2, Trà Kót"
    coarse = mine["an-toan-giao-thong"]
    assert coarse["address"] is None and coarse["lat"] == pytest.approx(round(point[0], 2))
    assert coarse["lat"] != pytest.approx(point[0]) or round(point[0], 2) == point[0]
    sensitive = next(r for r in listed if r["service_code"] == "an-ninh-trat-tu")
    assert sensitive["description"] is None
    # The public id reads the request back; a tracking code does not.
    public_id = mine["ha-tang"]["service_request_id"]
    assert public_id.startswith("YC-") and client.get_service_request(public_id)["service_code"] == "ha-tang"
    with pytest.raises(requests.HTTPError):
        client.get_service_request(public_code)
    # Rating or reopening with the public id is refused; the reporter's code works (once resolved).
    for action, kwargs in (("rating", {"json": {"rating": 5}}),
                           ("reopen", {"data": {"text": "vẫn chưa sửa"},
                                       "files": {"photo": ("a.jpg", jpeg(1), "image/jpeg")}})):  # fmt: skip
        refused = httpx.post(f"{live.base}/api/public/reports/{public_id}/{action}", **kwargs)
        assert refused.status_code in (400, 404), (action, refused.status_code, refused.text)
    operator = live.login(live.user("operator"))["access_token"]
    with psycopg.connect(live.db) as conn:
        from ioc.reports import codes as report_codes

        alert_id = conn.execute("SELECT alert_id FROM reports WHERE tracking_code = %s",
                                (report_codes.normalise(public_code),)).fetchone()[0]  # fmt: skip
    for action in ("acknowledge", "resolve"):
        done = httpx.post(f"{live.base}/api/alerts/{alert_id}/actions", headers={"Authorization": f"Bearer {operator}"},
                          json={"action": action, "note": "đã sửa"})  # fmt: skip
        assert done.status_code == 200, done.text
    rate = f"{live.base}/api/public/reports/{{}}/rating"
    assert httpx.post(rate.format(public_id), json={"rating": 5}).status_code in (400, 404)  # resolved: still no
    assert httpx.post(rate.format(public_code), json={"rating": 5}).status_code == 204


# -- streams end at logout ------------------------------------------------------------------------------


def _until_closed(read: Callable[[], Any], box: dict[str, float]) -> None:
    try:
        while True:
            read()
    except Exception:  # noqa: BLE001 - the end of the stream is what we wait for
        box["ended"] = time.monotonic()


def test_the_live_websocket_ends_within_5_s_of_logout(live: Live) -> None:
    pair = live.login(live.user("commune_officer", "tra-kot"))
    ws = connect(live.base.replace("http", "ws") + "/ws")
    ws.send(json.dumps({"type": "auth", "access_token": pair["access_token"]}))
    while json.loads(ws.recv(timeout=10)).get("type") != "snapshot_end":
        pass
    box: dict[str, float] = {}
    reader = threading.Thread(target=_until_closed, args=(lambda: ws.recv(timeout=30), box), daemon=True)
    reader.start()
    logout = time.monotonic()
    assert httpx.post(f"{live.base}/api/auth/logout", json={"refresh_token": pair["refresh_token"]}).status_code == 204
    reader.join(timeout=10)
    assert "ended" in box, "the websocket was still open 10 s after logout"
    assert box["ended"] - logout < 5.0, box["ended"] - logout
    ws.close()


@pytest.mark.parametrize("how", ["logout", "disable"])
def test_an_mjpeg_stream_ends_within_5_s_of_logout_or_disable(live: Live, how: str) -> None:
    name = live.user("commune_officer", "tra-kot")
    pair = live.login(name)
    frame = live.var / "media" / "live" / f"{CAMERA_A}.jpg"
    frame.parent.mkdir(parents=True, exist_ok=True)
    stop = threading.Event()

    def camera() -> None:  # a detector writing a new frame every 0.2 s
        seed = 0
        while not stop.is_set():
            frame.with_suffix(".tmp").write_bytes(jpeg(seed))
            frame.with_suffix(".tmp").replace(frame)
            seed += 1
            time.sleep(0.2)

    threading.Thread(target=camera, daemon=True).start()
    headers = {"Authorization": f"Bearer {pair['access_token']}"}
    box: dict[str, float] = {}
    try:
        with httpx.stream("GET", f"{live.base}/api/cameras/{CAMERA_A}/mjpeg", headers=headers, timeout=30) as stream:
            assert stream.status_code == 200
            chunks = stream.iter_bytes()
            received = b""
            while received.count(b"--frame") < 2:
                received += next(chunks)

            def read() -> None:
                next(chunks)

            reader = threading.Thread(target=_until_closed, args=(read, box), daemon=True)
            reader.start()
            since = time.monotonic()
            if how == "logout":
                assert httpx.post(f"{live.base}/api/auth/logout", headers=headers).status_code == 204
            else:
                admin = live.login(live.user("admin"))["access_token"]
                off = httpx.post(f"{live.base}/api/users/{name}/disable", headers={"Authorization": f"Bearer {admin}"})
                assert off.status_code in (200, 204), off.text
            reader.join(timeout=10)
    finally:
        stop.set()
    assert "ended" in box, f"the MJPEG stream was still sending 10 s after {how}"
    assert box["ended"] - since < 5.0, box["ended"] - since


# -- no token in the logs (runs last: it greps the whole session's log) --------------------------------


def test_zz_no_token_or_tracking_code_in_the_server_log(live: Live) -> None:
    pair = live.login(live.user("operator"))
    token = pair["access_token"]
    # What the pages and other clients do with tokens in URLs: an <img> and a websocket with ?access_token=.
    assert httpx.get(f"{live.base}/api/cameras/{CAMERA_A}/latest.jpg", params={"access_token": token}).status_code \
        in (200, 404)  # fmt: skip
    with connect(live.base.replace("http", "ws") + f"/ws?access_token={token}") as ws:
        assert json.loads(ws.recv(timeout=10))["type"] == "hello"
    key = new_api_key()
    live.secrets.append(key)
    httpx.get(f"{live.base}/api/devices", params={"api_key": key})
    refreshed = httpx.post(f"{live.base}/api/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    live.secrets += [refreshed.json()["access_token"], refreshed.json()["refresh_token"]]
    time.sleep(0.5)  # let the access log flush
    log = live.log.read_text()
    assert "GET /api/cameras/" in log and "[redacted]" in log, "the access log is not there: the test proves nothing"
    leaked = [s[:12] + "…" for s in live.secrets if s in log or s.replace("-", "") in log]
    assert leaked == [], f"secrets in the server log: {leaked}"
