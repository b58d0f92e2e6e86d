"""Every alert change goes to the live stream the same way: ``alert.<action>`` with id and seq."""

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
