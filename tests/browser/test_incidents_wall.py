"""The wall works on incidents: a rain alert and a citizen's flood report in one commune show as
one incident with its signal count; the operator opens it, reads its timeline and ticks a step of
its checklist, and the timeline says who did it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from conftest import SCREENSHOTS, RunningSystem, wait_until
from shapely.geometry import shape

from ioc.district.loader import load_district

ROOT = Path(__file__).resolve().parents[2]
UNIT = "tra-giac"
RAIN_GAUGE = "sensor-tra-giac-rain"


def _inside(unit_id: str) -> tuple[float, float]:
    district = load_district(ROOT / "config" / "district.yaml")
    unit = next(u for u in district.units if u.id == unit_id)
    point = shape(unit.polygon.model_dump()).representative_point()
    return point.y, point.x


def test_the_wall_shows_an_incident_with_its_timeline_and_checklist(
    system: RunningSystem, new_page: Any, login: Any
) -> None:
    page = new_page(1920, 1080)
    login(page, "operator1")
    page.wait_for_selector("body[data-live=online]", timeout=20_000)
    assert page.get_attribute(".queue-tab[data-tab=incidents]", "aria-selected") == "true"

    system.publish(UNIT, "sensor", RAIN_GAUGE, "telemetry", {"metrics": {"rain_mm_1h": 42.5}})
    assert wait_until(lambda: system.query("SELECT 1 FROM alerts WHERE kind = 'sensor.rain' AND unit_id = %s",
                                           (UNIT,)), 20), system.log_tail("ingest")  # fmt: skip
    lat, lon = _inside(UNIT)
    marker = f"nước ngập {time.time_ns()}"
    response = page.request.post("/api/public/reports", multipart={
        "category": "thien-tai", "description": f"Suối dâng cao, {marker} qua đường vào thôn", "lat": str(lat),
        "lon": str(lon)})  # fmt: skip
    assert response.status == 201, response.text()

    row = page.locator("#incident-queue li[data-incident-id]", has_text="Trà Giác").first
    row.wait_for(state="visible", timeout=15_000)
    counts = page.locator("#incident-queue li[data-incident-id] .alert-count", has_text="2 tín hiệu")
    counts.first.wait_for(timeout=15_000)
    incident_id = row.get_attribute("data-incident-id")
    assert "Thiên tai" in row.inner_text()

    row.locator("button").click()
    page.wait_for_selector(f"#drawer[data-incident-id='{incident_id}'] #incident-checklist", timeout=10_000)
    timeline = page.locator("#incident-timeline li")
    assert timeline.count() >= 3
    assert page.locator("#incident-timeline li[data-action=opened]").count() == 1
    assert "Hệ thống" in page.locator("#incident-timeline").inner_text()
    signals = page.locator(".incident-signals li")
    assert signals.count() == 2
    # Live context: the gauge's current value and its day beside the incident.
    chart = page.locator(f"#incident-readings figure[data-device-id='{RAIN_GAUGE}']")
    chart.locator("svg circle.readings-now").wait_for(timeout=10_000)
    assert "42,5 mm/h" in chart.locator("figcaption").inner_text()

    first_step = page.locator("#incident-checklist li[data-done=false]").first
    step_id = first_step.get_attribute("data-step")
    first_step.locator("button").click()
    page.wait_for_selector(f"#incident-checklist li[data-step='{step_id}'][data-done=true]", timeout=10_000)
    done_text = page.locator(f"#incident-checklist li[data-step='{step_id}']").inner_text()
    assert "operator1" in done_text
    page.wait_for_selector("#incident-timeline li[data-action=step]", timeout=10_000)
    [(done_by,)] = system.query("SELECT done_by FROM incident_steps WHERE incident_id = %s AND step_id = %s",
                                (int(incident_id), step_id))  # fmt: skip
    assert done_by == "operator1"
    # No English on the Vietnamese screen: the actions and statuses are translated.
    drawer_text = page.locator("#drawer").inner_text()
    assert "Hoàn thành bước: " + done_text.split(" — ")[0].strip() in page.locator("#incident-timeline").inner_text()
    for word in ("signal", "opened", "status:", "system", "undefined", step_id):
        assert word not in drawer_text, word
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "wall-incident-1920x1080.png"))
    assert not [e for e in page.errors if "Content Security Policy" in e or "Refused to" in e], page.errors
