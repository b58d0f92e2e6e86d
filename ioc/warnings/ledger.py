"""One ledger per warning: every delivery on every channel, and every move it made.

A delivery is one (CAP message, channel, target): ``radio`` per commune, ``wall`` once, ``console``
per commune, ``push`` per subscribed phone, ``email`` per address, ``webhook`` per partner. Its
state moves ``queued -> sent -> delivered / acknowledged / played``, or ``failed`` with the reason,
or ``cancelled`` when a later Update or Cancel made it pointless before it went out. Each move is a
row of ``warning_ledger`` (append-only): retries show as ``retrying`` rows with their reason.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from ioc.warnings.config import PUBLIC_CHANNELS, WarningsConfig

LEDGER_COLUMNS = ("at", "msg_type", "channel", "target", "state", "attempt", "reason")


def _insert(conn: psycopg.Connection, warning_id: int, message_id: int, msg_type: str, channel: str, target: str,
            now: datetime, state: str = "queued", reason: str | None = None) -> None:  # fmt: skip
    row = conn.execute(
        """INSERT INTO warning_deliveries (warning_id, cap_message_id, msg_type, channel, target, state, reason,
                                           next_at, created_at, updated_at)
           VALUES (%s, %s, %s, %s, %s, 'queued', NULL, %s, %s, %s)
           ON CONFLICT (cap_message_id, channel, target) DO NOTHING RETURNING id""",
        (warning_id, message_id, msg_type, channel, target, now, now, now),
    ).fetchone()
    if row is None:
        return
    _log(conn, warning_id, int(row[0]), now, msg_type, channel, target, "queued", 0, None)
    if state != "queued":
        move(conn, int(row[0]), state, now=now, reason=reason)


def _log(conn: psycopg.Connection, warning_id: int, delivery_id: int, now: datetime, msg_type: str, channel: str,
         target: str, state: str, attempt: int, reason: str | None) -> None:  # fmt: skip
    conn.execute(
        """INSERT INTO warning_ledger (warning_id, delivery_id, at, msg_type, channel, target, state, attempt, reason)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)""",
        (warning_id, delivery_id, now, msg_type, channel, target, state, attempt, reason),
    )


def move(conn: psycopg.Connection, delivery_id: int, state: str, *, now: datetime, reason: str | None = None,
         next_at: datetime | None = None, attempts: int | None = None,
         detail: dict[str, Any] | None = None) -> None:  # fmt: skip
    """Move a delivery (``retrying`` keeps it queued until ``next_at``) and log the move."""
    stored = "queued" if state == "retrying" else state
    row = conn.execute(
        """UPDATE warning_deliveries SET state = %s, reason = %s, next_at = coalesce(%s, next_at),
                  attempts = coalesce(%s, attempts), detail = detail || %s, updated_at = %s
           WHERE id = %s RETURNING warning_id, msg_type, channel, target, attempts""",
        (stored, reason, next_at, attempts, Jsonb(detail or {}), now, delivery_id),
    ).fetchone()
    if row is not None:
        _log(conn, row[0], delivery_id, now, row[1], row[2], row[3], state, row[4], reason)


def enqueue(conn: psycopg.Connection, warning_id: int, message_id: int, msg_type: str, category: str,
            unit_ids: list[str], *, public: bool, config: WarningsConfig, now: datetime) -> None:  # fmt: skip
    """Queue the message on every channel of its category (public channels only for Actual/Public)."""
    configured = config.categories.get(category)
    channels = list(configured.channels) if configured else ["wall", "console"]
    if not public:
        channels = [c for c in channels if c not in PUBLIC_CHANNELS]
    for channel in channels:
        if channel == "radio":
            for unit in unit_ids:
                _insert(conn, warning_id, message_id, msg_type, "radio", unit, now)
        elif channel == "wall":
            # The live event goes out when this transaction commits: delivered with it, or not at all.
            _insert(conn, warning_id, message_id, msg_type, "wall", "district", now, "delivered", "live event")
        elif channel == "console":
            for unit in unit_ids:
                _insert(conn, warning_id, message_id, msg_type, "console", unit, now, "delivered", "live event")
        elif channel == "push":
            for (sub_id,) in conn.execute(
                "SELECT id FROM push_subscriptions WHERE unit_ids IS NULL OR unit_ids && %s::text[] ORDER BY id",
                (unit_ids,),
            ).fetchall():
                _insert(conn, warning_id, message_id, msg_type, "push", f"sub:{sub_id}", now)
        elif channel == "email":
            addresses = list(config.email.district)
            for unit in unit_ids:
                addresses += config.email.units.get(unit, [])
            for address in dict.fromkeys(addresses):
                _insert(conn, warning_id, message_id, msg_type, "email", address, now)
        elif channel == "webhook":
            for hook in config.webhooks:
                if not hook.categories or category in hook.categories:
                    _insert(conn, warning_id, message_id, msg_type, "webhook", hook.id, now)


def supersede(conn: psycopg.Connection, warning_id: int, message_id: int, *, now: datetime, why: str) -> None:
    """Withdraw what earlier messages of the warning have not sent yet (radio is stopped by the radio service)."""
    for (delivery_id,) in conn.execute(
        "SELECT id FROM warning_deliveries WHERE warning_id = %s AND cap_message_id <> %s AND state = 'queued' "
        "AND channel IN ('push', 'email', 'webhook') AND attempts = 0",
        (warning_id, message_id),
    ).fetchall():
        move(conn, delivery_id, "cancelled", now=now, reason=why)


def acknowledge_console(conn: psycopg.Connection, warning_id: int, unit_id: str, *, by: str, now: datetime) -> int:
    rows = conn.execute(
        "SELECT id FROM warning_deliveries WHERE warning_id = %s AND channel = 'console' AND target = %s "
        "AND state = 'delivered'",
        (warning_id, unit_id),
    ).fetchall()
    for (delivery_id,) in rows:
        move(conn, delivery_id, "acknowledged", now=now, reason=f"by {by}")
    return len(rows)


def deliveries(conn: psycopg.Connection, warning_id: int) -> list[dict[str, Any]]:
    cur = conn.execute(
        "SELECT id, cap_message_id, msg_type, channel, target, state, attempts, reason, detail, created_at, "
        "updated_at FROM warning_deliveries WHERE warning_id = %s ORDER BY id",
        (warning_id,),
    )
    names = [d.name for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def entries(conn: psycopg.Connection, warning_id: int) -> list[dict[str, Any]]:
    rows = conn.execute(
        f"SELECT {', '.join(LEDGER_COLUMNS)} FROM warning_ledger WHERE warning_id = %s ORDER BY id", (warning_id,)
    ).fetchall()
    return [dict(zip(LEDGER_COLUMNS, r, strict=True)) for r in rows]


def to_csv(rows: list[dict[str, Any]], tz: Any) -> str:
    """The ledger as CSV (times in the district's zone), for the records."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(LEDGER_COLUMNS)
    for r in rows:
        writer.writerow([r["at"].astimezone(tz).isoformat(), *(r[c] if r[c] is not None else "" for c in
                                                               LEDGER_COLUMNS[1:])])  # fmt: skip
    return out.getvalue()


def retry_at(config: WarningsConfig, attempts: int, now: datetime) -> datetime | None:
    """When to try again after ``attempts`` failed attempts, or None when they are used up."""
    delays = config.retry_delays_s
    return now + timedelta(seconds=delays[attempts - 1]) if 0 < attempts <= len(delays) else None
