"""Browser tests: the real system (API, ingest worker, detector) on the test database and broker,
driven by Debian's chromium through Playwright.

Fixtures for every page's tests:

* ``system`` (session): a fresh database with the sample district, the broker from ``mqtt_url`` on
  a topic root of its own, and the processes ``ioc serve``, ``ioc ingest`` and
  ``ioc detect --local-only`` started as a deployment would start them. It exposes ``base_url``,
  ``mqtt_url``, ``database_url``, ``topic_root``, ``password(username)`` (every seed user gets one),
  ``publish(unit, kind, device, channel, payload)`` (as a device would), ``stop_api()``,
  ``start_api()`` and ``restart_api()``.
* ``browser`` (module): one headless chromium per test module; ``new_page(width, height)`` gives a page in a fresh
  context (own sessionStorage) closed after the test.
* ``login(page, username, path="/")``: open ``path`` and log in through the page's form
  (``#username``, ``#password``, ``button[type=submit]``).

Without ``/usr/bin/chromium`` (or ``IOC_CHROMIUM``) the tests are skipped with the reason;
``make test`` installs it when it can.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from ioc.net import free_port as _free_port

ROOT = Path(__file__).resolve().parent.parent.parent
SCREENSHOTS = ROOT / "docs" / "screenshots"
CHROMIUM = os.environ.get("IOC_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run",
    "--disable-component-update", "--disable-sync", "--autoplay-policy=no-user-gesture-required",
]  # fmt: skip
READY_TIMEOUT_S = 90.0
SECRET = "browser-test-secret-" + "k" * 40


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test here that drives the browser (or the running system) is marked ``browser``."""
    here = Path(__file__).parent
    for item in items:
        uses = set(getattr(item, "fixturenames", ()))
        if here in Path(str(item.fspath)).parents and uses & {"chromium", "browser", "system", "new_page", "login"}:
            item.add_marker(pytest.mark.browser)


def wait_until(predicate: Callable[[], Any], timeout_s: float, interval_s: float = 0.2) -> Any:
    """Poll ``predicate`` until it answers something truthy (returned) or the deadline passes (None)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            return None
        time.sleep(interval_s)


@dataclass
class RunningSystem:
    """The processes of a deployment, started on the test database and broker."""

    base_url: str
    mqtt_url: str
    database_url: str
    topic_root: str
    env: dict[str, str]
    logs: Path
    passwords: dict[str, str]
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    _publisher: Any = None

    def password(self, username: str) -> str:
        return self.passwords[username]

    # -- processes -----------------------------------------------------------------------------
    def start(self, name: str, *args: str) -> None:
        log = (self.logs / f"{name}.log").open("ab")
        self.processes[name] = subprocess.Popen(
            [sys.executable, "-m", "ioc.cli.main", *args], cwd=ROOT, env=dict(self.env, IOC_PROCESS_NAME=name),
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        log.close()

    def stop(self, *names: str) -> None:
        """SIGTERM the named processes at once, then wait (one after another, the slow ones added up);
        what has not stopped 15 s later is killed."""
        running = {n: p for n in names if (p := self.processes.pop(n, None)) is not None and p.poll() is None}
        for proc in running.values():
            proc.terminate()
        deadline = time.monotonic() + 15
        for name, proc in running.items():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                print(f"{name} did not stop within 15 s of SIGTERM; killed", file=sys.stderr)
                proc.kill()
                proc.wait()

    def log_tail(self, name: str, chars: int = 3000) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else "(no log)"

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.base_url}/readyz", timeout=2) as response:  # noqa: S310 - local
                return response.status == 200
        except Exception:  # noqa: BLE001 - not up yet
            return False

    def start_api(self) -> None:
        self.start("api", "serve")
        if not wait_until(self.ready, READY_TIMEOUT_S, 0.25):
            raise RuntimeError(f"the API did not become ready:\n{self.log_tail('api')}")

    def stop_api(self) -> None:
        self.stop("api")
        assert wait_until(lambda: not self.ready(), 10), "the API still answers after being stopped"

    def restart_api(self) -> None:
        """Stop the API (and with it the websocket hub) and start it again; answers when ready."""
        self.stop_api()
        self.start_api()

    # -- devices -------------------------------------------------------------------------------
    def topic(self, unit: str, kind: str, device: str, channel: str) -> str:
        return f"{self.topic_root}/{unit}/{kind}/{device}/{channel}"

    def publish(self, unit: str, kind: str, device: str, channel: str, payload: dict[str, Any]) -> None:
        """Publish as a device would (QoS 1); ``v``, ``id`` and ``ts`` are filled in when missing."""
        from ingest.testing import publisher

        if self._publisher is None:
            self._publisher = publisher(self.mqtt_url)
        body = {"v": 1, "id": f"bt-{secrets.token_hex(6)}", "ts": datetime.now(UTC).isoformat(), **payload}
        info = self._publisher.publish(self.topic(unit, kind, device, channel), json.dumps(body), qos=1)
        info.wait_for_publish(10)

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        with psycopg.connect(self.database_url) as conn:
            return conn.execute(sql, params).fetchall()

    def close(self) -> None:
        self.stop(*self.processes)
        if self._publisher is not None:
            self._publisher.loop_stop()
            self._publisher.disconnect()


def _seed_passwords() -> dict[str, tuple[str, str]]:
    """username -> (password variable, a fresh password) for every seed user of the sample district."""
    from ioc.district.loader import load_district

    users = load_district(ROOT / "config" / "district.yaml").users
    return {u.username: (u.password_env, f"mật-khẩu-{secrets.token_hex(8)}") for u in users if u.password_env}


@pytest.fixture(scope="session")
def chromium() -> str:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing: `make test` installs Debian's chromium as root "
                    "(or: apt-get install -y chromium); set IOC_CHROMIUM to use another")  # fmt: skip
    return CHROMIUM


@pytest.fixture(scope="session")
def system(
    chromium: str, database_factory: Callable[..., str], mqtt_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningSystem]:
    from ioc.district.bootstrap import load_district_into
    from ioc.settings import Settings

    database_url = database_factory(migrated=True)
    seeds = _seed_passwords()
    secrets_env = {var: password for var, password in seeds.values()}
    load_district_into(database_url, Settings(_env_file=None, database_url=database_url), environ=secrets_env)  # type: ignore[call-arg]
    var_dir = tmp_path_factory.mktemp("system-var")
    logs = tmp_path_factory.mktemp("system-logs")
    port = _free_port()
    topic_root = f"bt{secrets.token_hex(3)}/v1"
    env = {k: v for k, v in os.environ.items() if not k.startswith("IOC_")}
    env.update(
        secrets_env,
        IOC_DATABASE_URL=database_url, IOC_MQTT_URL=mqtt_url, IOC_MQTT_TOPIC_ROOT=topic_root,
        IOC_MQTT_SHARE_GROUP="", IOC_SECRET_KEY=SECRET, IOC_VAR_DIR=str(var_dir), IOC_HTTP_HOST="127.0.0.1",
        IOC_HTTP_PORT=str(port), IOC_LOG_LEVEL="INFO", IOC_ARGON2_PROFILE="test-insecure",
        IOC_PUBLIC_SUBMIT_BURST="50", IOC_PUBLIC_SUBMIT_PER_MIN="60", PYTHONUNBUFFERED="1",
    )  # fmt: skip
    running = RunningSystem(
        base_url=f"http://127.0.0.1:{port}", mqtt_url=mqtt_url, database_url=database_url, topic_root=topic_root,
        env=env, logs=logs, passwords={username: password for username, (_, password) in seeds.items()},
    )  # fmt: skip
    try:
        # A client id of its own: the broker is shared with other test sessions, and two clients with
        # one id take each other's session over (disconnecting each other) forever.
        running.start("ingest", "ingest", "--client-id", f"ioc-ingest-{topic_root.split('/')[0]}",
                      "--presence-check-s", "1")  # fmt: skip
        running.start("detector", "detect", "--local-only", "--max-fps", "1")
        running.start_api()
        _wait_for_ingest(running)
        yield running
    finally:
        running.close()
        for name in ("api", "ingest", "detector"):
            if (logs / f"{name}.log").exists():
                shutil.copy(logs / f"{name}.log", logs / f"{name}.final.log")


def _wait_for_ingest(running: RunningSystem) -> None:
    """The ingest worker is subscribed once a device's message reaches the database: probe with a
    normal water level reading (no alert) until one is stored."""
    device, unit = "sensor-tra-my-bridge-water", "tra-my"

    def stored() -> bool:
        running.publish(unit, "sensor", device, "telemetry", {"metrics": {"water_level_cm": 120.0}})
        rows = running.query("SELECT state FROM device_presence WHERE device_id = %s", (device,))
        return bool(rows) and rows[0][0] == "online"

    if not wait_until(stored, 60, 1.0):
        raise RuntimeError(f"the ingest worker stored nothing within 60 s:\n{running.log_tail('ingest')}")


@pytest.fixture(scope="module")
def browser(chromium: str) -> Iterator[Any]:
    """One chromium per test module. Not per session: Playwright's sync API keeps an asyncio loop
    current in this thread while it runs, and the suite's later tests call ``asyncio.run``."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, headless=True)
        try:
            yield instance
        finally:
            instance.close()


@pytest.fixture()
def new_page(browser: Any, system: RunningSystem) -> Iterator[Callable[..., Any]]:
    """``new_page(width=1920, height=1080)``: a page in its own context; console errors collect in
    ``page.errors`` (a failing test prints them)."""
    contexts: list[Any] = []

    def make(width: int = 1920, height: int = 1080, **options: Any) -> Any:
        context = browser.new_context(viewport={"width": width, "height": height}, base_url=system.base_url,
                                      locale="vi-VN", timezone_id="Asia/Ho_Chi_Minh", **options)  # fmt: skip
        contexts.append(context)
        page = context.new_page()
        page.errors = []
        page.on("console", lambda msg: msg.type == "error" and page.errors.append(msg.text))
        page.on("pageerror", lambda exc: page.errors.append(str(exc)))
        return page

    yield make
    for context in contexts:
        context.close()


@pytest.fixture()
def login(system: RunningSystem) -> Callable[..., None]:
    """``login(page, username, path="/")``: open the page and sign in through its form."""

    def do(page: Any, username: str, path: str = "/") -> None:
        page.goto(path)
        page.wait_for_selector("#username", state="visible", timeout=15_000)
        page.fill("#username", username)
        page.fill("#password", system.password(username))
        page.click("button[type=submit]")
        page.wait_for_selector("#username", state="hidden", timeout=15_000)

    return do
