"""A dossier's current state, folded from its lifecycle events, whatever order they arrive in.

The one-stop system sends events over MQTT and they may arrive late or out of order (a
`resolved` before its `received`, a retry days later). The current state is therefore never
patched event by event: each time a dossier gets a new event, its row in ``dossiers`` is recomputed
from all of its events sorted by time. Folding a handful of events is cheap, and the result is the
same for any arrival order and any number of repeats.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

FINAL = {"resolved", "refused", "withdrawn"}
# Same timestamp: apply in lifecycle order, so the fold does not depend on arrival order.
ORDER = {e: i for i, e in enumerate(("received", "supplement_requested", "supplemented", "refused", "withdrawn",
                                     "resolved", "result_returned", "paid_online", "digitised"))}  # fmt: skip


@dataclass
class DossierState:
    id: str
    unit_id: str | None = None
    procedure_code: str | None = None
    channel: str | None = None
    received_at: datetime | None = None
    due_at: datetime | None = None
    status: str = "received"
    resolved_at: datetime | None = None
    finished_at: datetime | None = None
    paid_online: bool = False
    digitised: bool = False


def fold(dossier_id: str, events: Iterable[tuple[datetime, str, str, dict[str, Any]]]) -> DossierState:
    """``events``: (time, event, unit_id, payload). Order of the input does not matter."""
    state = DossierState(dossier_id)
    for at, event, unit_id, payload in sorted(events, key=lambda e: (e[0], ORDER.get(e[1], 99))):
        state.unit_id = state.unit_id or unit_id
        if event == "received":
            state.unit_id = unit_id
            state.received_at = at
            state.channel = payload.get("channel") or state.channel
            state.procedure_code = payload.get("procedure_code") or state.procedure_code
            if payload.get("due_at"):
                state.due_at = datetime.fromisoformat(payload["due_at"])
            if state.status not in FINAL:
                state.status = "received"
        elif event == "supplement_requested" and state.status not in FINAL:
            state.status = "awaiting_supplement"
        elif event == "supplemented" and state.status not in FINAL:
            state.status = "in_progress"
        elif event in ("refused", "withdrawn"):
            state.status = event
            state.finished_at = at
            state.resolved_at = None
        elif event == "resolved":
            state.status = "resolved"
            state.resolved_at = state.finished_at = at
        elif event == "paid_online":
            state.paid_online = True
        elif event == "digitised":
            state.digitised = True
    return state


def refresh(conn: psycopg.Connection, dossier_ids: Iterable[str]) -> int:
    """Recompute the ``dossiers`` rows of ``dossier_ids`` from their events (in the caller's transaction)."""
    ids = sorted(set(dossier_ids))
    if not ids:
        return 0
    rows = conn.execute(
        "SELECT dossier_id, time, event, unit_id, payload FROM dossier_events WHERE dossier_id = ANY(%s)", (ids,)
    ).fetchall()
    by_id: dict[str, list[tuple]] = {}
    for dossier_id, at, event, unit_id, payload in rows:
        by_id.setdefault(dossier_id, []).append((at, event, unit_id, payload or {}))
    states = [fold(dossier_id, events) for dossier_id, events in by_id.items()]
    with conn.cursor() as cur:
        cur.executemany(
            """INSERT INTO dossiers (id, unit_id, procedure_code, channel, received_at, due_at, status, resolved_at,
                                     finished_at, paid_online, digitised, updated_at)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, now())
               ON CONFLICT (id) DO UPDATE SET unit_id = EXCLUDED.unit_id, procedure_code = EXCLUDED.procedure_code,
                   channel = EXCLUDED.channel, received_at = EXCLUDED.received_at, due_at = EXCLUDED.due_at,
                   status = EXCLUDED.status, resolved_at = EXCLUDED.resolved_at, finished_at = EXCLUDED.finished_at,
                   paid_online = EXCLUDED.paid_online,
                   digitised = EXCLUDED.digitised, updated_at = now()""",
            [(s.id, s.unit_id, s.procedure_code, s.channel, s.received_at, s.due_at, s.status, s.resolved_at,
              s.finished_at, s.paid_online, s.digitised) for s in states if s.unit_id],
        )  # fmt: skip
    return len(states)
