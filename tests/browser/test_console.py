"""The commune console (/console/) on a 390x844 phone, against the running system: the officer of
Trà Sơn sees only Trà Sơn's alerts, acknowledges one and resolves it with a note and a photo taken
on the phone, answers a citizen's report, and is told at once when a new alert arrives."""

from __future__ import annotations

import re
import secrets
from typing import Any

import httpx
from playwright.sync_api import expect

from tests.browser.conftest import SCREENSHOTS, RunningSystem, wait_until
from tests.browser.test_citizen import jpeg

PHONE = {"width": 390, "height": 844}
OFFICER = "cb-tra-son"
PLACES = {"tra-son": ("15.45", "108.17"), "tra-kot": ("15.45", "108.05"), "tra-son-market": ("15.42", "108.15")}


def citizen_report(system: RunningSystem, unit: str, text: str, category: str = "ha-tang") -> tuple[int, int]:
    """Send a report placed in ``unit`` as a citizen would: (report id, alert id) once its alert exists."""
    lat, lon = PLACES[unit]
    sent = httpx.post(f"{system.base_url}/api/public/reports", timeout=30,
                      data={"category": category, "description": text, "lat": lat, "lon": lon})  # fmt: skip
    assert sent.status_code == 201, sent.text
    assert sent.json()["unit_id"] == unit.removesuffix("-market")
    code = sent.json()["tracking_code"].removeprefix("PA-").replace("-", "")
    rows = system.query("SELECT id, alert_id FROM reports WHERE tracking_code = %s", (code,))
    assert rows and rows[0][1] is not None, "the report raised no alert"
    return rows[0]


def rows_of(page: Any) -> dict[int, str]:
    return {int(row.get_attribute("data-alert-id")): row.get_attribute("data-status")
            for row in page.locator("#alert-list li[data-alert-id]").all()}  # fmt: skip


def test_officer_sees_only_their_commune_and_resolves_an_alert_with_a_note_and_a_photo(
    system: RunningSystem, new_page: Any, login: Any
) -> None:
    _, own = citizen_report(system, "tra-son", "Cây đổ chắn ngang đường liên thôn.")
    _, other = citizen_report(system, "tra-kot", "Đèn đường hỏng cả dãy.")

    page = new_page(**PHONE)
    login(page, OFFICER, "/console/")
    page.wait_for_selector(f"#alert-list li[data-alert-id='{own}']")
    listed = rows_of(page)
    assert other not in listed
    units = dict(system.query("SELECT id, coalesce(assigned_unit_id, unit_id) FROM alerts WHERE id = ANY(%s)",
                              (list(listed),)))  # fmt: skip
    assert set(units.values()) == {"tra-son"}, units
    page.screenshot(path=str(SCREENSHOTS / "console-390x844.png"))

    page.click(f"#alert-list li[data-alert-id='{own}'] button")
    page.wait_for_selector("#action-buttons button[data-action=acknowledge]")
    page.click("#action-buttons button[data-action=acknowledge]")
    page.wait_for_selector(f"#alert-list li[data-alert-id='{own}'][data-status=acknowledged]", state="attached")
    assert system.query("SELECT status FROM alerts WHERE id = %s", (own,)) == [("acknowledged",)]

    page.fill("#action-note", "Đã huy động dân quân cưa cây, đường đã thông.")
    page.set_input_files("#action-photo", files=[{"name": "hien-truong.jpg", "mimeType": "image/jpeg",
                                                  "buffer": jpeg((30, 140, 60))}])  # fmt: skip
    page.wait_for_selector("#action-previews img")
    page.click("#action-buttons button[data-action=resolve]")
    expect(page.locator("#detail-status")).to_have_text("Đã xử lý xong")
    expect(page.locator(f"#alert-list li[data-alert-id='{own}']")).to_have_count(0)  # no longer open
    page.wait_for_selector("#detail-body .timeline img.evidence[src^='blob:']")
    assert "Đã huy động dân quân cưa cây" in page.text_content("#detail-body")
    page.evaluate("document.querySelectorAll('.toast').forEach((toast) => toast.remove())")
    page.locator("#detail-body .timeline img.evidence").scroll_into_view_if_needed()
    page.screenshot(path=str(SCREENSHOTS / "console-detail-390x844.png"))
    audit = system.query("SELECT note, photo_ref FROM alert_audit WHERE alert_id = %s AND action = 'resolve'", (own,))
    assert len(audit) == 1 and audit[0][0] == "Đã huy động dân quân cưa cây, đường đã thông."
    assert audit[0][1] and audit[0][1].startswith("reports/"), audit
    assert system.query("SELECT r.status FROM reports r WHERE r.alert_id = %s", (own,)) == [("resolved",)]

    # Another commune's alert is not reachable by its address either.
    token = page.evaluate("JSON.parse(sessionStorage.getItem('ioc.session')).access_token")
    refused = httpx.get(f"{system.base_url}/api/alerts/{other}", headers={"Authorization": f"Bearer {token}"})
    assert refused.status_code == 404
    assert not page.errors, page.errors


def test_officer_answers_a_citizen_report_and_the_citizen_sees_the_answer(
    system: RunningSystem, new_page: Any, login: Any
) -> None:
    report_id, _ = citizen_report(system, "tra-son", "Trường học bị dột mái sau mưa lớn.", category="giao-duc")
    page = new_page(**PHONE)
    login(page, OFFICER, "/console/")
    page.click("#tab-reports")
    page.wait_for_selector(f"#report-list li[data-report-id='{report_id}']")
    page.click(f"#report-list li[data-report-id='{report_id}'] button")
    page.wait_for_selector("#reply-form:not([hidden])")
    assert "Trường học bị dột mái" in page.text_content("#detail-body")
    page.fill("#reply-text", "Xã đã cử cán bộ kiểm tra, sẽ sửa mái trong tuần.")
    page.click("#reply-form button[type=submit]")
    expect(page.locator("#detail-body")).to_contain_text("sẽ sửa mái trong tuần")
    page.click("#action-buttons button[data-action=start]")
    page.wait_for_selector(f"#report-list li[data-report-id='{report_id}'][data-status=in_progress]", state="attached")
    code = system.query("SELECT tracking_code FROM reports WHERE id = %s", (report_id,))[0][0]
    public = httpx.get(f"{system.base_url}/api/public/reports/{code}", timeout=30).json()
    assert public["status"] == "in_progress"
    assert [r["text"] for r in public["replies"]] == ["Xã đã cử cán bộ kiểm tra, sẽ sửa mái trong tuần."]
    assert not page.errors, page.errors


def test_officer_merges_a_duplicate_report_into_the_first_one(system: RunningSystem, new_page: Any, login: Any) -> None:
    category = "an-ninh-trat-tu"
    first, _ = citizen_report(system, "tra-son-market", "Chợ xả nước thải ra suối.", category=category)
    second, alert = citizen_report(system, "tra-son-market", "Nước thải từ chợ chảy xuống suối.", category=category)
    assert system.query("SELECT suggested_duplicate_of FROM reports WHERE id = %s", (second,)) == [(first,)]
    page = new_page(**PHONE)
    login(page, OFFICER, "/console/")
    page.click("#tab-reports")
    page.click(f"#report-list li[data-report-id='{second}'] button")
    page.click("#merge-button")
    expect(page.locator("#detail-body")).to_contain_text(f"Đã gộp vào phản ánh #{first}")
    assert system.query("SELECT merged_into FROM reports WHERE id = %s", (second,)) == [(first,)]
    assert system.query("SELECT status FROM alerts WHERE id = %s", (alert,)) == [("dismissed",)]
    assert not page.errors, page.errors


def test_a_new_alert_of_the_commune_arrives_live_with_a_notification(
    system: RunningSystem, new_page: Any, login: Any
) -> None:
    page = new_page(**PHONE)
    login(page, OFFICER, "/console/")
    page.wait_for_selector("body[data-live=synced]", state="attached", timeout=15_000)
    expect(page.locator("#offline-banner")).to_be_hidden()
    before = set(rows_of(page))

    _, foreign = citizen_report(system, "tra-kot", "Trâu bò thả rông trên quốc lộ.")
    _, fresh = citizen_report(system, "tra-son", "Sạt lở đất vùi một đoạn đường lên thôn 2.", category="thien-tai")
    page.wait_for_selector(f"#alert-list li[data-alert-id='{fresh}'][data-status=new]", timeout=10_000)
    page.wait_for_selector(".toast:has-text('Cảnh báo mới')", timeout=10_000)
    assert re.match(r"^\(\d+\) ", page.title()), page.title()
    assert foreign not in rows_of(page)
    assert fresh not in before

    # Opening it from the notification shows the alert; touching the page clears the count.
    page.click(".toast:has-text('Cảnh báo mới') .toast-body")
    page.wait_for_selector("#action-buttons button[data-action=acknowledge]")
    assert "Sạt lở đất" in page.text_content("#detail-body")
    assert not page.title().startswith("(")
    assert not page.errors, page.errors


def test_the_console_comes_back_after_a_hub_restart_and_misses_no_alert(
    system: RunningSystem, new_page: Any, login: Any
) -> None:
    page = new_page(**PHONE)
    login(page, OFFICER, "/console/")
    page.wait_for_selector("body[data-live=synced]", state="attached", timeout=15_000)
    banner = page.locator("#offline-banner")

    system.stop_api()
    expect(banner).to_be_visible(timeout=20_000)
    # While the API (and its hub) is down, the hotline files a report over MQTT: ingest stores it
    # and raises Trà Sơn's alert; the console must get it when it reconnects.
    marker = secrets.token_hex(4)
    system.publish("bac-tra-my", "report", "int-tong-dai-1022", "event", {
        "category": "ha-tang", "description": f"Tổng đài 1022: cột điện nghiêng sắp đổ ({marker})",
        "lat": 15.45, "lon": 108.17})  # fmt: skip
    sql = "SELECT alert_id FROM reports WHERE description LIKE %s AND alert_id IS NOT NULL"
    rows = wait_until(lambda: system.query(sql, (f"%{marker}%",)), 60)
    assert rows, "ingest filed no report from the hotline message"
    alert_id = rows[0][0]
    system.start_api()

    page.wait_for_selector(f"#alert-list li[data-alert-id='{alert_id}'][data-status=new]", timeout=30_000)
    expect(banner).to_be_hidden(timeout=30_000)
    expect(page.locator(".toast", has_text="Cảnh báo mới")).to_have_count(1)
    unexpected = [e for e in page.errors if "WebSocket" not in e and "Failed to load resource" not in e]
    assert not unexpected, unexpected
