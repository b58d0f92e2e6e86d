"""The citizen page (/phan-anh/) on a 390x844 phone, against the running system: a report with a
photo and a place sent from the page, its tracking code found on the page and by the API, the
rating once staff resolved it, and the errors a citizen can meet said plainly."""

from __future__ import annotations

import io
import re
from typing import Any

import httpx
from PIL import Image
from playwright.sync_api import expect

from tests.browser.conftest import SCREENSHOTS, RunningSystem

PHONE = {"width": 390, "height": 844}
TRA_SON = {"latitude": 15.45, "longitude": 108.17}
CODE = re.compile(r"^PA-[0-9A-Z]{4}-[0-9A-Z]{4}$")


def jpeg(colour: tuple[int, int, int] = (200, 60, 40), size: tuple[int, int] = (96, 72)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


def photo_file(name: str = "o-ga.jpg", data: bytes | None = None) -> dict[str, Any]:
    return {"name": name, "mimeType": "image/jpeg", "buffer": data if data is not None else jpeg()}


def stored_code(code: str) -> str:
    """PA-ABCD-EF23 -> ABCDEF23, as the reports table keeps it."""
    return code.removeprefix("PA-").replace("-", "")


def staff_token(system: RunningSystem, username: str = "operator1") -> str:
    response = httpx.post(f"{system.base_url}/api/auth/login",
                          json={"username": username, "password": system.password(username)}, timeout=30)  # fmt: skip
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


def open_form(page: Any) -> None:
    page.goto("/phan-anh/")
    page.wait_for_selector("#categories input[name=category]")


def test_citizen_sends_a_report_with_a_photo_from_a_phone_and_finds_it_by_its_code(
    system: RunningSystem, new_page: Any
) -> None:
    page = new_page(**PHONE, geolocation=TRA_SON, permissions=["geolocation"])
    open_form(page)
    assert page.evaluate("document.documentElement.lang") == "vi"
    page.check("input[name=category][value=moi-truong]")
    page.set_input_files("#photos", files=[photo_file()])
    page.wait_for_selector("#photo-previews img")
    page.click("#use-location")
    expect(page.locator("#location-status")).to_contain_text("Trà Sơn")
    page.fill("#description", "Rác thải đổ tràn ra đường gần cầu, bốc mùi.")
    page.click("details.contact summary")
    page.fill("#name", "Nguyễn Thị Hoa")
    page.fill("#phone", "0905 123 456")
    page.check("#consent")
    page.screenshot(path=str(SCREENSHOTS / "phan-anh-390x844.png"), full_page=True)
    page.click("#send-button")

    page.wait_for_selector("#tracking-code:not(:empty)", timeout=15_000)
    code = page.text_content("#tracking-code").strip()
    assert CODE.match(code), code
    assert page.text_content("#receipt-unit") == "Trà Sơn"
    page.screenshot(path=str(SCREENSHOTS / "phan-anh-receipt-390x844.png"))

    stored = system.query(
        "SELECT unit_id, lat, lon, reporter_name, consent,"
        " (SELECT count(*) FROM report_media m WHERE m.report_id = r.id) FROM reports r WHERE tracking_code = %s",
        (stored_code(code),),
    )
    assert stored, f"report {code} is not in the database"
    unit, lat, lon, name, consent, photos = stored[0]
    assert (unit, round(lat, 2), round(lon, 2), name, consent, photos) == ("tra-son", 15.45, 108.17, "Nguyễn Thị Hoa",
                                                                          True, 1)  # fmt: skip

    public = httpx.get(f"{system.base_url}/api/public/reports/{code}", timeout=30).json()
    assert (public["tracking_code"], public["status"], public["unit_name"], public["photos"]) == (
        code, "received", "Trà Sơn", 1)  # fmt: skip

    page.click("#receipt-lookup")
    page.wait_for_selector("#lookup-result:not([hidden])")
    assert page.text_content("#lookup-shown-code") == code
    assert page.text_content("#lookup-status") == "Chờ tiếp nhận"
    assert page.text_content("#lookup-unit") == "Trà Sơn"
    assert "Đã nhận phản ánh" in page.text_content("#lookup-history")
    page.screenshot(path=str(SCREENSHOTS / "phan-anh-tra-cuu-390x844.png"))

    # Typed by hand, in lower case with spaces, on a fresh page: the same report.
    other = new_page(**PHONE)
    other.goto("/phan-anh/#tra-cuu")
    other.fill("#lookup-code", code.lower().replace("-", " "))
    other.click("#lookup-button")
    other.wait_for_selector("#lookup-result:not([hidden])")
    assert other.text_content("#lookup-shown-code") == code
    assert not page.errors and not other.errors, page.errors + other.errors


def test_a_tap_on_the_map_places_the_report_in_the_commune_tapped(system: RunningSystem, new_page: Any) -> None:
    page = new_page(**PHONE)
    open_form(page)
    page.wait_for_selector("#map path.unit-tra-kot")
    page.click("#map path.unit-tra-kot")
    expect(page.locator("#location-status")).to_contain_text("Trà Kót")
    page.check("input[name=category][value=ha-tang]")
    page.fill("#description", "Đường vào thôn bị sạt lở một bên taluy.")
    page.click("#send-button")
    page.wait_for_selector("#tracking-code:not(:empty)", timeout=15_000)
    code = page.text_content("#tracking-code").strip()
    assert system.query("SELECT unit_id FROM reports WHERE tracking_code = %s", (stored_code(code),)) == [
        ("tra-kot",)]  # fmt: skip
    assert not page.errors, page.errors


def test_the_citizen_rates_the_answer_once_staff_resolved_the_report(system: RunningSystem, new_page: Any) -> None:
    sent = httpx.post(f"{system.base_url}/api/public/reports", timeout=30,
                      data={"category": "dien-nuoc", "description": "Mất nước sinh hoạt ba ngày nay.",
                            "lat": "15.45", "lon": "108.17"})  # fmt: skip
    assert sent.status_code == 201, sent.text
    code = sent.json()["tracking_code"]
    page = new_page(**PHONE)
    page.goto(f"/phan-anh/#tra-cuu/{code}")
    page.wait_for_selector("#lookup-result:not([hidden])")
    assert page.is_hidden("#rating-form"), "rating is offered before the report is resolved"

    token = staff_token(system, "cb-tra-son")
    headers = {"Authorization": f"Bearer {token}"}
    report_id, alert_id = system.query("SELECT id, alert_id FROM reports WHERE tracking_code = %s",
                                       (stored_code(code),))[0]  # fmt: skip
    reply = httpx.post(f"{system.base_url}/api/reports/{report_id}/replies", headers=headers, timeout=30,
                       json={"text": "Đã sửa đường ống, nước đã có lại.", "public": True})  # fmt: skip
    assert reply.status_code == 201, reply.text
    resolved = httpx.post(f"{system.base_url}/api/alerts/{alert_id}/actions", headers=headers, timeout=30,
                          json={"action": "resolve", "note": "Đã khắc phục"})  # fmt: skip
    assert resolved.status_code == 200, resolved.text

    page.reload()
    page.wait_for_selector("#rating-form:not([hidden])")
    assert page.text_content("#lookup-status") == "Đã xử lý xong"
    history = page.text_content("#lookup-history")
    assert "Đã sửa đường ống, nước đã có lại." in history and "Đã xử lý xong" in history
    page.click("#rating-button")
    assert page.text_content("#rating-error") == "Hãy chọn từ 1 đến 5 sao."
    page.check("#rating-stars input[value='4']")
    page.fill("#rating-comment", "Xử lý nhanh, cảm ơn xã.")
    page.click("#rating-button")
    page.wait_for_selector("#rating-done:not([hidden])")
    assert "4/5" in page.text_content("#rating-done")
    assert page.is_hidden("#rating-form")
    assert system.query("SELECT rating, rating_comment FROM reports WHERE id = %s", (report_id,)) == [
        (4, "Xử lý nhanh, cảm ơn xã.")]  # fmt: skip
    public = httpx.get(f"{system.base_url}/api/public/reports/{code}", timeout=30).json()
    assert public["rating"] == 4
    assert [step["status"] for step in public["history"]] == ["resolved"]

    # Not fixed after all: the citizen reports it again with a photo, and the report reopens.
    page.click("#reopen summary")
    page.click("#reopen-button")
    assert page.text_content("#reopen-error") == "Hãy mô tả (ít nhất 5 ký tự) và kèm một ảnh hiện trạng."
    page.fill("#reopen-text", "Chiều nay lại mất nước tiếp.")
    page.set_input_files("#reopen-photo", files=[photo_file("van-mat-nuoc.jpg", jpeg((40, 40, 160)))])
    page.click("#reopen-button")
    expect(page.locator("#lookup-status")).to_have_text("Đang xử lý")
    expect(page.locator("#lookup-notice")).to_be_visible()
    assert system.query("SELECT status, reopen_count FROM reports WHERE id = %s", (report_id,)) == [("in_progress", 1)]
    assert not page.errors, page.errors


def test_the_page_says_plainly_what_is_wrong(system: RunningSystem, new_page: Any) -> None:
    page = new_page(**PHONE)
    open_form(page)
    page.click("#send-button")
    assert page.text_content("#send-error") == "Hãy chọn lĩnh vực của phản ánh."

    # Too large: refused here, before any upload.
    page.set_input_files("#photos", files=[photo_file("lon.jpg", b"\xff\xd8" + b"0" * (10 * 1024 * 1024 + 10))])
    assert "quá lớn" in page.text_content("#photo-error")
    assert page.locator("#photo-previews img").count() == 0

    # The keyboard alone chooses a category (native radio buttons: focus, Space, arrows).
    page.focus("input[name=category]")
    page.keyboard.press("Space")
    page.keyboard.press("ArrowDown")
    assert page.locator("input[name=category]:checked").get_attribute("value") == "an-ninh-trat-tu"

    # Not a real photo: the server refuses it and the page shows the server's reason.
    before = system.query("SELECT count(*) FROM reports")[0][0]
    page.set_input_files("#photos", files=[photo_file("gia.jpg", b"\xff\xd8 this is not a jpeg at all")])
    page.check("input[name=category][value=khac]")
    page.fill("#description", "Ảnh này hỏng, phải bị từ chối.")
    page.click("#send-button")
    expect(page.locator("#send-error")).to_contain_text("ảnh 1 (gia.jpg)")
    assert page.is_hidden("#receipt")
    assert system.query("SELECT count(*) FROM reports")[0][0] == before

    # English on request, and a malformed code is explained.
    page.click("#lang-toggle")
    assert page.evaluate("document.documentElement.lang") == "en"
    assert page.text_content("#send-button") == "Send report"
    page.goto("/phan-anh/#tra-cuu")
    page.fill("#lookup-code", "PA-12")
    page.click("#lookup-button")
    assert page.text_content("#lookup-error") == "A tracking code looks like PA-XXXX-XXXX."
    page.fill("#lookup-code", "PA-AAAA-BBBB")
    page.click("#lookup-button")
    expect(page.locator("#lookup-error")).to_contain_text("no report with this code")
    page.evaluate("localStorage.removeItem('ioc.lang')")
