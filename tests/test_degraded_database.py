"""PostgreSQL away: every route that needs it and ``/ws`` answer 503 problem+json within 2 s,
connected live clients are told, and everything works again when it is back, without a restart.

The API reaches the real test database through a TCP link the test cuts (tests/served.py), so the
outage is what the API would see from a dead server or network: open connections drop, new ones
are refused. Also when the database is unreachable from the start.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import psycopg
import pytest
import requests
from served import CuttableLink, ServedApp
from staff import PASSWORD, app_settings
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from ioc.auth import passwords, repository
from ioc.district.bootstrap import load_district_into
from ioc.http.app import create_app

ROUTES = ["/api/alerts", "/api/units", "/api/devices", "/api/kpi/dossiers?from=2026-01-01&to=2026-01-31",
          "/open311/v2/services.json", "/api/public/reports/PA-ABCD-EFGH", "/readyz"]  # fmt: skip


def _timed(session: requests.Session, url: str, **kwargs: object) -> tuple[requests.Response, float]:
    started = time.monotonic()
    response = session.get(url, timeout=10, **kwargs)  # type: ignore[arg-type]
    return response, time.monotonic() - started


def _all_unavailable(session: requests.Session, base: str, auth: dict[str, str]) -> None:
    for route in ROUTES:
        response, took = _timed(session, base + route, headers=auth)
        assert response.status_code == 503, (route, response.status_code, response.text[:200])
        assert response.headers["content-type"].startswith("application/problem+json"), route
        assert took < 2.0, f"{route} took {took:.2f} s"
        if route != "/readyz":
            assert response.json()["type"] == "/problems/database-unavailable"


@pytest.fixture()
def world(database_factory: Callable[..., str], mqtt_url: str, tmp_path):
    url = database_factory(migrated=True)
    settings = app_settings(url, mqtt_url, var_dir=tmp_path)
    load_district_into(url, settings, environ={})
    with psycopg.connect(url) as conn:
        repository.create_user(conn, username="outage-op", display_name="outage-op", role="operator", unit_id=None,
                               password_hash=passwords.hash_password(PASSWORD))  # fmt: skip
    link = CuttableLink(url)
    yield link, app_settings(link.url, mqtt_url, var_dir=tmp_path)
    link.close()


def _login(session: requests.Session, base: str) -> dict[str, str]:
    response = session.post(f"{base}/api/auth/login", json={"username": "outage-op", "password": PASSWORD})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def _wait_until(predicate: Callable[[], bool], timeout_s: float) -> float:
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout_s:
            raise AssertionError(f"not within {timeout_s} s")
        time.sleep(0.05)
    return time.monotonic() - started


def test_a_cut_database_gives_503_within_2_s_tells_the_live_clients_and_recovers(world) -> None:
    link, settings = world
    with ServedApp(create_app(settings)) as app, requests.Session() as session:
        auth = _login(session, app.url)
        assert session.get(f"{app.url}/api/alerts", headers=auth).status_code == 200
        ws_url = f"ws://127.0.0.1:{app.port}/ws?access_token={auth['Authorization'][7:]}"
        with connect(ws_url, open_timeout=10) as live:
            while json.loads(live.recv(timeout=10))["type"] != "snapshot_end":
                pass
            link.cut()
            cut_at = time.monotonic()
            told = None
            while told is None and time.monotonic() - cut_at < 5:
                message = json.loads(live.recv(timeout=5))
                items = message["items"] if message["type"] == "batch" else [message]
                told = next((m for m in items if m.get("event", {}).get("type") == "database.unavailable"), None)
            assert told is not None and time.monotonic() - cut_at < 2.0, "the live client was not told within 2 s"
            _all_unavailable(session, app.url, auth)
            assert session.get(f"{app.url}/healthz").status_code == 200  # alive, just degraded
            assert session.get(f"{app.url}/").status_code == 200  # the pages still load (and show the banner)
            started = time.monotonic()
            with pytest.raises(InvalidStatus) as refused:
                connect(ws_url, open_timeout=5).close()
            assert refused.value.response.status_code == 503 and time.monotonic() - started < 2.0
            assert json.loads(refused.value.response.body)["type"] == "/problems/database-unavailable"
            link.restore()
            took = _wait_until(lambda: session.get(f"{app.url}/api/alerts", headers=auth).status_code == 200, 10)
            assert took < 5.0, f"recovered only after {took:.1f} s"
            back = None
            while back is None:
                message = json.loads(live.recv(timeout=5))
                items = message["items"] if message["type"] == "batch" else [message]
                back = next((m for m in items if m.get("event", {}).get("type") == "database.available"), None)


def test_a_database_unreachable_at_start_gives_503_at_once_then_works_when_it_comes(world) -> None:
    link, settings = world
    link.cut()
    with ServedApp(create_app(settings)) as app, requests.Session() as session:
        for route in ("/api/units", "/api/auth/login", "/open311/v2/services.json"):
            started = time.monotonic()
            response = session.post(app.url + route, json={}) if "login" in route else session.get(app.url + route)
            assert response.status_code == 503 and time.monotonic() - started < 2.0, (route, response.text)
        started = time.monotonic()
        with pytest.raises(InvalidStatus) as refused:
            connect(f"ws://127.0.0.1:{app.port}/ws", open_timeout=5).close()
        assert refused.value.response.status_code == 503 and time.monotonic() - started < 2.0
        link.restore()
        _wait_until(lambda: session.get(f"{app.url}/api/units").status_code == 200, 10)
        assert session.get(f"{app.url}/api/alerts", headers=_login(session, app.url)).status_code == 200
