"""Live events: what producers announce after a commit and what the wall receives.

Producers (ingest worker, alert engine, detectors, radio) call :func:`notify` inside the
transaction that stores the change; PostgreSQL delivers the notification only when that
transaction commits, so the wall never shows something the database does not have, and every API
replica listening on the channel receives it (the hub scales out with the API, no extra broker).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

#: PostgreSQL channel every replica LISTENs on.
CHANNEL = "ioc_events"
#: PostgreSQL refuses NOTIFY payloads of 8000 bytes or more; larger data is fetched over HTTP.
MAX_NOTIFY_BYTES = 7900

TOPICS = ("alert", "presence", "camera", "report", "radio", "kpi", "system", "incident", "warning")


class LiveEvent(BaseModel):
    """One event on the wall's live stream."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    topic: str = Field(description="alert, presence, camera, report, radio, kpi, system, incident or warning")
    type: str = Field(description="What happened, e.g. `alert.created`, `device.offline`")
    unit_id: str | None = Field(default=None, description="Unit concerned (commune staff see only theirs)")
    unit_ids: list[str] = Field(
        default_factory=list,
        description="Every unit the event concerns when it is more than one (an incident's lead and helping "
        "communes): commune staff of any of them see it; `unit_id` stays the first (the lead)",
    )
    at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    data: dict[str, Any] = Field(default_factory=dict)


@dataclass
class TooLarge(Exception):
    size: int
    limit: int = field(default=MAX_NOTIFY_BYTES)

    def __str__(self) -> str:
        return f"live event is {self.size} bytes, over the {self.limit}-byte NOTIFY limit: send an id, not the data"


def encode(event: LiveEvent) -> str:
    text = event.model_dump_json()
    size = len(text.encode())
    if size > MAX_NOTIFY_BYTES:
        raise TooLarge(size)
    return text


def decode(payload: str) -> LiveEvent:
    return LiveEvent.model_validate(json.loads(payload))


def notify(conn: Any, event: LiveEvent) -> None:
    """Queue ``event`` for delivery when ``conn``'s transaction commits (psycopg connection)."""
    conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, encode(event)))
