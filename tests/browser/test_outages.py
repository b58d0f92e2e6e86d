"""Outages as the pages see them, in chromium against a real ``ioc serve``:

* the database cut (the API reaches it through a link the test cuts): the wall's banner says so
  within 2 s, and goes away without a reload when the database is back;
* the API process stopped (SIGSTOP: up, but answering nothing): the banner within 10 s (the /ws
  heartbeat), gone after SIGCONT without a reload;
* the citizen's submission that gets no answer (API stopped while sending) is retried by the page
  with its Idempotency-Key and creates exactly one report.

The API here talks to the database through ``CuttableLink`` (tests/served.py), so this module
runs its own API process rather than the shared ``system`` one.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.browser.conftest import ROOT, wait_until
from tests.served import CuttableLink

PASSWORD = "mật khẩu đủ dài 2026"


class Api:
    def __init__(self, env: dict[str, str], log: Path, base_url: str) -> None:
        self.env, self.log, self.base_url = env, log, base_url
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        import urllib.request

        out = self.log.open("ab")
        self.process = subprocess.Popen([sys.executable, "-m", "ioc.cli.main", "serve"], cwd=ROOT, env=self.env,
                                        stdout=out, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        out.close()

        def ready() -> bool:
            try:
                with urllib.request.urlopen(f"{self.base_url}/readyz", timeout=2) as response:  # noqa: S310 - local
                    return response.status == 200
            except Exception:  # noqa: BLE001 - not up yet
                return False

        if not wait_until(ready, 60, 0.25):
            raise RuntimeError(self.log.read_text(errors="replace")[-3000:])

    def signal(self, sig: int) -> None:
        assert self.process is not None
        os.kill(self.process.pid, sig)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGCONT)
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture(scope="module")
def outage(chromium: str, database_factory: Callable[..., str], mqtt_url: str,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Api, CuttableLink, str]]:  # fmt: skip
    from ioc.auth import passwords, repository
    from ioc.district.bootstrap import load_district_into
    from ioc.net import free_port
    from ioc.settings import Settings

    url = database_factory(migrated=True)
    load_district_into(url, Settings(_env_file=None, database_url=url), environ={})  # type: ignore[call-arg]
    with psycopg.connect(url) as conn:
        repository.create_user(conn, username="wall-op", display_name="Trực ban", role="operator", unit_id=None,
                               password_hash=passwords.hash_password(PASSWORD))  # fmt: skip
    link = CuttableLink(url)
    port = free_port()
    var = tmp_path_factory.mktemp("outage-var")
    env = {k: v for k, v in os.environ.items() if not k.startswith("IOC_")}
    env.update(IOC_DATABASE_URL=link.url, IOC_MQTT_URL=mqtt_url, IOC_SECRET_KEY="outage-secret-" + "z" * 40,
               IOC_VAR_DIR=str(var), IOC_HTTP_HOST="127.0.0.1", IOC_HTTP_PORT=str(port),
               IOC_ARGON2_PROFILE="test-insecure", IOC_PUBLIC_SUBMIT_BURST="50", IOC_PUBLIC_SUBMIT_PER_MIN="60",
               IOC_LOG_LEVEL="INFO", PYTHONUNBUFFERED="1")  # fmt: skip
    api = Api(env, var / "api.log", f"http://127.0.0.1:{port}")
    api.start()
    try:
        yield api, link, url
    finally:
        api.stop()
        link.close()


@pytest.fixture()
def page(browser: Any, outage: tuple[Api, CuttableLink, str]) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1920, "height": 1080}, base_url=outage[0].base_url,
                                  locale="vi-VN", timezone_id="Asia/Ho_Chi_Minh")  # fmt: skip
    page = context.new_page()
    yield page
    context.close()


def _wall(page: Any) -> Any:
    page.goto("/")
    page.fill("#username", "wall-op")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("body[data-live=online]", timeout=20_000)
    banner = page.locator("#offline-banner")
    assert banner.is_hidden()
    return banner


def test_database_cut_shows_the_walls_banner_within_2_s_and_recovers_without_reload(page: Any, outage) -> None:
    _, link, _ = outage
    banner = _wall(page)
    link.cut()
    cut_at = time.monotonic()
    try:
        banner.wait_for(state="visible", timeout=5_000)
        took = time.monotonic() - cut_at
        assert took <= 2.0, f"banner after {took:.2f} s"
        assert banner.get_attribute("data-reason") == "degraded"
        assert "cơ sở dữ liệu" in banner.inner_text()
    finally:
        link.restore()
    banner.wait_for(state="hidden", timeout=15_000)
    page.wait_for_selector("body[data-live=online]", timeout=15_000)


def test_a_stopped_api_shows_the_banner_within_10_s_and_recovers_without_reload(page: Any, outage) -> None:
    api, _, _ = outage
    banner = _wall(page)
    api.signal(signal.SIGSTOP)
    stopped_at = time.monotonic()
    try:
        banner.wait_for(state="visible", timeout=15_000)
        took = time.monotonic() - stopped_at
        assert took <= 10.0, f"banner after {took:.2f} s"
        assert banner.get_attribute("data-reason") == "offline"
    finally:
        api.signal(signal.SIGCONT)
    banner.wait_for(state="hidden", timeout=20_000)
    page.wait_for_selector("body[data-live=online]", timeout=15_000)


def test_the_citizens_retried_submission_creates_one_report(browser: Any, outage) -> None:
    api, _, database_url = outage
    context = browser.new_context(viewport={"width": 390, "height": 844}, base_url=api.base_url, locale="vi-VN")
    page = context.new_page()
    description = f"Cống thoát nước bị tắc {time.time_ns()}"
    try:
        page.goto("/phan-anh/")
        page.locator("input[name=category]").first.check()
        page.fill("#description", description)
        # The first attempt reaches a stopped API: no answer; the page times out and sends again with
        # the same key once the API answers. The body is in the socket buffer, so the first attempt
        # is also processed when the API resumes: two requests, one report.
        page.evaluate("document.body.dataset.sendTimeoutMs = '4000'")
        api.signal(signal.SIGSTOP)
        page.click("#send-button")
        page.wait_for_selector("#send-error:has-text('gửi lại')", timeout=15_000)
        api.signal(signal.SIGCONT)
        page.wait_for_selector("#receipt:not([hidden])", timeout=60_000)
        code = page.locator("#tracking-code").inner_text().strip()
        assert code.startswith("PA-")
        time.sleep(2.0)  # any late duplicate would be stored by now
        with psycopg.connect(database_url) as conn:
            rows = conn.execute("SELECT tracking_code FROM reports WHERE description = %s", (description,)).fetchall()
        assert len(rows) == 1, rows
    finally:
        api.signal(signal.SIGCONT)
        context.close()
