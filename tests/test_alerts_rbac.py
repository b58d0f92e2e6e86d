"""Who may do what with alerts: every role against every alert endpoint and the live stream.

Two communes, A and B. Commune officers see and work on their own commune only: another commune's
alert is a 404 (its existence is not revealed) and never reaches their websocket.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import psycopg
import pytest
from fastapi.testclient import TestClient
from staff import add_unit, app_settings, token

from ioc.alerts.model import AlertDraft, Severity
from ioc.alerts.store import raise_alerts
from ioc.auth import repository
from ioc.auth.tokens import new_api_key
from ioc.http.app import create_app


class World:
    def __init__(self, client: TestClient, database_url: str) -> None:
        self.client = client
        self.db = database_url
        tag = secrets.token_hex(2)
        self.unit_a = add_unit(database_url, f"xa-a-{tag}")
        self.unit_b = add_unit(database_url, f"xa-b-{tag}")
        self.headers: dict[str, dict[str, str]] = {"anonymous": {}}
        for role in ("admin", "operator", "leader"):
            self.headers[role] = self._bearer(token(client, database_url, role))
        self.headers["officer_a"] = self._bearer(token(client, database_url, "commune_officer", self.unit_a))
        self.headers["officer_b"] = self._bearer(token(client, database_url, "commune_officer", self.unit_b))
        for role in ("device", "integration"):
            key = new_api_key()
            with psycopg.connect(database_url) as conn:
                repository.create_api_key(conn, name=f"{role}-{tag}", role=role, unit_id=None, key=key)
            self.headers[role] = {"X-API-Key": key}

    @staticmethod
    def _bearer(access: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {access}"}

    def alert(self, unit: str) -> int:
        with psycopg.connect(self.db) as conn:
            key = f"rbac-{secrets.token_hex(4)}"
            draft = AlertDraft(kind="camera.intrusion", severity=Severity.SEVERE, title="Xâm nhập trường học",
                               at=datetime.now(UTC), unit_id=unit, dedup_key=key)  # fmt: skip
            return raise_alerts(conn, [draft], now=datetime.now(UTC))[0].id


@pytest.fixture(scope="module")
def world(database_factory: Callable[..., str], mqtt_url: str) -> Iterator[World]:
    url = database_factory(migrated=True)
    with TestClient(create_app(app_settings(url, mqtt_url))) as client:
        yield World(client, url)


ROLES = ("anonymous", "device", "integration", "admin", "operator", "leader", "officer_a", "officer_b")

# role -> expected status for reading an alert of commune A / acting on it (acknowledge, comment, dismiss)
READ = {"anonymous": 401, "device": 403, "integration": 403, "admin": 200, "operator": 200, "leader": 200,
        "officer_a": 200, "officer_b": 404}  # fmt: skip
ACT = {
    "acknowledge": {**READ, "leader": 403},
    "comment": READ,
    # a role that may never dismiss is told so before the alert is looked up: nothing is revealed
    "dismiss": {**READ, "leader": 403, "officer_a": 403, "officer_b": 403},
}


@pytest.mark.parametrize("role", ROLES)
def test_reading_alerts(world: World, role: str) -> None:
    alert_a = world.alert(world.unit_a)
    headers = world.headers[role]
    one = world.client.get(f"/api/alerts/{alert_a}", headers=headers)
    assert one.status_code == READ[role], one.text
    listed = world.client.get("/api/alerts", params={"limit": 200}, headers=headers)
    changes = world.client.get("/api/alerts/changes", headers=headers)
    cap = world.client.get(f"/api/alerts/{alert_a}/cap", headers=headers)
    expected_list = READ[role] if READ[role] != 404 else 200
    assert (listed.status_code, changes.status_code) == (expected_list, expected_list)
    assert cap.status_code == READ[role]
    if expected_list == 200:
        ids = {a["id"] for a in listed.json()["items"]}
        changed = {a["id"] for a in changes.json()["items"]}
        visible = READ[role] == 200
        assert (alert_a in ids, alert_a in changed) == (visible, visible)
    if READ[role] >= 400:
        assert one.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize("action", sorted(ACT))
@pytest.mark.parametrize("role", ROLES)
def test_acting_on_alerts(world: World, role: str, action: str) -> None:
    alert_a = world.alert(world.unit_a)
    response = world.client.post(
        f"/api/alerts/{alert_a}/actions", json={"action": action, "note": "kiểm tra"}, headers=world.headers[role]
    )
    assert response.status_code == ACT[action][role], response.text
    status = world.client.get(f"/api/alerts/{alert_a}", headers=world.headers["admin"]).json()["status"]
    moved = ACT[action][role] == 200 and action != "comment"
    assert (status != "new") == moved


@pytest.mark.parametrize("role", ROLES)
def test_posting_cap(world: World, role: str) -> None:
    body = b"<not-cap/>"
    response = world.client.post("/api/cap", content=body, headers={**world.headers[role],
                                 "Content-Type": "application/cap+xml"})  # fmt: skip
    allowed = role in ("admin", "operator", "integration")
    expected = {"anonymous": 401}.get(role, 400 if allowed else 403)
    assert response.status_code == expected, response.text


@pytest.mark.parametrize("role", ROLES)
def test_live_stream(world: World, role: str) -> None:
    query = "topics=alert"
    headers = world.headers[role]
    if "Authorization" in headers:
        query += "&access_token=" + headers["Authorization"].split()[1]
    with world.client.websocket_connect(f"/ws?{query}", headers=headers) as ws:
        first = ws.receive_json()
        if READ[role] in (401, 403):
            assert first["type"] == "error"
            return
        while ws.receive_json()["type"] != "snapshot_end":
            pass
        deadline = time.monotonic() + 10
        while not world.client.app.state.hub_ready.is_set():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        # The other commune's alert is raised first: had it been delivered, it would arrive first.
        if role == "officer_b":
            other, mine = world.alert(world.unit_a), world.alert(world.unit_b)
        else:
            other, mine = world.alert(world.unit_b), world.alert(world.unit_a)
        seen: list[int] = []
        while mine not in seen:
            message = ws.receive_json()
            items = message["items"] if message["type"] == "batch" else [message]
            seen += [m["event"]["data"]["id"] for m in items if m.get("type") == "event"]
        officer = role.startswith("officer")
        assert (other in seen) is not officer
