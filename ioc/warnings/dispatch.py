"""``ioc warnings serve``: sends the queued deliveries and follows the radio's proof into the ledger.

Each tick takes due deliveries (``FOR UPDATE SKIP LOCKED``: several dispatchers share the work),
sends each one and records the outcome in the same transaction as the move, so a crash re-sends
at most the one delivery in flight (webhook receivers dedupe on ``X-IOC-Delivery``). Webhooks are
retried with the configured back-off; when the attempts are used up the delivery fails and an
alert (``warning.delivery_failed``) tells the operators. Radio deliveries are not sent here: the
radio service plays issued CAP messages (``radio_cap_seen``), and its proof of broadcast moves the
commune's delivery to ``played`` (a cluster played it fully) or ``failed`` (with the reason).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg

from ioc.alerts.model import AlertDraft, Severity
from ioc.alerts.store import raise_alerts
from ioc.clock import Clock, SystemClock
from ioc.storage.db import connect
from ioc.warnings import channels, ledger
from ioc.warnings.config import WarningsConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DispatchContext:
    config: WarningsConfig
    var_dir: Path
    smtp_url: str | None
    smtp_from: str
    vapid_subject: str


def payload(conn: psycopg.Connection, message_id: int) -> tuple[dict[str, Any], bytes]:
    """What every outside channel carries for one CAP message: a JSON summary, and the CAP document."""
    row = conn.execute(
        """SELECT m.identifier, m.sender, m.sent_text, m.msg_type, m.status, m.scope, m.refs, m.xml, w.id,
                  w.category, w.content, w.unit_ids
           FROM cap_messages m JOIN warnings w ON w.id = m.warning_id WHERE m.id = %s""",
        (message_id,),
    ).fetchone()
    assert row is not None
    identifier, sender, sent, msg_type, status, scope, refs, xml, warning_id, category, content, units = row
    names = dict(conn.execute("SELECT id, name FROM units WHERE id = ANY(%s)", (list(units),)).fetchall())
    return {
        "warning_id": warning_id, "identifier": identifier, "sender": sender, "sent": sent, "msg_type": msg_type,
        "status": status, "scope": scope, "references": list(refs), "category": category,
        "event": content.get("event"), "headline": content.get("headline"), "severity": content.get("severity"),
        "urgency": content.get("urgency"), "instruction": content.get("instruction"), "expires": content.get("expires"),
        "units": [{"id": u, "name": names.get(u, u)} for u in units],
    }, bytes(xml)  # fmt: skip


def _email_text(p: dict[str, Any]) -> tuple[str, str]:
    tags = {"Alert": "CẢNH BÁO", "Update": "CẬP NHẬT CẢNH BÁO", "Cancel": "HỦY CẢNH BÁO"}
    tag = tags.get(p["msg_type"], p["msg_type"])
    not_real = {"Exercise": "[DIỄN TẬP] ", "Test": "[THỬ NGHIỆM] ", "System": "[HỆ THỐNG] ", "Draft": "[NHÁP] "}
    subject = f"{not_real.get(p['status'], '')}[{tag}] {p['headline']}"
    units = ", ".join(u["name"] for u in p["units"])
    body = "\n".join(x for x in (
        p["headline"], f"Khu vực: {units}", f"Mức độ: {p['severity']}", p.get("instruction") or "",
        f"Hết hiệu lực: {p['expires']}" if p.get("expires") else "", "",
        f"Mã bản tin CAP: {p['sender']},{p['identifier']},{p['sent']}",
    ) if x is not None)  # fmt: skip
    return subject, body


class Dispatcher:
    def __init__(self, database_url: str, ctx: DispatchContext, *, clock: Clock | None = None,
                 tick_s: float = 0.5) -> None:  # fmt: skip
        self.database_url = database_url
        self.ctx = ctx
        self.clock = clock or SystemClock()
        self.tick_s = tick_s
        self.stopping = threading.Event()
        self._conn: psycopg.Connection | None = None

    def tick(self) -> int:
        if self._conn is None or self._conn.closed:
            self._conn = connect(self.database_url, application_name="ioc-warnings")
        conn = self._conn
        done = 0
        while not self.stopping.is_set():
            with conn.transaction():
                sent = dispatch_one(conn, self.ctx, self.clock.now())
            if not sent:
                break
            done += 1
        with conn.transaction():
            track_radio(conn, self.clock.now())
        return done

    def run(self) -> int:
        while not self.stopping.wait(self.tick_s):
            try:
                self.tick()
            except psycopg.OperationalError as exc:
                log.warning("warnings: database unavailable: %s", exc)
                self._conn = None
        if self._conn is not None:
            self._conn.close()
        return 0


def dispatch_one(conn: psycopg.Connection, ctx: DispatchContext, now: datetime) -> bool:
    """Send one due delivery (in the caller's transaction); False when none is due."""
    row = conn.execute(
        """SELECT id, warning_id, cap_message_id, msg_type, channel, target, attempts FROM warning_deliveries
           WHERE state = 'queued' AND channel IN ('push', 'email', 'webhook') AND next_at <= %s
           ORDER BY next_at, id LIMIT 1 FOR UPDATE SKIP LOCKED""",
        (now,),
    ).fetchone()
    if row is None:
        return False
    delivery_id, warning_id, message_id, msg_type, channel, target, attempts = row
    attempts += 1
    body, xml = payload(conn, message_id)
    try:
        reason = _send(conn, ctx, channel, target, delivery_id, body, xml)
    except channels.DeliveryFailed as exc:
        again = ledger.retry_at(ctx.config, attempts, now) if exc.retry and channel == "webhook" else None
        if again is not None:
            ledger.move(conn, delivery_id, "retrying", now=now, reason=f"{exc.reason}; next attempt at "
                        f"{again.isoformat(timespec='seconds')}", next_at=again, attempts=attempts)  # fmt: skip
        else:
            ledger.move(conn, delivery_id, "failed", now=now, reason=exc.reason, attempts=attempts)
            if exc.gone and target.startswith("sub:"):
                conn.execute("DELETE FROM push_subscriptions WHERE id = %s", (int(target[4:]),))
            _alarm(conn, delivery_id, body, channel, target, exc.reason, attempts, now)
        log.info("warnings: %s %s to %s: %s", msg_type, channel, target, exc.reason)
        return True
    ledger.move(conn, delivery_id, "delivered", now=now, reason=reason, attempts=attempts)
    return True


def _send(conn: psycopg.Connection, ctx: DispatchContext, channel: str, target: str, delivery_id: int,
          body: dict[str, Any], xml: bytes) -> str:  # fmt: skip
    if channel == "push":
        sub = conn.execute(
            "SELECT endpoint, p256dh, auth FROM push_subscriptions WHERE id = %s", (int(target[4:]),)
        ).fetchone()
        if sub is None:
            raise channels.DeliveryFailed("the phone unsubscribed", retry=False)
        short = {k: body[k] for k in ("warning_id", "msg_type", "category", "headline", "severity", "expires")}
        short["units"] = [u["id"] for u in body["units"]]
        subscription = {"endpoint": sub[0], "keys": {"p256dh": sub[1], "auth": sub[2]}}
        return channels.send_push(subscription, short, var_dir=ctx.var_dir, subject=ctx.vapid_subject)
    if channel == "email":
        subject, text = _email_text(body)
        return channels.send_email(ctx.smtp_url, ctx.smtp_from, target, subject, text, xml)
    hook = next((h for h in ctx.config.webhooks if h.id == target), None)
    if hook is None:
        raise channels.DeliveryFailed(f"webhook {target} is no longer configured", retry=False)
    return channels.send_webhook(hook, delivery_id, body)


def _alarm(conn: psycopg.Connection, delivery_id: int, body: dict[str, Any], channel: str, target: str,
           reason: str, attempts: int, now: datetime) -> None:  # fmt: skip
    raise_alerts(conn, [AlertDraft(
        kind="warning.delivery_failed", severity=Severity.SEVERE, at=now,
        title=f"Không gửi được cảnh báo «{body['headline']}» qua {channel} tới {target} ({reason})"[:300],
        dedup_key=f"warning-delivery:{delivery_id}",
        evidence={"warning_id": body["warning_id"], "delivery_id": delivery_id, "channel": channel, "target": target,
                  "reason": reason, "attempts": attempts},
        source_ref={"warning": body["warning_id"], "delivery": delivery_id},
    )], now=now)  # fmt: skip


def track_radio(conn: psycopg.Connection, now: datetime) -> None:
    """Move the radio deliveries along what the radio service decided and the clusters reported."""
    rows = conn.execute(
        """SELECT d.id, d.msg_type, d.target, d.state, s.decision, s.broadcast_id, b.status, b.ended_at, b.reason
           FROM warning_deliveries d
           JOIN radio_cap_seen s ON s.cap_message_id = d.cap_message_id
           LEFT JOIN radio_broadcasts b ON b.id = s.broadcast_id
           WHERE d.channel = 'radio' AND d.state IN ('queued', 'sent')
           ORDER BY d.id FOR UPDATE OF d SKIP LOCKED""",
    ).fetchall()
    for delivery_id, msg_type, unit, state, decision, broadcast_id, b_status, ended, b_reason in rows:
        if msg_type == "Cancel":
            ledger.move(conn, delivery_id, "delivered", now=now, reason=decision)
            continue
        if broadcast_id is None:
            ledger.move(conn, delivery_id, "failed", now=now, reason=decision)
            continue
        outcomes = conn.execute(
            "SELECT state, position_s, duration_s FROM radio_playbacks WHERE broadcast_id = %s AND unit_id = %s",
            (broadcast_id, unit),
        ).fetchall()
        full = sum(1 for s, pos, dur in outcomes if s == "finished" and (not dur or (pos or 0) >= dur * 0.98))
        playing = sum(1 for s, _, _ in outcomes if s in ("playing", "finished", "interrupted"))
        detail = {"broadcast_id": broadcast_id, "clusters": len(outcomes)}
        if b_status in ("stopped", "cancelled"):
            ledger.move(conn, delivery_id, "cancelled", now=now, detail=detail,
                        reason=f"broadcast {broadcast_id} {b_status} ({b_reason}); {playing} of {len(outcomes)} "
                        "cluster(s) had started")  # fmt: skip
        elif ended is not None:
            if full:
                ledger.move(conn, delivery_id, "played", now=now, detail=detail,
                            reason=f"{full} of {len(outcomes)} cluster(s) played it fully")  # fmt: skip
            else:
                why = f"no cluster of {unit} played it fully (proof of broadcast {broadcast_id})"
                ledger.move(conn, delivery_id, "failed", now=now, detail=detail, reason=why)
        elif state == "queued":
            why = "proposed: waiting for an operator to start it" if b_status == "proposed" else (
                f"broadcast {broadcast_id} {b_status}")  # fmt: skip
            ledger.move(conn, delivery_id, "sent", now=now, reason=why, detail=detail)
