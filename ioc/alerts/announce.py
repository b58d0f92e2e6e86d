"""Every alert change goes to the live stream the same way: ``alert.<action>`` with id and seq.

An alert over several communes (``alert_units``, a warning over three communes) is announced once
more for each of them, so each commune's console sees it live; clients drop the copies they already
have by id and seq."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ioc.hub.events import LiveEvent, notify


def announce(
    conn: Any, action: str, *, alert_id: int, seq: int, unit_id: str | None, at: datetime, **data: Any
) -> None:
    """Queue the change for the hub; delivered when ``conn``'s transaction commits."""
    event = LiveEvent(topic="alert", type=f"alert.{action}", unit_id=unit_id, at=at,
                      data={"id": alert_id, "seq": seq, **data})  # fmt: skip
    notify(conn, event)
    for (unit,) in conn.execute("SELECT unit_id FROM alert_units WHERE alert_id = %s", (alert_id,)).fetchall():
        if unit != unit_id:
            notify(conn, event.model_copy(update={"unit_id": unit}))


def announce_current(conn: Any, alert_id: int, at: datetime) -> None:
    """Announce the alert as it is now (after its units changed)."""
    row = conn.execute("SELECT seq, unit_id, title, severity, status FROM alerts WHERE id = %s", (alert_id,)).fetchone()
    if row is not None:
        announce(conn, "updated", alert_id=alert_id, seq=row[0], unit_id=row[1], at=at, title=row[2],
                 severity=row[3], status=row[4])  # fmt: skip
