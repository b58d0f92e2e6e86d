"""The operator's tools on the wall and the console, in a real browser against the running system:
marking an alert a false alarm (the cause stays quiet for the configured window, the audit names the
operator), snoozing an alert on this screen, the camera wall (pick, cycle, full screen,
availability per commune), and a camera alert titled by its zone's label that jumps to its camera."""

from __future__ import annotations

from typing import Any

from tests.browser.conftest import RunningSystem, wait_until


def _online_on_alerts(page: Any) -> None:
    """Wait for the live stream, then open the queue's alert tab (the wall opens on incidents)."""
    page.wait_for_selector("body[data-live=online]", timeout=20_000)
    page.wait_for_selector(".queue-panel[data-tab]", state="attached", timeout=20_000)
    page.click(".queue-tab[data-tab=alerts]")
    page.wait_for_selector(".queue-panel[data-tab=alerts]", timeout=5_000)


def _rain_alarm(system: RunningSystem, unit: str) -> None:
    """Heavy rain past the gauge's warning level (these communes' gauges are used by no other wall test)."""
    system.publish(unit, "sensor", f"sensor-{unit}-rain", "telemetry", {"metrics": {"rain_mm_1h": 45.0}})


def _alerts(system: RunningSystem, unit: str) -> list[tuple]:
    return system.query("SELECT id, status, count FROM alerts WHERE kind = 'sensor.rain' AND unit_id = %s"
                        " ORDER BY id", (unit,))  # fmt: skip


def test_operator_marks_a_false_alarm_the_cause_stays_quiet_and_the_audit_shows_who(
    system: RunningSystem, new_page: Any, login: Any
) -> None:
    page = new_page(1920, 1080)
    login(page, "operator1")
    _online_on_alerts(page)
    _rain_alarm(system, "tra-nu")
    row = page.locator("#queue li[data-alert-id]", has_text="Trà Nú").first
    row.wait_for(state="visible", timeout=15_000)
    alert_id = int(row.get_attribute("data-alert-id"))
    row.locator("button").click()
    page.wait_for_selector(f"#drawer[data-alert-id='{alert_id}'] #false-alarm-button:not([disabled])", timeout=10_000)
    page.fill("#false-alarm-note", "Cảm biến bị rác che, nước không lên")
    page.click("#false-alarm-button")
    assert wait_until(lambda: _alerts(system, "tra-nu")[-1][1] == "dismissed", 10), _alerts(system, "tra-nu")
    # the audit names the operator, in the database and in the drawer's history
    [(actor, note)] = system.query("SELECT actor, note FROM alert_audit WHERE alert_id = %s AND action = 'dismiss'",
                                   (alert_id,))  # fmt: skip
    assert "operator1" in actor and note == "Cảm biến bị rác che, nước không lên"
    page.locator("#drawer .history li", has_text="dismiss").filter(has_text="operator1").wait_for(timeout=10_000)
    page.wait_for_selector(f"#queue [data-alert-id='{alert_id}']", state="detached", timeout=10_000)
    # the same cause again within the window: counted on the dismissed alert, no new alert on the wall
    before = _alerts(system, "tra-nu")[-1][2]
    _rain_alarm(system, "tra-nu")
    assert wait_until(lambda: _alerts(system, "tra-nu")[-1][2] > before, 15), _alerts(system, "tra-nu")
    rows = _alerts(system, "tra-nu")
    assert [r[1] for r in rows] == ["dismissed"] and len(rows) == 1
    assert page.locator("#queue li[data-alert-id]", has_text="Trà Nú").count() == 0


def test_operator_snoozes_an_alert_on_the_wall(system: RunningSystem, new_page: Any, login: Any) -> None:
    page = new_page(1920, 1080)
    login(page, "operator1")
    _online_on_alerts(page)
    _rain_alarm(system, "tra-giac")
    row = page.locator("#queue li[data-alert-id]", has_text="Trà Giác").first
    row.wait_for(state="visible", timeout=15_000)
    alert_id = int(row.get_attribute("data-alert-id"))
    row.locator("button").click()
    page.wait_for_selector(f"#drawer[data-alert-id='{alert_id}'] #snooze-button:not([disabled])", timeout=10_000)
    page.click("#snooze-button")
    page.wait_for_selector(f"#queue [data-alert-id='{alert_id}']", state="detached", timeout=5_000)
    assert _alerts(system, "tra-giac")[-1][1] == "new"  # only this screen hides it: the alert stays open
    page.reload()
    _online_on_alerts(page)
    page.wait_for_selector("#queue li[data-alert-id]", timeout=15_000)
    assert page.locator(f"#queue [data-alert-id='{alert_id}']").count() == 0  # still snoozed after a reload


def test_camera_wall_pick_cycle_full_screen_and_availability(system: RunningSystem, new_page: Any, login: Any) -> None:
    page = new_page(1920, 1080)
    login(page, "operator1")
    page.wait_for_selector(".camera-tile[data-camera-id]", timeout=20_000)
    first = page.locator(".camera-tile[data-camera-id]").first
    camera = first.get_attribute("data-camera-id")
    first.locator(".camera-frame").click()
    page.wait_for_selector(f".camera-tile.selected[data-camera-id='{camera}']", timeout=5_000)
    page.click("#camera-cycle")
    assert page.get_attribute("#camera-cycle", "aria-pressed") == "true"
    page.wait_for_selector(f".camera-tile.selected:not([data-camera-id='{camera}'])", timeout=15_000)
    page.click("#camera-cycle")
    # The camera the cycle stopped on is the one pinned on top of the page (the first may now be on another page).
    shown = page.locator(".camera-tile.selected").get_attribute("data-camera-id")
    page.locator(f".camera-tile[data-camera-id='{shown}'] .camera-full").click()
    page.wait_for_selector(f".camera-tile[data-camera-id='{shown}']:fullscreen", timeout=5_000)
    page.keyboard.press("Escape")
    availability = page.locator("#camera-availability .availability").first
    availability.wait_for(timeout=10_000)
    assert "/" in availability.inner_text()


def test_officer_snoozes_an_alert_on_the_console_and_an_operator_marks_it_a_false_alarm(
    system: RunningSystem, new_page: Any, login: Any
) -> None:
    _rain_alarm(system, "tra-ka")
    assert wait_until(lambda: _alerts(system, "tra-ka"), 15), system.log_tail("ingest")
    alert_id = _alerts(system, "tra-ka")[-1][0]
    officer = new_page(390, 844)
    login(officer, "cb-tra-ka", "/console/")
    officer.click(f"#alert-list li[data-alert-id='{alert_id}'] button")
    assert officer.locator("#action-buttons button[data-action=dismiss]").count() == 0  # officers may not
    officer.click("#action-buttons button[data-action=snooze]")
    officer.wait_for_selector(f"#alert-list li[data-alert-id='{alert_id}']", state="detached", timeout=5_000)
    operator = new_page(1280, 900)
    login(operator, "operator1", "/console/")
    operator.click(f"#alert-list li[data-alert-id='{alert_id}'] button")
    operator.fill("#action-note", "Trạm đo mưa đang bảo trì")
    operator.click("#action-buttons button[data-action=dismiss]")
    assert wait_until(lambda: _alerts(system, "tra-ka")[-1][1] == "dismissed", 10)
    [(actor,)] = system.query("SELECT actor FROM alert_audit WHERE alert_id = %s AND action = 'dismiss'", (alert_id,))
    assert "operator1" in actor


def test_a_camera_alert_names_its_zone_and_jumps_to_its_camera(
    system: RunningSystem, new_page: Any, login: Any
) -> None:
    camera = "cam-tra-my-centre-01"
    page = new_page(1920, 1080)
    login(page, "operator1")
    # Its tile exists, maybe on another page of the camera panel: the alert's button brings it forward.
    page.wait_for_selector(f".camera-tile[data-camera-id='{camera}']", state="attached", timeout=20_000)
    _online_on_alerts(page)
    system.publish("tra-my", "camera", camera, "event", {
        "rule": "intrusion", "zone": "cong-thu", "object_class": "person", "score": 0.9,
        "snapshot_ref": f"evidence/{camera}/ab/ab12.jpg", "data": {"zone_label": "Cổng thử nghiệm"},
    })  # fmt: skip
    row = page.locator("#queue li[data-alert-id]", has_text="Xâm nhập khu vực Cổng thử nghiệm").first
    row.wait_for(state="visible", timeout=15_000)
    row.locator("button").click()
    page.click("#camera-button")
    page.wait_for_selector(f".camera-tile.selected[data-camera-id='{camera}']", timeout=5_000)
