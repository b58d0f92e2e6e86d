"""Idempotency keys of citizen submissions: a form that timed out and retries with the same key
gets the first report's receipt instead of creating a second report.

The key is stored on the report in the same transaction (a unique index), so two retries racing
each other still make one report: the loser's transaction fails and it answers with the winner's.
"""

from __future__ import annotations

from typing import Any

import psycopg


def claim(conn: psycopg.Connection, report_id: int, key: str) -> None:
    """Attach ``key`` to the report (raises ``UniqueViolation`` when another report has it)."""
    conn.execute("UPDATE reports SET idempotency_key = %s WHERE id = %s", (key, report_id))


def find(conn: psycopg.Connection, key: str) -> dict[str, Any] | None:
    """The receipt fields of the report created with ``key``, or None."""
    row = conn.execute(
        "SELECT tracking_code, status, unit_id, due_at, lat IS NOT NULL FROM reports WHERE idempotency_key = %s",
        (key,),
    ).fetchone()
    if row is None:
        return None
    code, status, unit_id, due_at, located = row
    return {
        "tracking_code": code,
        "status": status,
        "unit_id": unit_id,
        "due_at": due_at,
        "location_from": "form" if located else "none",
    }
