"""Storing sector figures: idempotent upserts of daily school and clinic reports, mentions once per URL.

A daily report is keyed by (source, local day): a later report for the same day (by ``ts``, then
message id, so the outcome does not depend on arrival order) replaces the earlier one, an older
one changes nothing. Each function says whether it changed a row, so that alerts are evaluated
only for figures that really changed. Callers own the transaction (the ingest batch's, or the HTTP
request's).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime

import psycopg

from ioc.sentiment import Verdict
from ioc.text import nfc

_ATTENDANCE = """
INSERT INTO school_attendance AS a (school_id, day, unit_id, pupils_enrolled, pupils_present, reported_at, message_id)
VALUES (%s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (school_id, day) DO UPDATE SET
    unit_id = EXCLUDED.unit_id, pupils_enrolled = EXCLUDED.pupils_enrolled,
    pupils_present = EXCLUDED.pupils_present, reported_at = EXCLUDED.reported_at, message_id = EXCLUDED.message_id
WHERE (a.reported_at, a.message_id) < (EXCLUDED.reported_at, EXCLUDED.message_id)
RETURNING 1
"""

_CLINIC = """
INSERT INTO clinic_daily AS c (clinic_id, day, unit_id, visits, vaccinations, reported_at, message_id)
VALUES (%s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (clinic_id, day) DO UPDATE SET
    unit_id = EXCLUDED.unit_id, visits = EXCLUDED.visits, vaccinations = EXCLUDED.vaccinations,
    reported_at = EXCLUDED.reported_at, message_id = EXCLUDED.message_id
WHERE (c.reported_at, c.message_id) < (EXCLUDED.reported_at, EXCLUDED.message_id)
RETURNING 1
"""


def upsert_attendance(
    conn: psycopg.Connection, *, school_id: str, unit_id: str, day: date, enrolled: int, present: int,
    reported_at: datetime, message_id: str,
) -> bool:  # fmt: skip
    """Store a school's register for ``day``; True when it is new or replaced an older one."""
    row = conn.execute(_ATTENDANCE, (school_id, day, unit_id, enrolled, present, reported_at, message_id)).fetchone()
    return row is not None


def upsert_clinic_day(
    conn: psycopg.Connection, *, clinic_id: str, unit_id: str, day: date, visits: int, vaccinations: int,
    cases: Mapping[str, int], reported_at: datetime, message_id: str,
) -> bool:  # fmt: skip
    """Store a clinic's figures and cases for ``day`` (the cases replace the day's earlier ones)."""
    row = conn.execute(_CLINIC, (clinic_id, day, unit_id, visits, vaccinations, reported_at, message_id)).fetchone()
    if row is None:
        return False
    conn.execute("DELETE FROM disease_cases WHERE clinic_id = %s AND day = %s", (clinic_id, day))
    rows = [(clinic_id, day, disease, unit_id, n) for disease, n in sorted(cases.items()) if n > 0]
    if rows:
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO disease_cases (clinic_id, day, disease, unit_id, cases) VALUES (%s, %s, %s, %s, %s)", rows
            )
    return True


@dataclass(frozen=True)
class NewMention:
    url: str
    source: str
    title: str
    text: str
    published_at: datetime
    unit_id: str
    scope_unit_id: str
    device_id: str | None = None
    message_id: str | None = None


def insert_mention(conn: psycopg.Connection, mention: NewMention, verdict: Verdict, tags: list[str]) -> int | None:
    """Store a mention once per URL; its id, or None when the URL is already stored."""
    row = conn.execute(
        "INSERT INTO mentions (url, source, device_id, scope_unit_id, unit_id, published_at, title, body,"
        " sentiment, score, tags, message_id) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (url) DO NOTHING RETURNING id",
        (
            mention.url, nfc(mention.source), mention.device_id, mention.scope_unit_id, mention.unit_id,
            mention.published_at, nfc(mention.title), nfc(mention.text), verdict.label, verdict.normalised,
            tags, mention.message_id,
        ),
    ).fetchone()  # fmt: skip
    return int(row[0]) if row else None
