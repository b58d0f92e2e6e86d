"""The operations wall in a real browser against the running system (API, ingest, detector, real
broker and database): an alert a device publishes on MQTT shows within 2 s, the operator
acknowledges it and the commune's console sees it acknowledged; a camera tile shows the detector's
annotated frame; a hub restart loses no alert; screenshots at 1920x1080 and 3840x2160.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import SCREENSHOTS, RunningSystem, wait_until

STATIC = Path(__file__).resolve().parents[2] / "dashboards" / "static"

CAMERA = "cam-tra-my-centre-01"
LIVE_S = 2.0


def _wait_online(page: Any) -> None:
    page.wait_for_selector("body[data-live=online]", timeout=20_000)


def _show_alerts(page: Any) -> None:
    """The queue panel opens on incidents; these tests work on the raw alerts, one tab away. The tabs
    answer once the wall has started (it marks the panel with the tab shown)."""
    page.wait_for_selector(".queue-panel[data-tab]", state="attached", timeout=20_000)
    page.click(".queue-tab[data-tab=alerts]")
    page.wait_for_selector(".queue-panel[data-tab=alerts]", timeout=5_000)


def _critical_water(system: RunningSystem, unit: str) -> str:
    """Publish a water level past the sensor's critical level (as the sensor would); answers its device id."""
    device = f"sensor-{unit}-bridge-water"
    system.publish(unit, "sensor", device, "telemetry", {"metrics": {"water_level_cm": 480.0}})
    return device


def _alert_id(system: RunningSystem, unit: str) -> int | None:
    rows = system.query("SELECT id FROM alerts WHERE kind = 'sensor.level' AND unit_id = %s ORDER BY id DESC", (unit,))
    return rows[0][0] if rows else None


def _csp_errors(page: Any) -> list[str]:
    return [e for e in page.errors if "Content Security Policy" in e or "Refused to" in e]


@dataclass
class Acknowledged:
    alert_id: int
    shown_after_s: float
    page_errors: list[str]


@pytest.fixture(scope="module")
def acknowledged(system: RunningSystem, browser: Any) -> Acknowledged:
    """On the wall: a critical water level published on MQTT appears in the queue; the operator
    opens it and acknowledges it."""
    context = browser.new_context(viewport={"width": 1920, "height": 1080}, base_url=system.base_url)
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda msg: msg.type == "error" and errors.append(msg.text))
    try:
        page.goto("/")
        page.fill("#username", "operator1")
        page.fill("#password", system.password("operator1"))
        page.click("button[type=submit]")
        _wait_online(page)
        _show_alerts(page)
        started = time.monotonic()
        _critical_water(system, "tra-son")
        row = page.locator("#queue li[data-alert-id]", has_text="cầu Trà Sơn").first
        row.wait_for(state="visible", timeout=15_000)
        shown_after = time.monotonic() - started
        alert_id = int(row.get_attribute("data-alert-id"))
        assert alert_id == _alert_id(system, "tra-son")
        assert row.get_attribute("data-status") == "new"
        # The map colours the alert's commune and the row names it.
        page.wait_for_selector("#map path[data-unit-id='tra-son'][data-severity=severe]", timeout=5_000)
        assert "Trà Sơn" in row.locator(".alert-meta").inner_text()
        row.locator("button").click()
        page.wait_for_selector(f"#drawer[data-alert-id='{alert_id}'] #ack-button:not([disabled])", timeout=10_000)
        page.click("#ack-button")
        page.wait_for_selector(f"#queue [data-alert-id='{alert_id}'][data-status=acknowledged]", timeout=10_000)
        return Acknowledged(alert_id, shown_after, errors)
    finally:
        context.close()


def test_alert_published_on_mqtt_shows_on_the_wall_within_2_s_and_is_acknowledged(
    system: RunningSystem, acknowledged: Acknowledged
) -> None:
    print(f"alert on the wall {acknowledged.shown_after_s:.2f} s after its MQTT publish")
    assert acknowledged.shown_after_s < LIVE_S, f"the alert took {acknowledged.shown_after_s:.2f} s to show"
    [(status, actor)] = system.query(
        "SELECT a.status, (SELECT actor FROM alert_audit WHERE alert_id = a.id AND action = 'acknowledge')"
        " FROM alerts a WHERE a.id = %s", (acknowledged.alert_id,))  # fmt: skip
    assert status == "acknowledged" and "operator1" in actor
    assert not [e for e in acknowledged.page_errors if "Content Security Policy" in e]


def test_the_communes_console_shows_the_alert_acknowledged(
    system: RunningSystem, acknowledged: Acknowledged, new_page: Any, login: Any
) -> None:
    import urllib.request

    try:
        urllib.request.urlopen(f"{system.base_url}/console/", timeout=5).close()  # noqa: S310 - local
    except Exception as exc:  # noqa: BLE001 - the console is another page's work
        pytest.skip(f"the commune console (/console/) is not served yet: {exc}")
    page = new_page(390, 844)
    login(page, "cb-tra-son", "/console/")
    page.wait_for_selector(f"[data-alert-id='{acknowledged.alert_id}'][data-status=acknowledged]", timeout=15_000)


def test_operator_assigns_an_alert_to_a_commune_from_the_evidence_drawer(
    system: RunningSystem, new_page: Any, login: Any
) -> None:
    _critical_water(system, "tra-giang")
    assert wait_until(lambda: _alert_id(system, "tra-giang"), 15), system.log_tail("ingest")
    alert_id = _alert_id(system, "tra-giang")
    page = new_page(1920, 1080)
    login(page, "operator1")
    _show_alerts(page)
    page.click(f"#queue [data-alert-id='{alert_id}'] button")
    page.wait_for_selector(f"#drawer[data-alert-id='{alert_id}'] #assign-unit", timeout=10_000)
    page.select_option("#assign-unit", "tra-kot")
    page.click("#assign-button")
    assert wait_until(lambda: system.query("SELECT assigned_unit_id FROM alerts WHERE id = %s",
                                           (alert_id,))[0][0] == "tra-kot", 10)  # fmt: skip
    page.locator(f"#queue [data-alert-id='{alert_id}'] .alert-meta", has_text="Trà Kót").wait_for(timeout=10_000)
    page.keyboard.press("Escape")
    page.wait_for_selector("#drawer", state="hidden", timeout=5_000)


def test_one_click_on_an_alert_shows_its_evidence_image(system: RunningSystem, new_page: Any, login: Any) -> None:
    """A citizen's report with a photo raises an alert; one click on it on the wall shows the photo."""
    import io

    from PIL import Image, ImageDraw

    picture = Image.new("RGB", (640, 480), (90, 120, 60))
    ImageDraw.Draw(picture).rectangle((200, 150, 440, 330), fill=(200, 40, 40))
    jpeg = io.BytesIO()
    picture.save(jpeg, "JPEG")
    marker = f"bằng chứng {time.time_ns()}"
    page = new_page(1920, 1080)
    login(page, "operator1")
    response = page.request.post("/api/public/reports", multipart={
        "category": "ha-tang", "description": f"Cột điện nghiêng sắp đổ ({marker})", "lat": "15.45", "lon": "108.17",
        "photos": {"name": "cot-dien.jpg", "mimeType": "image/jpeg", "buffer": jpeg.getvalue()},
    })  # fmt: skip
    assert response.status == 201, response.text()
    [(alert_id,)] = system.query("SELECT alert_id FROM reports WHERE description LIKE %s", (f"%{marker}%",))
    _show_alerts(page)
    page.click(f"#queue [data-alert-id='{alert_id}'] button")
    image = page.locator("#drawer #evidence img")
    image.wait_for(timeout=15_000)
    assert page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=image.element_handle())
    assert image.get_attribute("src").startswith("blob:")  # fetched with the token, not a public URL


def test_radio_panel_lists_each_commune_and_an_urgent_broadcast_needs_a_confirmation(
    system: RunningSystem, new_page: Any, login: Any
) -> None:
    import shutil

    page = new_page(1920, 1080)
    login(page, "operator1")
    page.wait_for_selector("#radio-status li[data-unit-id]", timeout=15_000)
    assert page.locator("#radio-status li[data-unit-id]").count() == 13
    # Vietnamese order (Đ after D, not after Z as code points would put it), every commune in view.
    names = page.locator("#radio-status .radio-name").all_inner_texts()
    assert names.index("Trà Dương") < names.index("Trà Đốc") < names.index("Trà Đông") < names.index("Trà Giác")
    assert names.index("Trà Giác") < names.index("Trà Giang") < names.index("Trà Giáp")
    for item in page.locator("#radio-status li[data-unit-id]").all():
        box = item.bounding_box()
        assert box and box["y"] + box["height"] <= 1080 and item.is_visible(), item.inner_text()
    panel = page.locator("#radio-status").bounding_box()
    assert panel and page.evaluate("(() => { const l = document.getElementById('radio-status');"
                                   " return l.scrollHeight <= l.clientHeight + 1; })()"), "the radio list scrolls"
    if not shutil.which("espeak-ng"):
        pytest.skip("espeak-ng is missing: the radio API cannot read a text broadcast aloud")
    title = f"Thử nghiệm phát khẩn {time.time_ns()}"
    page.click("#broadcast-open")
    page.select_option("#broadcast-units", ["tra-son", "tra-kot"])
    page.fill("#broadcast-title-input", title)
    page.fill("#broadcast-text", "Nước sông Trường đang lên nhanh, bà con không qua ngầm tràn.")
    page.click("#broadcast-submit")
    confirm = page.locator("#broadcast-confirm-text")
    confirm.wait_for(state="visible", timeout=5_000)
    assert "2 xã" in confirm.inner_text()
    assert not system.query("SELECT id FROM radio_broadcasts WHERE title = %s", (title,))  # nothing sent yet
    page.click("#broadcast-submit")
    # Sent: the wall shows its proof of broadcast, one row per cluster of the two communes.
    page.wait_for_selector("#broadcast-history[open] #broadcast-proof tbody tr", timeout=30_000)
    [(broadcast_id, targets, requested_by)] = system.query(
        "SELECT id, targets, requested_by FROM radio_broadcasts WHERE title = %s", (title,))  # fmt: skip
    assert sorted(targets["unit_ids"]) == ["tra-kot", "tra-son"] and requested_by == "operator1"
    rows = page.locator("#broadcast-proof tbody tr")
    assert rows.count() == len(targets["clusters"]) == 10
    assert set(page.locator("#broadcast-proof tbody tr td:first-child").all_inner_texts()) == {"Trà Kót", "Trà Sơn"}
    assert page.get_attribute("#broadcast-history h3", "data-broadcast-id") == str(broadcast_id)
    stop = page.locator("#broadcast-stop")
    if stop.count():  # still sending or playing: the operator can stop it from here
        stop.click()
        page.wait_for_selector("#broadcast-history h3[data-status=stopped]", timeout=15_000)
        stopped = system.query("SELECT stopped_by FROM radio_broadcasts WHERE id = %s", (broadcast_id,))
        assert stopped[0][0] == "operator1"
    # The history lists it; the dialog closes.
    page.click("#broadcast-history .dialog-actions button:first-child")
    page.wait_for_selector(f"#broadcast-history li[data-broadcast-id='{broadcast_id}']", timeout=10_000)
    page.click("#broadcast-history-close")
    page.wait_for_selector("#broadcast-history", state="hidden", timeout=5_000)


def test_kpi_tile_shows_dossiers_resolved_on_time_from_the_one_stop_desk(
    system: RunningSystem, new_page: Any, login: Any
) -> None:
    """Dossier events published by the one-stop desk system reach the wall's KPI tile."""
    from datetime import UTC, datetime, timedelta

    now = datetime.now(UTC)
    for n in range(2):
        dossier = f"BT-{time.time_ns()}-{n}"
        system.publish("bac-tra-my", "dossier", "int-mot-cua", "event", {
            "dossier_id": dossier, "event": "received", "unit_id": "tra-kot", "channel": "online",
            "ts": (now - timedelta(hours=2)).isoformat(), "due_at": (now + timedelta(days=3)).isoformat()})
        system.publish("bac-tra-my", "dossier", "int-mot-cua", "event", {
            "dossier_id": dossier, "event": "resolved", "unit_id": "tra-kot", "ts": now.isoformat()})  # fmt: skip
    assert wait_until(lambda: system.query(
        "SELECT count(*) FROM dossiers WHERE id LIKE 'BT-%%' AND status = 'resolved'")[0][0] >= 2, 20)  # fmt: skip
    page = new_page(1920, 1080)
    login(page, "operator1")
    value = page.locator(".kpi-tile[data-kpi=dossiers] .kpi-value")
    value.filter(has_text="100").wait_for(timeout=20_000)
    assert value.inner_text().strip() == "100%"
    # The period picker (#20): this month, this quarter, the year to date, in Vietnamese.
    picker = page.locator(".kpi-tile[data-kpi=dossiers] select.kpi-period")
    assert picker.locator("option").all_inner_texts() == ["Tháng này", "Quý này", "Từ đầu năm"]
    picker.select_option("year")
    value.filter(has_text="100").wait_for(timeout=20_000)
    assert page.locator(".kpi-tile[data-kpi=dossiers] select.kpi-period").input_value() == "year"
    # Device health counts only devices expected to send heartbeats (cameras, loudspeakers, sensors),
    # not schools, clinics or integrations (#20).
    [(reporting,)] = system.query(
        "SELECT count(*) FROM devices WHERE enabled AND kind IN ('camera', 'radio', 'sensor')")  # fmt: skip
    note = page.locator(".kpi-tile[data-kpi=devices] .kpi-note")
    note.filter(has_text="/").wait_for(timeout=40_000)
    assert note.inner_text().strip().endswith(f"/{reporting}")


def _cap_alert(identifier: str, headline: str) -> str:
    """A CAP 1.2 Alert of Extreme severity (a critical alert on the wall) over Trà Kót."""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">
  <identifier>{identifier}</identifier><sender>kttv@quangnam.gov.vn</sender>
  <sent>{time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())}</sent>
  <status>Actual</status><msgType>Alert</msgType><scope>Public</scope>
  <info>
    <language>vi-VN</language><category>Met</category><event>Lũ quét</event>
    <urgency>Immediate</urgency><severity>Extreme</severity><certainty>Likely</certainty>
    <headline>{headline}</headline><description>Nguy cơ lũ quét tại các xã vùng núi.</description>
    <area><areaDesc>Xã Trà Kót</areaDesc>
      <polygon>15.41,108.01 15.41,108.09 15.49,108.09 15.49,108.01 15.41,108.01</polygon></area>
  </info>
</alert>"""


def test_a_critical_alert_sounds_on_the_wall_unless_muted(system: RunningSystem, new_page: Any, login: Any) -> None:
    page = new_page(1920, 1080)
    login(page, "operator1")
    _wait_online(page)
    _show_alerts(page)
    token = page.evaluate("JSON.parse(sessionStorage.getItem('ioc.session')).access_token")

    def send(headline: str) -> None:
        response = page.request.post("/api/cap", data=_cap_alert(f"BT-{time.time_ns()}", headline),
                                     headers={"Authorization": f"Bearer {token}",
                                              "Content-Type": "application/cap+xml"})  # fmt: skip
        assert response.ok, response.text()
        page.locator("#queue li[data-severity=critical]", has_text=headline).wait_for(timeout=15_000)

    def beeps() -> int:
        return int(page.evaluate("document.body.dataset.beeps || '0'"))

    assert page.get_attribute("#mute", "aria-pressed") == "false"
    send("Lũ quét thử nghiệm 1")
    assert wait_until(lambda: beeps() == 1, 5), beeps()
    page.click("#mute")
    assert page.get_attribute("#mute", "aria-pressed") == "true"
    send("Lũ quét thử nghiệm 2")
    assert beeps() == 1  # muted: the row came, no sound


def test_camera_tile_shows_the_detectors_annotated_frame(system: RunningSystem, new_page: Any, login: Any) -> None:
    page = new_page(1920, 1080)
    login(page, "operator1")
    tile = page.locator(f".camera-tile[data-camera-id='{CAMERA}']")
    tile.wait_for(state="visible", timeout=15_000)
    # The detector loads its model and starts writing frames: wait generously, by polling.
    page.wait_for_selector(f".camera-tile[data-camera-id='{CAMERA}'][data-state=live] img", timeout=120_000)
    token = page.evaluate("JSON.parse(sessionStorage.getItem('ioc.session')).access_token")
    response = page.request.get(f"/api/cameras/{CAMERA}/latest.jpg", headers={"Authorization": f"Bearer {token}"})
    assert response.status == 200 and response.headers["content-type"] == "image/jpeg"
    assert response.body()[:2] == b"\xff\xd8" and len(response.body()) > 5_000

    # Detections are drawn in pure green (tracks) or red (event hits): count such pixels in the
    # image the tile shows; the sample video's own colours are muted. Polled: the first frames may
    # come before the tracker has a person.
    count_boxes = """(sel) => {
        const img = document.querySelector(sel);
        if (!img || !img.complete || !img.naturalWidth) return 0;
        const canvas = document.createElement('canvas');
        canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
        const ctx = canvas.getContext('2d');
        ctx.drawImage(img, 0, 0);
        const data = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
        let n = 0;
        for (let i = 0; i < data.length; i += 4) {
          const [r, g, b] = [data[i], data[i + 1], data[i + 2]];
          if ((g > 200 && r < 90 && b < 90) || (r > 200 && g < 60 && b < 60)) n++;
        }
        return n;
    }"""
    selector = f".camera-tile[data-camera-id='{CAMERA}'] img"
    drawn = wait_until(lambda: page.evaluate(count_boxes, selector) > 200, 90, 1.0)
    assert drawn, f"no detection boxes drawn on the tile's frame ({page.evaluate(count_boxes, selector)} box pixels)"
    size = page.eval_on_selector(selector, "img => [img.naturalWidth, img.getBoundingClientRect().width]")
    assert size[0] == 768 and size[1] > 100, size
    assert not _csp_errors(page), page.errors


def test_an_offline_camera_is_shown_plainly(system: RunningSystem, new_page: Any, login: Any) -> None:
    camera, unit = "cam-tra-kot-school-01", "tra-kot"
    system.publish(unit, "camera", camera, "status", {"state": "offline", "reason": "last_will"})
    assert wait_until(lambda: system.query("SELECT state FROM device_presence WHERE device_id = %s",
                                           (camera,)) == [("offline",)], 15)  # fmt: skip
    page = new_page(1920, 1080)
    login(page, "operator1")
    tile = page.locator(f".camera-tile[data-camera-id='{camera}'][data-state=offline]")
    tile.wait_for(timeout=15_000)
    assert "Mất tín hiệu" in tile.inner_text()
    assert tile.locator("img").is_hidden()  # no frozen picture


def test_hub_restart_wall_reconnects_and_misses_no_alert(system: RunningSystem, new_page: Any, login: Any) -> None:
    page = new_page(1920, 1080)
    login(page, "operator1")
    _wait_online(page)
    _show_alerts(page)
    banner = page.locator("#offline-banner")
    assert banner.is_hidden()

    system.stop_api()
    banner.wait_for(state="visible", timeout=15_000)
    units = ["tra-duong", "tra-giang", "tra-bui"]
    for unit in units:
        _critical_water(system, unit)
    # Stored while the hub is away: the ingest worker keeps going.
    assert wait_until(lambda: all(_alert_id(system, u) for u in units), 30), "the ingest worker stored no alert"
    ids = [_alert_id(system, u) for u in units]

    system.start_api()
    banner.wait_for(state="hidden", timeout=30_000)
    for alert_id in ids:
        page.wait_for_selector(f"#queue [data-alert-id='{alert_id}']", timeout=15_000)
    shown = page.eval_on_selector_all("#queue [data-alert-id]", "rows => rows.map(r => r.dataset.alertId)")
    assert len(shown) == len(set(shown)), "an alert is shown twice"

    # And live again after the restart: a new alert arrives without a reload.
    _critical_water(system, "tra-my")
    assert wait_until(lambda: _alert_id(system, "tra-my"), 15), system.log_tail("ingest")
    latest = _alert_id(system, "tra-my")
    try:
        page.wait_for_selector(f"#queue [data-alert-id='{latest}']", timeout=15_000)
    except Exception:
        print("DEBUG", page.evaluate("JSON.stringify(document.body.dataset)"), page.errors,
              system.query("SELECT id, seq, status, title FROM alerts ORDER BY seq"))
        raise


OVERFLOW = "[document.documentElement.scrollWidth - innerWidth, document.documentElement.scrollHeight - innerHeight]"
CAMERA_PAGE = """() => {
    const box = document.getElementById('cameras');
    const r = box.getBoundingClientRect();
    const all = [...box.querySelectorAll('.camera-tile')];
    const shown = all.filter((t) => !t.hidden);
    const outside = shown.filter((t) => { const b = t.getBoundingClientRect();
        return b.bottom > r.bottom + 1 || b.right > r.right + 1 || b.height === 0; }).length;
    return {scrolls: box.scrollHeight > box.clientHeight + 1 || box.scrollWidth > box.clientWidth + 1,
            shown: shown.length, outside, total: all.length, pages: Number(box.dataset.pages),
            first: shown[0] && shown[0].dataset.cameraId};
}"""


@pytest.mark.parametrize(("width", "height"), [(1920, 1080), (3840, 2160)])
def test_wall_fills_the_screen_and_is_screenshotted(
    system: RunningSystem, new_page: Any, login: Any, width: int, height: int
) -> None:
    page = new_page(width, height)
    login(page, "operator1")
    _wait_online(page)
    _show_alerts(page)
    if not _alert_id(system, "tra-son"):
        _critical_water(system, "tra-son")
    page.locator("#queue li[data-alert-id]", has_text="cầu Trà Sơn").first.wait_for(timeout=15_000)
    page.wait_for_selector("#map path.leaflet-interactive", timeout=15_000)
    units = page.eval_on_selector_all("#map path[data-unit-id]", "paths => paths.map(p => p.dataset.unitId)")
    assert len(set(units)) == 13, units
    # Coloured by its most severe open alert (the water level is "severe", unless a critical one came too).
    page.wait_for_selector("#map path[data-unit-id='tra-son'][data-severity=severe]", timeout=5_000)
    page.wait_for_selector(".camera-tile[data-state=live]", timeout=120_000)
    page.wait_for_selector(".kpi-tile[data-kpi=devices] .kpi-value", timeout=10_000)
    overflow = page.evaluate(OVERFLOW)
    assert overflow[0] <= 1 and overflow[1] <= 1, f"the wall scrolls at {width}x{height}: {overflow}"
    # The camera panel pages instead of scrolling: every tile shown lies inside it, the pages hold all 31.
    cameras = page.evaluate(CAMERA_PAGE)
    assert not cameras["scrolls"] and cameras["outside"] == 0, cameras
    assert cameras["total"] == 31 and cameras["pages"] == -(-cameras["total"] // cameras["shown"]), cameras
    if cameras["pages"] > 1:
        page.click("#camera-next")
        page.wait_for_selector("#cameras[data-page='2']", timeout=5_000)
        second = page.evaluate(CAMERA_PAGE)
        assert second["first"] != cameras["first"] and not second["scrolls"] and second["outside"] == 0, second
        page.click("#camera-prev")
    # And with the incident queue shown (the wall's first tab) and an incident open in the drawer.
    page.click(".queue-tab[data-tab=incidents]")
    page.locator("#incident-queue li[data-incident-id]").first.wait_for(timeout=15_000)
    overflow = page.evaluate(OVERFLOW)
    assert overflow[0] <= 1 and overflow[1] <= 1, f"the wall scrolls with incidents at {width}x{height}: {overflow}"
    page.locator("#incident-queue li[data-incident-id] button").first.click()
    page.wait_for_selector("#drawer[data-incident-id] #incident-timeline", timeout=10_000)
    overflow = page.evaluate(OVERFLOW)
    assert overflow[0] <= 1 and overflow[1] <= 1, f"the wall scrolls with the drawer at {width}x{height}: {overflow}"
    page.click("#drawer-close")
    _show_alerts(page)
    clock = page.text_content("#clock")
    assert clock and ":" in clock

    page.click("#lang")
    page.wait_for_function("() => document.documentElement.lang === 'en'")
    assert page.text_content(".wall-header h1") == "Intelligent Operations Center"
    assert "Thứ" not in page.text_content("#clock")
    page.click("#lang")
    page.wait_for_function("() => document.documentElement.lang === 'vi'")
    assert page.text_content(".wall-header h1") == "Trung tâm điều hành thông minh"
    assert "Thứ" in page.text_content("#clock") or "Chủ Nhật" in page.text_content("#clock")
    time.sleep(0.5)  # let the map and the last frame settle before the picture (not an assertion)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"wall-{width}x{height}.png"))
    assert not _csp_errors(page), page.errors


def test_pages_load_only_same_origin_assets_and_map_tiles_are_opt_in(
    database_factory: Callable[..., str], mqtt_url: str
) -> None:
    """No CDN: every script and stylesheet of the wall is served by the app (Leaflet from its PyPI
    package); the map needs no tile server, and a configured one is the only extra image host."""
    from fastapi.testclient import TestClient

    from ioc.http.app import create_app
    from tests.staff import app_settings

    url = database_factory(migrated=True)
    with TestClient(create_app(app_settings(url, mqtt_url))) as client:
        page = client.get("/").text
        assets = re.findall(r'(?:src|href)="([^"]+)"', page)
        assert assets and all(a.startswith("/") and not a.startswith("//") for a in assets), assets
        for asset in assets:
            response = client.get(asset)
            assert response.status_code == 200 and response.content, asset
        assert "style=" not in page and "<script>" not in page and "<style>" not in page
        leaflet = client.get("/vendor/leaflet/leaflet.js")
        assert "javascript" in leaflet.headers["content-type"] and b"Leaflet" in leaflet.content[:2000]
        assert client.get("/api/ui-config").json()["map_tile_url"] is None
        assert "img-src 'self' data: blob:;" in client.get("/").headers["content-security-policy"]
        for module in STATIC.glob("wall/*.js"):
            imports = re.findall(r'from "([^"]+)"', module.read_text())
            assert all(i.startswith((".", "/")) for i in imports), (module, imports)
        assert client.get("/status.html").status_code == 200

    tiles = "https://{s}.tiles.example.vn/{z}/{x}/{y}.png"
    with TestClient(create_app(app_settings(url, mqtt_url, map_tile_url=tiles))) as client:
        assert client.get("/api/ui-config").json()["map_tile_url"] == tiles
        policy = client.get("/").headers["content-security-policy"]
        assert "img-src 'self' data: blob: https://*.tiles.example.vn;" in policy
        assert "connect-src 'self'" in policy and "script-src 'self'" in policy


def test_grafana_dashboard_uses_real_metrics_and_queries_that_run(database_factory: Callable[..., str]) -> None:
    """Every Prometheus metric in dashboards/grafana/ioc.json is one the code exports, and every
    PostgreSQL query runs on a migrated database (Grafana's macros replaced by a fixed week)."""
    import json

    import psycopg
    from prometheus_client import REGISTRY

    import ingest.metrics  # noqa: F401 - registers the ingest metrics
    import ioc.hub.hub  # noqa: F401 - registers the hub metrics

    dashboard = json.loads((STATIC.parent / "grafana" / "ioc.json").read_text())
    targets = [t for p in dashboard["panels"] for t in p.get("targets", [])]
    # Labelled metrics have no samples until first used: compare with the families' series names.
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
    exported = {m.name + s for m in REGISTRY.collect() for s in suffixes.get(m.type, ("",))}
    used = {m for t in targets if "expr" in t for m in re.findall(r"\b(ioc_[a-z_]+)", t["expr"])}
    assert used and used <= exported, used - exported
    queries = [t["rawSql"] for t in targets if "rawSql" in t]
    assert len(queries) >= 5
    url = database_factory(migrated=True)
    with psycopg.connect(url) as conn:
        for query in queries:
            runnable = (query.replace("$__timeFrom()", "(now() - interval '7 days')").replace("$__timeTo()", "now()"))
            runnable = re.sub(r"\$__timeFilter\((\w+)\)", r"\1 > now() - interval '7 days'", runnable)
            conn.execute(runnable).fetchall()


def test_status_page_keeps_working_at_its_new_address(system: RunningSystem, new_page: Any) -> None:
    page = new_page(1280, 800)
    page.goto("/status.html")
    page.wait_for_function("() => document.getElementById('status').textContent.startsWith('Sẵn sàng')",
                           timeout=15_000)
    assert page.locator("#checks li").count() >= 2
    assert not _csp_errors(page), page.errors
