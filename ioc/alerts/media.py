"""Which media an alert may cite or show: the references a caller gives must belong to the alert.

* An action's ``photo_ref`` must be a photo uploaded for that same alert (``alert_photos``): media
  are stored by content hash, so without this an officer could cite another commune's photo by its
  hash and then read it through their own alert.
* A camera's evidence image (and its clip) may be seen by staff of the camera's unit, and by whoever sees an alert
  whose evidence is that image (the unit an alert is assigned to needs to see why).
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

import psycopg


def record_upload(conn: psycopg.Connection, alert_id: int, photo_ref: str, *, by: str, now: datetime) -> None:
    conn.execute(
        "INSERT INTO alert_photos (alert_id, photo_ref, uploaded_by, uploaded_at) VALUES (%s, %s, %s, %s)"
        " ON CONFLICT DO NOTHING",
        (alert_id, photo_ref, by, now),
    )


def uploaded_for(conn: psycopg.Connection, alert_id: int, photo_ref: str) -> bool:
    row = conn.execute(
        "SELECT 1 FROM alert_photos WHERE alert_id = %s AND photo_ref = %s", (alert_id, photo_ref)
    ).fetchone()
    return row is not None


def evidence_seen_through_alert(conn: psycopg.Connection, ref: str, units: Collection[str] | None) -> bool:
    """Whether an alert of ``units`` (its unit or the unit it is assigned to) cites evidence ``ref``
    (or the snapshot whose crop or clip ``ref`` is)."""
    if units is None:
        return True
    snapshot = ref
    for suffix in ("-crop.jpg", "-clip.webm"):
        if ref.endswith(suffix):
            snapshot = ref.removesuffix(suffix) + ".jpg"
    row = conn.execute(
        """SELECT 1 FROM alerts WHERE evidence ->> 'snapshot_ref' = %s
               AND (unit_id = ANY(%s) OR assigned_unit_id = ANY(%s)) LIMIT 1""",
        (snapshot, list(units), list(units)),
    ).fetchone()
    return row is not None
