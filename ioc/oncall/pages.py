"""Pages: an alert that needs a person reaches the one on call, on their phone and by e-mail.

``page`` queues one row per channel in the caller's transaction (escalation, or a severe alert being
raised) and writes the incident's timeline; ``send_due`` sends queued rows after that commit (one
at a time with ``SKIP LOCKED``, so every API replica may run it); ``acknowledged`` closes a person's
pages when they acknowledge the alert, from the page or from the console.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from ioc.oncall.roster import OnCallConfig, on_duty

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 3
SEVERITIES = ("info", "minor", "moderate", "severe", "critical")


def _incident_event(conn: psycopg.Connection, alert_id: int, at: datetime, actor: str, action: str, note: str,
                    data: dict[str, Any]) -> None:  # fmt: skip
    conn.execute(
        """INSERT INTO incident_events (incident_id, at, actor, action, note, data)
           SELECT incident_id, %s, %s, %s, %s, %s FROM incident_signals WHERE signal = 'alert' AND ref = %s""",
        (at, actor, action, note, Jsonb(data), alert_id),
    )


def page(conn: psycopg.Connection, alert_id: int, *, unit_id: str | None, role: str, now: datetime,
         why: str, config: OnCallConfig | None = None) -> list[int]:  # fmt: skip
    """Queue pages to whoever is on call for ``role`` (in ``unit_id`` for commune officers, district-wide
    otherwise); return the page ids. Nobody on call: nothing queued, and the timeline says so."""
    scope = unit_id if role == "commune_officer" else None
    people = on_duty(conn, scope, role, now, config)
    if not people:
        _incident_event(conn, alert_id, now, "system", "on_call_nobody", f"không có ai trực ({role})",
                        {"role": role, "unit_id": scope})  # fmt: skip
        return []
    ids: list[int] = []
    for person in people:
        targets = [("push", str(r[0])) for r in conn.execute(
            "SELECT id FROM push_subscriptions WHERE actor = %s ORDER BY id", (person.username,))]  # fmt: skip
        if person.email:
            targets.append(("email", person.email))
        if not targets:
            targets.append(("console", person.username))  # only the console will show it
        for channel, target in targets:
            row = conn.execute(
                """INSERT INTO on_call_pages (alert_id, username, role, unit_id, channel, target, why, state,
                                              created_at)
                   VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id""",
                (alert_id, person.username, role, scope, channel, target, why,
                 "sent" if channel == "console" else "queued", now),
            ).fetchone()  # fmt: skip
            assert row is not None
            ids.append(int(row[0]))
        _incident_event(conn, alert_id, now, "system", "on_call_paged", f"{person.username} ({role})",
                        {"username": person.username, "role": role, "why": why,
                         "channels": sorted({c for c, _ in targets})})  # fmt: skip
    return ids


def page_if_severe(conn: psycopg.Connection, alert_id: int, *, unit_id: str | None, severity: str, now: datetime,
                   config: OnCallConfig | None = None) -> list[int]:  # fmt: skip
    """A new alert at or above the configured severity pages its commune's officer on call at once."""
    from ioc.oncall.roster import configured

    config = config or configured()
    threshold = config.page_on_create_severity
    if unit_id is None or threshold is None or SEVERITIES.index(severity) < SEVERITIES.index(threshold):
        return []
    return page(conn, alert_id, unit_id=unit_id, role="commune_officer", now=now, why="new", config=config)


@dataclass(frozen=True)
class SendContext:
    var_dir: Path
    smtp_url: str | None
    smtp_from: str
    vapid_subject: str


def _payload(conn: psycopg.Connection, page_id: int, alert_id: int) -> dict[str, Any]:
    """What the phone shows: the alert and the incident it belongs to, with the console link that
    opens the incident (the alert itself when it is in none)."""
    row = conn.execute(
        """SELECT a.title, a.severity, a.unit_id, i.id, i.title
           FROM alerts a LEFT JOIN incident_signals s ON s.signal = 'alert' AND s.ref = a.id
                         LEFT JOIN incidents i ON i.id = s.incident_id
           WHERE a.id = %s""",
        (alert_id,),
    ).fetchone()
    title, severity, unit_id, incident_id, incident_title = row if row else ("", "", None, None, None)
    url = f"/console/#incident-{incident_id}" if incident_id is not None else f"/console/#alert-{alert_id}"
    return {"type": "on_call", "page_id": page_id, "alert_id": alert_id, "title": title, "severity": severity,
            "unit_id": unit_id, "incident_id": incident_id, "incident_title": incident_title, "url": url}  # fmt: skip


def send_due(conn_factory: Any, ctx: SendContext, now: datetime, limit: int = 50) -> int:
    """Send queued pages; each in its own short transaction, the network call outside any lock."""
    from ioc.warnings.channels import DeliveryFailed, send_email, send_push

    sent = 0
    for _ in range(limit):
        with conn_factory() as conn, conn.transaction():
            row = conn.execute(
                """UPDATE on_call_pages SET attempts = attempts + 1, state = 'sending'
                   WHERE id = (SELECT id FROM on_call_pages WHERE state = 'queued' ORDER BY id
                               LIMIT 1 FOR UPDATE SKIP LOCKED)
                   RETURNING id, alert_id, channel, target, attempts""",
            ).fetchone()
            if row is None:
                return sent
            page_id, alert_id, channel, target, attempts = row
            payload = _payload(conn, page_id, alert_id)
            sub = conn.execute("SELECT endpoint, p256dh, auth FROM push_subscriptions WHERE id = %s",
                               (int(target),)).fetchone() if channel == "push" else None  # fmt: skip
        state, reason = "sent", None
        try:
            if channel == "push":
                if sub is None:
                    raise DeliveryFailed("the phone's subscription is gone", retry=False, gone=True)
                reason = send_push({"endpoint": sub[0], "keys": {"p256dh": sub[1], "auth": sub[2]}}, payload,
                                   var_dir=ctx.var_dir, subject=ctx.vapid_subject)  # fmt: skip
            else:
                body = (f"Cảnh báo cần người trực xử lý: {payload['title']}\nMức độ: {payload['severity']}\n"
                        f"Mở bảng điều khiển: {payload['url']}")  # fmt: skip
                reason = send_email(ctx.smtp_url, ctx.smtp_from, target, f"[Trực IOC] {payload['title']}", body,
                                    b"")  # fmt: skip
        except DeliveryFailed as exc:
            state = "queued" if exc.retry and attempts < MAX_ATTEMPTS else "failed"
            reason = str(exc)
        with conn_factory() as conn, conn.transaction():
            conn.execute(
                "UPDATE on_call_pages SET state = %s, reason = %s, sent_at = CASE WHEN %s = 'sent' THEN %s END"
                " WHERE id = %s AND state = 'sending'",
                (state, reason, state, now, page_id),
            )
        sent += state == "sent"
    return sent


def acknowledged(conn: psycopg.Connection, alert_id: int, *, by: str, now: datetime) -> int:
    """``by`` acknowledged the alert: their pages for it are closed and the incident's timeline says who."""
    rows = conn.execute(
        """UPDATE on_call_pages SET state = 'acknowledged', acknowledged_at = %s
           WHERE alert_id = %s AND username = %s AND state <> 'acknowledged' RETURNING id""",
        (now, alert_id, by),
    ).fetchall()
    if rows:
        _incident_event(conn, alert_id, now, by, "on_call_ack", f"{by} đã tiếp nhận",
                        {"alert_id": alert_id, "pages": [r[0] for r in rows]})  # fmt: skip
    return len(rows)
