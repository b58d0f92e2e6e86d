"""Device presence: online/offline per device, from what the devices send and what they do not.

* A device is **online** when anything valid arrives from it (its retained ``status`` with
  ``state: "online"``, telemetry, events...).
* It is **offline** when its Last Will (``status`` with ``state: "offline"``) arrives, or when it
  has been silent longer than its ``devices.expected_interval_s`` (checked with an injected
  :class:`ioc.clock.Clock`, so tests move time instead of sleeping).

``device_presence`` holds the state and last-seen time; every change is also a ``device_events``
row (``presence.online`` / ``presence.offline``) written in the transaction that decides it, and is
published after the commit on ``<root>/<unit>/<kind>/<device_id>/presence`` (retained, QoS 1) for
the alert engine and the wall.

Several workers share the load, so any of them may see a device's messages. Changes are decided
under a row lock (``SELECT ... FOR UPDATE`` in device-id order, so workers never deadlock), and a
signal older than the last change is ignored (a Last Will received before a reconnect but
committed after it does not win). Plain signs of life for a device already known to be online
only move ``last_seen``, which each worker writes at most every ``flush_s`` seconds: hot devices
do not serialise the workers on their presence rows.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from ioc.contract.topics import Channel, build_topic


@dataclass(slots=True)
class Signal:
    """What one batch says about one device (the last thing it says wins)."""

    device_id: str
    seen_at: datetime
    state: str  # "online" | "offline"
    reason: str
    info: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Change:
    device_id: str
    unit_id: str
    kind: str
    state: str
    previous: str
    at: datetime
    reason: str
    last_seen: datetime | None

    @property
    def event_type(self) -> str:
        return f"presence.{self.state}"

    @property
    def message_id(self) -> str:
        return f"{self.event_type}-{int(self.at.timestamp() * 1000)}"

    def payload(self) -> dict[str, Any]:
        return {
            "v": 1,
            "id": self.message_id,
            "ts": self.at.isoformat(),
            "device_id": self.device_id,
            "unit_id": self.unit_id,
            "kind": self.kind,
            "state": self.state,
            "previous": self.previous,
            "reason": self.reason,
            "last_seen": self.last_seen.isoformat() if self.last_seen else None,
        }

    def topic(self, root: str) -> str:
        return build_topic(self.unit_id, self.kind, self.device_id, Channel.PRESENCE, root)

    def message(self, root: str) -> tuple[str, bytes]:
        return self.topic(root), json.dumps(self.payload(), ensure_ascii=False).encode()


def _record(conn: psycopg.Connection, changes: list[Change]) -> None:
    if not changes:
        return
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO device_events (time, device_id, unit_id, kind, event_type, message_id, payload) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            [(c.at, c.device_id, c.unit_id, c.kind, c.event_type, c.message_id, Jsonb(c.payload())) for c in changes],
        )


def apply_signals(conn: psycopg.Connection, signals: Iterable[Signal]) -> list[Change]:
    """Decide state changes for ``signals`` inside the caller's transaction; record them."""
    by_device: dict[str, Signal] = {}
    for signal in signals:
        by_device[signal.device_id] = signal
    if not by_device:
        return []
    ids = sorted(by_device)
    conn.execute(
        "INSERT INTO device_presence (device_id) SELECT id FROM unnest(%s::text[]) AS t(id) "
        "WHERE EXISTS (SELECT 1 FROM devices d WHERE d.id = t.id) ORDER BY id ON CONFLICT DO NOTHING",
        (ids,),
    )
    current = conn.execute(
        "SELECT p.device_id, p.state, p.changed_at, p.last_seen, d.unit_id, d.kind "
        "FROM device_presence p JOIN devices d ON d.id = p.device_id "
        "WHERE p.device_id = ANY(%s) ORDER BY p.device_id FOR UPDATE OF p",
        (ids,),
    ).fetchall()
    changes: list[Change] = []
    updates = []
    for device_id, state, changed_at, last_seen, unit_id, kind in current:
        signal = by_device[device_id]
        new_last_seen = max(filter(None, (last_seen, signal.seen_at)))
        stale = changed_at is not None and signal.seen_at < changed_at
        if signal.state != state and not stale:
            changes.append(
                Change(device_id, unit_id, kind, signal.state, state, signal.seen_at, signal.reason, new_last_seen)
            )
            updates.append((device_id, new_last_seen, signal.state, signal.seen_at, signal.reason, signal.info))
        else:
            updates.append((device_id, new_last_seen, state, changed_at, None, signal.info))
    with conn.cursor() as cur:
        cur.executemany(
            "UPDATE device_presence SET last_seen = %s, state = %s, changed_at = %s, "
            "reason = COALESCE(%s, reason), status = COALESCE(%s, status) WHERE device_id = %s",
            [
                (last, state, at, reason, Jsonb(info) if info is not None else None, device_id)
                for device_id, last, state, at, reason, info in updates
            ],
        )
    _record(conn, changes)
    return changes


def touch(conn: psycopg.Connection, last_seen: dict[str, datetime]) -> list[str]:
    """Move ``last_seen`` forward for devices believed online; return those that are not online in
    the database (an expiry or another worker changed them): the caller signals them again."""
    if not last_seen:
        return []
    ids = sorted(last_seen)
    states = dict(
        conn.execute(
            "SELECT device_id, state FROM device_presence WHERE device_id = ANY(%s) ORDER BY device_id FOR UPDATE",
            (ids,),
        ).fetchall()
    )
    conn.execute(
        "UPDATE device_presence p SET last_seen = GREATEST(p.last_seen, v.seen) "
        "FROM unnest(%s::text[], %s::timestamptz[]) AS v(id, seen) WHERE p.device_id = v.id",
        (ids, [last_seen[i] for i in ids]),
    )
    return [i for i in ids if states.get(i) != "online"]


def expire_silent(conn: psycopg.Connection, now: datetime) -> list[Change]:
    """Mark offline every online device silent for longer than its expected interval; record it.

    Rows another worker holds locked are skipped (that worker is busy with the device's messages,
    so it is not silent); the next check looks again."""
    rows = conn.execute(
        "WITH due AS ("
        "  SELECT p.device_id FROM device_presence p JOIN devices d ON d.id = p.device_id"
        "  WHERE p.state = 'online' AND p.last_seen < %(now)s - make_interval(secs => d.expected_interval_s)"
        "  ORDER BY p.device_id FOR UPDATE OF p SKIP LOCKED"
        ") "
        "UPDATE device_presence p SET state = 'offline', changed_at = %(now)s, reason = 'silent' "
        "FROM due, devices d WHERE p.device_id = due.device_id AND d.id = p.device_id "
        "RETURNING p.device_id, d.unit_id, d.kind, p.last_seen",
        {"now": now},
    ).fetchall()
    changes = [
        Change(device_id, unit_id, kind, "offline", "online", now, "silent", last_seen)
        for device_id, unit_id, kind, last_seen in rows
    ]
    _record(conn, changes)
    return changes
