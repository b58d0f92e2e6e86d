"""One path for every mention (MQTT from the monitoring system, or ``POST /api/sectors/mentions``):
sentiment and topic tags from the shipped lexicon, the unit it is about, stored once per URL, then
the spike rule for a negative one, all in the caller's transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import psycopg

from ioc.sectors.alerts import SectorAlerts
from ioc.sectors.places import UnitNames
from ioc.sectors.store import NewMention, insert_mention
from ioc.sentiment import Verdict, analyse, tag


@dataclass(frozen=True)
class Recorded:
    id: int | None  # None: the URL was already stored
    unit_id: str
    verdict: Verdict
    tags: list[str]
    alert_id: int | None = None


def record_mention(
    conn: psycopg.Connection, *, url: str, source: str, title: str, text: str, published_at: datetime,
    scope_unit_id: str, unit_id: str | None, device_id: str | None, message_id: str | None,
    names: UnitNames, alerts: SectorAlerts | None, now: datetime,
) -> Recorded:  # fmt: skip
    words = f"{title}. {text}"
    verdict = analyse(words)
    tags = tag(words)
    about = unit_id or names.unit_of(conn, words) or scope_unit_id
    mention = NewMention(url=url, source=source, title=title, text=text, published_at=published_at, unit_id=about,
                         scope_unit_id=scope_unit_id, device_id=device_id, message_id=message_id)  # fmt: skip
    mention_id = insert_mention(conn, mention, verdict, tags)
    alert_id = None
    if mention_id is not None and verdict.label == "negative" and alerts is not None:
        alert_id = alerts.negative_mention(conn, scope_unit_id=scope_unit_id, published_at=published_at, now=now)
    return Recorded(mention_id, about, verdict, tags, alert_id)
