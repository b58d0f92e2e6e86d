"""On call: a severe alert pages the commune officer on call (Web Push to a local push receiver that
checks VAPID and decrypts the payload, e-mail to a local SMTP server), who acknowledges it from the
page; escalation pages the operator on call; nobody on call is said in the incident's timeline; shifts
from config cover the right local hours."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email import policy as email_policy
from pathlib import Path
from typing import Any

import psycopg
import pytest
from aiosmtpd.controller import Controller
from channel_support import Mailbox, PushReceiver, b64, serve
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.testclient import TestClient
from staff import app_settings, token

from ioc.alerts.escalation import EscalationPolicy, EscalationStep, escalate_due
from ioc.alerts.model import AlertDraft, Severity
from ioc.alerts.store import raise_alerts
from ioc.district.bootstrap import load_district_into
from ioc.http.app import create_app
from ioc.net import free_port
from ioc.oncall.roster import OnCallConfig, Shift, on_duty
from ioc.settings import Settings

CONFIG = Path(__file__).resolve().parent.parent / "config"


class World:
    client: TestClient
    url: str
    mailbox: Mailbox
    op: dict[str, str]


@pytest.fixture(scope="module")
def world(database_factory: Callable[..., str], mqtt_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    w = World()
    w.url = database_factory()
    load_district_into(w.url, Settings(_env_file=None, district_config=CONFIG / "district.yaml"), {})  # type: ignore[call-arg]
    phone = ec.generate_private_key(ec.SECP256R1())
    PushReceiver.key, PushReceiver.auth, PushReceiver.received = phone, secrets.token_bytes(16), []
    push_server, push_base = serve(PushReceiver)
    PushReceiver.origin = push_base
    w.phone_public = phone.public_key().public_bytes(serialization.Encoding.X962,
                                                     serialization.PublicFormat.UncompressedPoint)  # fmt: skip
    w.push_base = push_base
    w.mailbox = Mailbox()
    port = free_port()
    smtp = Controller(w.mailbox, hostname="127.0.0.1", port=port)
    smtp.start()
    settings = app_settings(w.url, mqtt_url, var_dir=tmp_path_factory.mktemp("var"),
                            smtp_url=f"smtp://127.0.0.1:{port}", smtp_from="ioc@huyen.example.vn")  # fmt: skip
    try:
        with TestClient(create_app(settings)) as client:
            w.client = client
            w.op = {"Authorization": f"Bearer {token(client, w.url, 'operator')}"}
            yield w
    finally:
        smtp.stop()
        push_server.shutdown()


def _user(w: World, role: str, unit: str | None = None) -> tuple[str, dict[str, str]]:
    access = token(w.client, w.url, role, unit)
    me = w.client.get("/api/auth/me", headers={"Authorization": f"Bearer {access}"}).json()
    return me["username"], {"Authorization": f"Bearer {access}"}


def _override(w: World, unit: str | None, role: str, username: str, email: str | None = None) -> None:
    now = datetime.now(UTC)
    response = w.client.post("/api/on-call/overrides", headers=w.op, json={
        "unit_id": unit, "role": role, "username": username, "email": email,
        "starts_at": (now - timedelta(hours=1)).isoformat(), "ends_at": (now + timedelta(hours=1)).isoformat()})
    assert response.status_code == 201, response.text


def _wait(predicate: Callable[[], Any], timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _timeline(w: World, alert_id: int) -> list[dict[str, Any]]:
    with psycopg.connect(w.url) as conn:
        incident = conn.execute("SELECT incident_id FROM incident_signals WHERE signal = 'alert' AND ref = %s",
                                (alert_id,)).fetchone()[0]  # fmt: skip
    return w.client.get(f"/api/incidents/{incident}", headers=w.op).json()["timeline"]


def test_a_severe_alert_pages_the_officer_on_call_who_acknowledges_from_the_page(world: World) -> None:
    w = world
    username, officer = _user(w, "commune_officer", "tra-kot")
    subscribed = w.client.post("/api/warnings/push/subscriptions", headers=officer, json={
        "endpoint": f"{w.push_base}/push/{secrets.token_hex(4)}",
        "keys": {"p256dh": b64(w.phone_public), "auth": b64(PushReceiver.auth)}})  # fmt: skip
    assert subscribed.status_code == 201, subscribed.text
    _override(w, "tra-kot", "commune_officer", username, "truc@trakot.example.vn")
    who = w.client.get("/api/on-call", headers=officer, params={"role": "commune_officer", "unit": "tra-kot"}).json()
    assert [p["username"] for p in who["people"]] == [username] and who["people"][0]["source"] == "override"

    now = datetime.now(UTC)
    with psycopg.connect(w.url) as conn, conn.transaction():
        [change] = raise_alerts(conn, [AlertDraft(kind="camera.intrusion", severity=Severity.SEVERE,
                                                  title="Xâm nhập trạm biến áp Trà Kót", at=now, unit_id="tra-kot",
                                                  dedup_key=f"oc-{secrets.token_hex(4)}")], now=now)  # fmt: skip
    push = _wait(lambda: PushReceiver.received, 15, "the push")[-1]["payload"]
    assert push["type"] == "on_call" and push["alert_id"] == change.id
    assert push["title"] == "Xâm nhập trạm biến áp Trà Kót"
    mail = _wait(lambda: [m for to, m in w.mailbox.messages if to == ["truc@trakot.example.vn"]], 15, "the e-mail")
    subject = message_from_bytes(mail[-1].as_bytes(), policy=email_policy.default)["Subject"]
    assert subject.strip() == "[Trực IOC] Xâm nhập trạm biến áp Trà Kót"  # every space kept
    pages = _wait(lambda: [p for p in w.client.get("/api/on-call/pages/mine", headers=officer).json()
                           if p["alert_id"] == change.id and p["state"] == "sent"], 10, "pages sent")  # fmt: skip
    assert {p["channel"] for p in pages} == {"push", "email"}

    # Someone else cannot acknowledge my page; I can, and that acknowledges the alert.
    _, stranger = _user(w, "commune_officer", "tra-kot")
    assert w.client.post(f"/api/on-call/pages/{pages[0]['id']}/acknowledge", headers=stranger).status_code == 404
    done = w.client.post(f"/api/on-call/pages/{pages[0]['id']}/acknowledge", headers=officer)
    assert done.status_code == 200, done.text and done.json()["state"] == "acknowledged"
    alert = w.client.get(f"/api/alerts/{change.id}", headers=w.op).json()
    assert alert["status"] == "acknowledged"
    assert all(p["state"] == "acknowledged" for p in w.client.get("/api/on-call/pages/mine", headers=officer).json()
               if p["alert_id"] == change.id)  # fmt: skip
    actions = [(e["action"], e["actor"]) for e in _timeline(w, change.id) if e["source"] == "incident"]
    assert ("on_call_paged", "system") in actions and ("on_call_ack", username) in actions


def test_escalation_pages_the_operator_on_call_and_says_when_nobody_is(world: World) -> None:
    w = world
    username, operator = _user(w, "operator")
    _override(w, None, "operator", username)
    policy = EscalationPolicy("oc", (EscalationStep(timedelta(minutes=5), "operator"),
                                     EscalationStep(timedelta(minutes=10), "admin")))  # fmt: skip
    first = datetime.now(UTC) - timedelta(minutes=6)
    with psycopg.connect(w.url) as conn, conn.transaction():
        [change] = raise_alerts(conn, [AlertDraft(kind="sensor.rain", severity=Severity.MODERATE, title="Mưa lớn",
                                                  at=first, unit_id="tra-giac", dedup_key=f"oc-{secrets.token_hex(4)}",
                                                  policy="oc")], now=first, policies={"oc": policy})  # fmt: skip
        escalate_due(conn, first + timedelta(minutes=6), {"oc": policy})
    pages = _wait(lambda: [p for p in w.client.get("/api/on-call/pages/mine", headers=operator).json()
                           if p["alert_id"] == change.id], 10, "the operator's page")  # fmt: skip
    assert pages[0]["why"] == "escalation 1" and pages[0]["channel"] == "console"  # no phone, no e-mail: the console
    with psycopg.connect(w.url) as conn, conn.transaction():
        escalate_due(conn, first + timedelta(minutes=11), {"oc": policy})  # nobody is on call as admin
    nobody = [e for e in _timeline(w, change.id) if e["action"] == "on_call_nobody"]
    assert nobody and nobody[0]["data"]["role"] == "admin"
    # A commune officer does not read another commune's roster, nor the district's.
    _, kot = _user(w, "commune_officer", "tra-kot")
    other = w.client.get("/api/on-call", headers=kot, params={"role": "commune_officer", "unit": "tra-son"})
    assert other.status_code == 404
    assert w.client.get("/api/on-call", headers=kot, params={"role": "operator"}).status_code == 403
    refused = w.client.post("/api/on-call/overrides", headers=w.op, json={
        "role": "operator", "username": "nobody-here", "starts_at": "2026-12-24T17:00:00+07:00",
        "ends_at": "2026-12-24T07:00:00+07:00"})  # fmt: skip
    assert refused.status_code == 422


def test_shifts_cover_their_local_hours_including_past_midnight() -> None:
    night = Shift(role="operator", username="operator2", days=("mon",), start="19:00", end="07:00")
    day = Shift(role="operator", username="operator1", days=("mon", "tue"), start="07:00", end="19:00")
    config = OnCallConfig(shifts=(night, day))
    monday_2030 = datetime(2026, 12, 7, 13, 30, tzinfo=UTC)  # 20:30 Monday in Hà Nội time
    tuesday_0300 = datetime(2026, 12, 7, 20, 0, tzinfo=UTC)  # 03:00 Tuesday local: still Monday's night shift
    tuesday_0800 = datetime(2026, 12, 8, 1, 0, tzinfo=UTC)  # 08:00 Tuesday local
    wednesday_0300 = datetime(2026, 12, 8, 20, 0, tzinfo=UTC)  # 03:00 Wednesday: Tuesday has no night shift
    assert night.covers(monday_2030) and night.covers(tuesday_0300) and not night.covers(tuesday_0800)
    assert day.covers(tuesday_0800) and not day.covers(monday_2030) and not night.covers(wednesday_0300)

    class NoOverrides:
        def execute(self, *args: Any) -> Any:
            class Rows:
                def fetchall(self) -> list:
                    return []

            return Rows()

    assert [p.username for p in on_duty(NoOverrides(), None, "operator", tuesday_0300, config)] == ["operator2"]  # type: ignore[arg-type]
