"""End to end (issue #17): an issued flood warning for 3 communes reaches their loudspeaker clusters
(proof of broadcast), the wall and the consoles (live events), a local Web Push receiver (VAPID token
checked, payload decrypted per RFC 8291 with http-ece), a local SMTP server (aiosmtpd) and a webhook
receiver that fails twice then succeeds (HMAC checked; the retries are in the ledger). An Update
reaches every channel; the Cancel stops the loudspeakers playing it and reaches every channel too;
the ledger exports as CSV. Real broker, real database, real radio service and simulated fleet."""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
import secrets
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import psycopg
import pytest
from aiosmtpd.controller import Controller
from channel_support import Mailbox, PushReceiver, b64, serve, unb64
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.testclient import TestClient
from radio_support import wait_for, wav
from staff import app_settings, token

from feeds.radio.fleet import RadioFleet
from ioc.district.bootstrap import load_district_into
from ioc.http.app import create_app
from ioc.hub.events import CHANNEL, decode
from ioc.mqtt import BrokerAddress
from ioc.net import free_port
from ioc.radio import content as radio_content
from ioc.radio.broadcasts import RadioPolicy
from ioc.radio.cap import CapPolicy
from ioc.radio.service import RadioService
from ioc.settings import Settings
from ioc.warnings.config import WarningsConfig
from ioc.warnings.dispatch import DispatchContext, Dispatcher
from ioc.warnings.store import Issuer

CONFIG = Path(__file__).resolve().parent.parent / "config"
UNITS = ["tra-kot", "tra-nu", "tra-son"]
# Acks within 5 s: 15 clusters, the radio service, the dispatcher and the API share 2 cores in CI.
POLICY = RadioPolicy(ack_timeout_s=5.0, max_attempts=3, playback_grace_s=10.0)
SECRET = "webhook-secret-" + "z" * 20


class WebhookReceiver(BaseHTTPRequestHandler):
    """A partner's endpoint that answers 503 twice, then 200; checks the HMAC signature every time."""

    calls: list[tuple[int, dict[str, Any]]]

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        expected = "sha256=" + hmac.new(SECRET.encode(), self.headers["X-IOC-Timestamp"].encode() + b"." + body,
                                        hashlib.sha256).hexdigest()  # fmt: skip
        assert hmac.compare_digest(expected, self.headers["X-IOC-Signature"])
        status = 503 if len(self.calls) < 2 else 200
        self.calls.append((status, json.loads(body)))
        self.send_response(status)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


class Chain:
    pass


@pytest.fixture(scope="module")
def chain(database_factory: Callable[..., str], mqtt_url: str, tmp_path_factory: pytest.TempPathFactory,
          mqtt_share_group_prefix: str) -> Iterator[Chain]:  # fmt: skip
    c = Chain()
    c.url = url = database_factory()
    load_district_into(url, Settings(_env_file=None, district_config=CONFIG / "district.yaml"), {})  # type: ignore[call-arg]
    c.var = tmp_path_factory.mktemp("var")
    tag = secrets.token_hex(3)
    root = f"wt{tag}/v1"
    address = BrokerAddress.from_url(mqtt_url)
    # Local receivers: push service + phone, SMTP server, partner webhook.
    c.phone_key = ec.generate_private_key(ec.SECP256R1())
    PushReceiver.key, PushReceiver.auth, PushReceiver.received = c.phone_key, secrets.token_bytes(16), []
    c.push_server, push_base = serve(PushReceiver)
    PushReceiver.origin = push_base
    WebhookReceiver.calls = []
    c.hook_server, hook_base = serve(WebhookReceiver)
    c.mailbox = Mailbox()
    smtp_port = free_port()
    c.smtp = Controller(c.mailbox, hostname="127.0.0.1", port=smtp_port)
    c.smtp.start()
    config = WarningsConfig.model_validate({
        "second_person": "actual_public",
        "categories": {"flood": {"label": "Lũ", "cap_category": "Met", "events": ["Lũ"],
                                 "channels": ["radio", "wall", "console", "push", "email", "webhook"]}},
        "email": {"district": ["pctt@huyen.example.vn"], "units": {"tra-kot": ["ubnd@trakot.example.vn"]}},
        "webhooks": [{"id": "sms", "url": f"{hook_base}/hook", "secret_env": "IOC_TEST_WEBHOOK_SECRET"}],
        "retry_delays_s": [0.3, 0.3, 0.3],
    })  # fmt: skip
    import os

    os.environ["IOC_TEST_WEBHOOK_SECRET"] = SECRET
    # The radio service and the fleet of the three communes (15 clusters).
    c.radio = RadioService(url, address, policy=POLICY, root=root, share_group=mqtt_share_group_prefix and f"w{tag}",
                           client_id=f"warn-radio-{tag}", tick_s=0.1, session_expiry_s=0,
                           cap=CapPolicy(mode="start", repeat=1, media_dir=c.var / "media",
                                         categories=config.radio_categories()))  # fmt: skip
    radio_thread = threading.Thread(target=c.radio.run, daemon=True)
    radio_thread.start()
    assert c.radio.subscribed.wait(15)
    with psycopg.connect(url) as conn:
        clusters = conn.execute("SELECT id, unit_id FROM devices WHERE kind = 'radio' AND unit_id = ANY(%s)",
                                (UNITS,)).fetchall()  # fmt: skip
    assert len(clusters) == 15
    c.fleet = RadioFleet(clusters, address, root=root)
    c.fleet.start()
    assert c.fleet.wait_connected(30) == []
    c.dispatcher = Dispatcher(url, DispatchContext(config, c.var, f"smtp://127.0.0.1:{smtp_port}", "ioc@huyen.vn",
                                                   "mailto:pctt@huyen.example.vn"), tick_s=0.1)  # fmt: skip
    dispatch_thread = threading.Thread(target=c.dispatcher.run, daemon=True)
    dispatch_thread.start()
    settings = app_settings(url, mqtt_url, var_dir=c.var, mqtt_topic_root=root)
    with TestClient(create_app(settings)) as client:
        client.app.state.warning_issuer = Issuer("ioc@bactramy.example.vn", "IOC Bắc Trà My", config)  # type: ignore[attr-defined]
        c.client = client
        c.push_base = push_base
        try:
            yield c
        finally:
            c.dispatcher.stopping.set()
            dispatch_thread.join(5)
            c.fleet.stop()
            c.radio.stopping.set()
            radio_thread.join(5)
            c.radio.stop()
            c.smtp.stop()
            c.push_server.shutdown()
            c.hook_server.shutdown()
            os.environ.pop("IOC_TEST_WEBHOOK_SECRET", None)


def _deliveries(c: Chain, warning_id: int, msg_type: str) -> dict[tuple[str, str], dict]:
    body = c.client.get(f"/api/warnings/{warning_id}", headers=c.op).json()
    return {(d["channel"], d["target"]): d for d in body["deliveries"] if d["msg_type"] == msg_type}


def _settled(c: Chain, warning_id: int, msg_type: str, final: dict[str, set[str]]) -> dict | None:
    found = _deliveries(c, warning_id, msg_type)
    if not found:
        return None
    for (channel, _), d in found.items():
        if d["state"] not in final.get(channel, {"delivered"}):
            return None
    return found


def test_issued_flood_warning_reaches_every_channel_update_and_cancel_follow_and_the_ledger_exports(
        chain: Chain) -> None:  # fmt: skip
    c = chain
    client = c.client
    c.op = {"Authorization": f"Bearer {token(client, c.url, 'operator')}"}
    leader = {"Authorization": f"Bearer {token(client, c.url, 'leader')}"}
    kot = {"Authorization": f"Bearer {token(client, c.url, 'commune_officer', 'tra-kot')}"}
    # The officer of Trà Kót subscribes her phone (the local push receiver) with its RFC 8291 keys.
    server_key = client.get("/api/warnings/push/key", headers=kot).json()["application_server_key"]
    assert len(unb64(server_key)) == 65
    phone_public = c.phone_key.public_key().public_bytes(serialization.Encoding.X962,
                                                         serialization.PublicFormat.UncompressedPoint)  # fmt: skip
    subscribed = client.post("/api/warnings/push/subscriptions", headers=kot, json={
        "endpoint": f"{c.push_base}/push/{secrets.token_hex(8)}",
        "keys": {"p256dh": b64(phone_public), "auth": b64(PushReceiver.auth)}})  # fmt: skip
    assert subscribed.status_code == 201, subscribed.text
    with psycopg.connect(c.url) as conn:
        short = radio_content.store_audio(conn, c.var / "media", wav(1.0), title="Cảnh báo lũ", created_by="t",
                                          max_bytes=10**7, max_duration_s=600).id  # fmt: skip
        long = radio_content.store_audio(conn, c.var / "media", wav(120.0), title="Cảnh báo lũ (cập nhật)",
                                         created_by="t", max_bytes=10**8, max_duration_s=600).id  # fmt: skip
    boundaries = {f["properties"]["unit_id"]: f["geometry"] for f in json.loads(
        (CONFIG / "district-units.geojson").read_text(encoding="utf-8"))["features"]}  # fmt: skip
    polygons = [[[lat, lon] for lon, lat in boundaries[u]["coordinates"][0]] for u in UNITS]
    flood = {"event": "Lũ", "headline": "Lũ lớn trên sông Trường", "severity": "Severe",
             "instruction": "Di dời người dân ven sông ngay.", "audio_id": short,
             "areas": [{"description": "Trà Kót, Trà Nú, Trà Sơn", "polygons": polygons}]}  # fmt: skip
    listener = psycopg.connect(c.url, autocommit=True)
    listener.execute(f"LISTEN {CHANNEL}")

    wid = client.post("/api/warnings", headers=c.op, json={"category": "flood", "content": flood}).json()["id"]
    assert client.post(f"/api/warnings/{wid}/issue", headers=c.op).json()["state"] == "awaiting_confirmation"
    issued = client.post(f"/api/warnings/{wid}/issue", headers=leader).json()
    assert issued["state"] == "issued" and issued["unit_ids"] == sorted(UNITS)

    # Every channel: radio played (proof), wall and consoles delivered, push, e-mail, webhook delivered.
    final = {"radio": {"played"}}
    alert = wait_for(lambda: _settled(c, wid, "Alert", final), 60, "every delivery of the Alert to settle")
    assert {k for k in alert} == {("radio", u) for u in UNITS} | {("console", u) for u in UNITS} | {
        ("wall", "district"), ("push", f"sub:{subscribed.json()['id']}"), ("email", "pctt@huyen.example.vn"),
        ("email", "ubnd@trakot.example.vn"), ("webhook", "sms")}  # type: ignore[union-attr]  # fmt: skip
    broadcast_id = alert[("radio", "tra-kot")]["detail"]["broadcast_id"]  # type: ignore[index]
    proof = client.get(f"/api/radio/broadcasts/{broadcast_id}/proof", headers=c.op).json()
    assert proof["summary"] == {"full": 15, "partial": 0, "none": 0}
    assert {cl["unit_id"] for cl in proof["clusters"]} == set(UNITS)
    with psycopg.connect(c.url) as conn:
        payload = conn.execute("SELECT payload FROM radio_commands WHERE broadcast_id = %s AND command = 'play' "
                               "LIMIT 1", (broadcast_id,)).fetchone()[0]  # type: ignore[index]  # fmt: skip
    assert payload["priority"] == "urgent"
    # The phone decrypted the payload.
    [push] = [p["payload"] for p in PushReceiver.received]
    assert push["headline"] == "Lũ lớn trên sông Trường" and push["msg_type"] == "Alert"
    assert sorted(push["units"]) == sorted(UNITS)
    # The mail server got the two addresses, with the CAP document attached.
    rcpts = sorted(r for rs, _ in c.mailbox.messages for r in rs)
    assert rcpts == ["pctt@huyen.example.vn", "ubnd@trakot.example.vn"]
    mail = c.mailbox.messages[0][1]
    assert "Lũ lớn trên sông Trường" in str(mail.get("Subject")) or "=?utf-8?" in str(mail.get("Subject"))
    attachments = [p for p in mail.walk() if p.get_content_type() == "application/cap+xml"]
    assert attachments and b"<msgType>Alert</msgType>" in attachments[0].get_payload(decode=True)
    # The webhook failed twice, then succeeded: three calls, retries in the ledger.
    assert [s for s, _ in WebhookReceiver.calls] == [503, 503, 200]
    entries = client.get(f"/api/warnings/{wid}/ledger", headers=c.op).json()["entries"]
    hook = [e["state"] for e in entries if e["channel"] == "webhook" and e["msg_type"] == "Alert"]
    assert hook == ["queued", "retrying", "retrying", "delivered"]
    # The wall and the three consoles got the live event.
    live = [decode(n.payload) for n in listener.notifies(timeout=1.0, stop_after=1000)]
    issued_events = [e for e in live if e.topic == "warning" and e.data["warning_id"] == wid]
    assert {e.unit_id for e in issued_events} == {None, *UNITS}
    # The commune's officer acknowledges on the console.
    assert client.post(f"/api/warnings/{wid}/acknowledge", headers=kot).json() == {"acknowledged": 1}
    assert _deliveries(c, wid, "Alert")[("console", "tra-kot")]["state"] == "acknowledged"

    # Update: a longer message, issued again by two people; it plays on the same clusters.
    revised = client.post(f"/api/warnings/{wid}/revise", headers=c.op, json={
        **flood, "headline": "Lũ đang lên nhanh, sơ tán ngay", "audio_id": long})  # fmt: skip
    assert revised.status_code == 200, revised.text
    client.post(f"/api/warnings/{wid}/issue", headers=leader)
    assert client.post(f"/api/warnings/{wid}/issue", headers=c.op).json()["msg_type"] == "Update"
    sql = ("SELECT s.broadcast_id FROM radio_cap_seen s JOIN cap_messages m ON m.id = s.cap_message_id "
           "WHERE m.warning_id = %s AND m.msg_type = 'Update'")  # fmt: skip
    with psycopg.connect(c.url, autocommit=True) as conn:
        found = wait_for(lambda: conn.execute(sql, (wid,)).fetchone(), 15, "the Update's broadcast")
    update_broadcast = found[0]  # type: ignore[index]

    def states() -> dict[str, int]:
        clusters = client.get(f"/api/radio/broadcasts/{update_broadcast}/proof", headers=c.op).json()["clusters"]
        out: dict[str, int] = {}
        for p in clusters:
            out[p["state"]] = out.get(p["state"], 0) + 1
        return out

    try:
        wait_for(lambda: states().get("playing") == 15, 60, "15 clusters playing the Update")
    except AssertionError as exc:
        raise AssertionError(f"{exc}: {states()}") from None
    wait_for(lambda: len(PushReceiver.received) == 2 and len(WebhookReceiver.calls) == 4, 20, "the Update's push "
             "and webhook")  # fmt: skip
    assert PushReceiver.received[1]["payload"]["msg_type"] == "Update"

    # Cancel: loudspeakers playing it stop; push, e-mail and webhook carry the Cancel.
    cancelled = client.post(f"/api/warnings/{wid}/cancel", headers=c.op, json={"note": "Nước đã rút"})
    assert cancelled.json()["msg_type"] == "Cancel"
    report = wait_for(lambda: (p := client.get(f"/api/radio/broadcasts/{update_broadcast}/proof", headers=c.op)
                               .json())["ended_at"] and p, 30, "the stopped broadcast's proof")  # fmt: skip
    assert report["status"] == "stopped"  # type: ignore[index]
    assert all(cl["state"] == "interrupted" and 0 < cl["position_s"] < 120 for cl in report["clusters"])  # type: ignore[index]
    cancel = wait_for(lambda: _settled(c, wid, "Cancel", {}), 30, "every delivery of the Cancel")
    assert {ch for ch, _ in cancel} == {"radio", "wall", "console", "push", "email", "webhook"}  # type: ignore[union-attr]
    assert cancel[("radio", "tra-kot")]["reason"] == "cancel: stopped 1 broadcast(s)"  # type: ignore[index]
    assert PushReceiver.received[-1]["payload"]["msg_type"] == "Cancel"
    assert WebhookReceiver.calls[-1][1]["msg_type"] == "Cancel"
    assert any("HỦY" in str(m.get("Subject")) or "H=E1=BB=A6Y" in str(m.get("Subject")) or m.get("Subject")
               for _, m in c.mailbox.messages[-2:])  # fmt: skip
    updates = _deliveries(c, wid, "Update")
    assert {d["state"] for (ch, _), d in updates.items() if ch == "radio"} == {"cancelled"}

    # The ledger exports: every move, times in Asia/Ho_Chi_Minh.
    exported = client.get(f"/api/warnings/{wid}/ledger", params={"format": "csv"}, headers=c.op)
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert rows[0]["at"].endswith("+07:00")
    assert {r["msg_type"] for r in rows} == {"Alert", "Update", "Cancel"}
    assert sum(1 for r in rows if r["channel"] == "webhook" and r["state"] == "retrying") == 2
    assert {r["state"] for r in rows if r["channel"] == "radio" and r["msg_type"] == "Alert"} == {"queued", "sent",
                                                                                                  "played"}  # fmt: skip
    # The Atom feed lists the three public messages.
    feed = client.get("/api/warnings/feed.atom").text
    assert feed.count("<entry>") >= 3 and "[Hủy]" in feed
    listener.close()
