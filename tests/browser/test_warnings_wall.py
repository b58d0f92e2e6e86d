"""The wall's public warnings panel and the commune console (issue #17), in chromium against the
running system: a flood warning issued by two people shows on the wall with its ledger per channel
(consoles delivered, e-mail failed with no SMTP server) and its ledger downloads as CSV; the commune's
officer sees it on the console and confirms receipt, which the ledger records."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.browser.conftest import RunningSystem, wait_until

pytestmark = pytest.mark.browser


def _token(system: RunningSystem, username: str) -> dict[str, str]:
    response = httpx.post(f"{system.base_url}/api/auth/login",
                          json={"username": username, "password": system.password(username)})  # fmt: skip
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def test_an_issued_warning_shows_its_ledger_on_the_wall_and_the_ledger_downloads(
        system: RunningSystem, new_page: Any, login: Any) -> None:  # fmt: skip
    headline = f"Lũ trên sông Trường {time.time_ns() % 100000}"
    first, second = _token(system, "operator1"), _token(system, "operator2")
    body = {"category": "flood", "content": {"event": "Lũ", "headline": headline, "areas": [{
        "description": "Trà Kót", "circles": [{"lat": 15.45, "lon": 108.06, "radius_km": 2.5}]}]}}  # fmt: skip
    system.start("warnings", "warnings", "serve", "--tick-ms", "200")
    try:
        wid = httpx.post(f"{system.base_url}/api/warnings", headers=first, json=body).json()["id"]
        assert httpx.post(f"{system.base_url}/api/warnings/{wid}/issue", headers=first).json()["state"] == (
            "awaiting_confirmation")  # fmt: skip
        issued = httpx.post(f"{system.base_url}/api/warnings/{wid}/issue", headers=second).json()
        assert issued["state"] == "issued", issued
        page = new_page(1920, 1080)
        login(page, "operator1")
        item = page.locator(f'#warning-list li[data-warning-id="{wid}"]')
        item.wait_for(timeout=15_000)
        assert headline in item.inner_text() and "Đã ban hành" in item.inner_text()
        units = len(issued["unit_ids"])
        assert item.locator('[data-channel="console"]').inner_text() == f"Xã {units}/{units}"
        # Without an SMTP server the e-mail fails; the panel shows it (refreshed by the live event or timer).
        assert wait_until(lambda: system.query(
            "SELECT 1 FROM warning_deliveries WHERE warning_id = %s AND channel = 'email' AND state = 'failed'",
            (wid,)), 15), system.log_tail("warnings")  # fmt: skip
        page.reload()  # the session is kept: the wall comes back signed in
        email = page.locator(f'#warning-list li[data-warning-id="{wid}"] [data-channel="email"]')
        email.wait_for(timeout=15_000)
        assert "lỗi" in email.inner_text() and "warn-failed" in (email.get_attribute("class") or "")
        with page.expect_download(timeout=15_000) as download:
            page.locator(f'#warning-list li[data-warning-id="{wid}"] button').click()
        text = Path(download.value.path()).read_text(encoding="utf-8")
        assert text.startswith("at,msg_type,channel,target,state,attempt,reason") and ",email," in text
        # The commune's console shows the warning; the officer confirms receipt, which the ledger records.
        unit = issued["unit_ids"][0]
        console = new_page(390, 844)
        login(console, f"cb-{unit}", "/console/")
        banner = console.locator(f'#warning-banners li[data-warning-id="{wid}"]')
        banner.wait_for(timeout=15_000)
        assert headline in banner.inner_text()
        banner.locator("button").click()
        assert wait_until(lambda: system.query(
            "SELECT 1 FROM warning_deliveries WHERE warning_id = %s AND channel = 'console' AND target = %s "
            "AND state = 'acknowledged'", (wid, unit)), 10)  # fmt: skip
    finally:
        system.stop("warnings")
