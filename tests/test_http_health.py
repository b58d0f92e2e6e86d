"""/healthz, /readyz and /metrics against a real database and broker."""

from __future__ import annotations

import time
from collections.abc import Callable

from fastapi.testclient import TestClient

from ioc.http.app import create_app
from ioc.net import free_port
from ioc.settings import Settings


def _client(database_url: str, mqtt_url: str) -> TestClient:
    return TestClient(create_app(Settings(database_url=database_url, mqtt_url=mqtt_url)))


def _readyz_eventually(client: TestClient, status: int, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while True:
        response = client.get("/readyz")
        if response.status_code == status or time.monotonic() > deadline:
            return response
        time.sleep(0.1)


def test_ready_when_database_and_broker_are_reachable(database_url: str, mqtt_url: str) -> None:
    with _client(database_url, mqtt_url) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        response = _readyz_eventually(client, 200)
        assert response.status_code == 200, response.text
        assert response.json()["checks"] == {"database": "ok", "broker": "ok"}


def test_not_ready_names_the_unreachable_broker(database_url: str) -> None:
    dead_port = free_port()
    with _client(database_url, f"mqtt://127.0.0.1:{dead_port}") as client:
        response = _readyz_eventually(client, 503)
        assert response.status_code == 503
        body = response.json()
        assert body["checks"]["database"] == "ok"
        assert f"broker unreachable at 127.0.0.1:{dead_port}" in body["checks"]["broker"]


def test_not_ready_while_migrations_are_pending(database_factory: Callable[..., str], mqtt_url: str) -> None:
    unmigrated = database_factory(migrated=False)
    with _client(unmigrated, mqtt_url) as client:
        response = client.get("/readyz")
        assert response.status_code == 503
        assert "migrations pending: 0001_core" in response.json()["checks"]["database"]


def test_metrics_are_prometheus_text(database_url: str, mqtt_url: str) -> None:
    with _client(database_url, mqtt_url) as client:
        response = client.get("/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        assert "process_cpu_seconds_total" in response.text or "python_info" in response.text
