"""A dossier's current state, folded from its lifecycle events, whatever order they arrive in.

The one-stop system sends events over MQTT and they may arrive late or out of order (a
`resolved` before its `received`, a retry days later). The current state is therefore never
patched event by event: each time a dossier gets a new event, its row in ``dossiers`` is recomputed
from all of its events sorted by time. Folding a handful of events is cheap, and the result is the
same for any arrival order and any number of repeats.

Writing a ``dossiers`` row fires the statement triggers of migration 0012, which move the row's
contribution in the daily KPI rollup (``dossier_kpi_daily``, :mod:`ioc.kpi.rollups`) in the same
transaction.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from ioc.hub.events import LiveEvent, notify

FINAL = {"resolved", "refused", "withdrawn"}
# Same timestamp: apply in lifecycle order, so the fold does not depend on arrival order.
ORDER = {e: i for i, e in enumerate(("received", "supplement_requested", "supplemented", "refused", "withdrawn",
                                     "resolved", "result_returned", "paid_online", "digitised", "rated"))}  # fmt: skip
# Serialises the rollup writes of concurrent refreshes (ingest workers, imports): an upsert into
# `dossiers` fires an INSERT and an UPDATE statement trigger, each locking rollup rows in key order,
# and two such pairs interleaved could otherwise deadlock. Dossier events are few; waiting is cheap.
_ROLLUP_LOCK = 0x10C_D055
# The columns of a `dossiers` row that the fold decides.
_STATE_COLUMNS = ("unit_id", "procedure_code", "channel", "received_at", "due_at", "status", "resolved_at",
                  "finished_at", "paid_online", "digitised", "rated_at", "satisfied", "awaiting_since",
                  "date_assumed")  # fmt: skip


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
    paid_online: bool | None = False  # None: the source does not say (a sheet without the column)
    digitised: bool | None = False
    rated_at: datetime | None = None
    satisfied: bool | None = None
    awaiting_since: datetime | None = None  # when the current wait for a citizen's supplement began
    date_assumed: bool = False  # a final date the source did not give was assumed (docs/kpi.md)


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
            for flag in payload.get("unknown") or ():  # columns the sheet lacks: no data, not "no"
                if flag in ("paid_online", "digitised") and getattr(state, flag) is False:
                    setattr(state, flag, None)
            if state.status not in FINAL:
                state.status = "received"
        elif event == "supplement_requested" and state.status not in FINAL:
            state.status = "awaiting_supplement"
            state.awaiting_since = at
        elif event == "supplemented" and state.status not in FINAL:
            state.status = "in_progress"
            state.awaiting_since = None
        elif event in ("refused", "withdrawn"):
            state.status = event
            state.finished_at = at
            state.resolved_at = None
            state.awaiting_since = None
            state.date_assumed = bool(payload.get("date_assumed"))
        elif event == "resolved":
            state.status = "resolved"
            state.resolved_at = state.finished_at = at
            state.awaiting_since = None
            state.date_assumed = bool(payload.get("date_assumed"))
        elif event == "paid_online":
            state.paid_online = True
        elif event == "digitised":
            state.digitised = True
        elif event == "rated" and payload.get("satisfied") is not None:
            state.rated_at = at  # the latest verdict counts: a citizen may change their mind
            state.satisfied = bool(payload["satisfied"])
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
    states = [s for s in (fold(dossier_id, events) for dossier_id, events in sorted(by_id.items())) if s.unit_id]
    if not states:
        return 0
    columns = ("id", *_STATE_COLUMNS)
    types = ("text", "text", "text", "text", "timestamptz", "timestamptz", "text", "timestamptz", "timestamptz",
             "boolean", "boolean", "timestamptz", "boolean", "timestamptz", "boolean")  # fmt: skip
    arrays = [[getattr(s, c) for s in states] for c in columns]
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (_ROLLUP_LOCK,))
    before = dict(conn.execute("SELECT id, unit_id FROM dossiers WHERE id = ANY(%s)", ([s.id for s in states],)))
    # One statement for the whole batch, so the rollup triggers run once with every changed row.
    changed = conn.execute(
        f"""INSERT INTO dossiers ({", ".join(columns)}, updated_at)
            SELECT *, now() FROM unnest({", ".join(f"%s::{t}[]" for t in types)})
            ON CONFLICT (id) DO UPDATE SET {", ".join(f"{c} = EXCLUDED.{c}" for c in columns[1:])}, updated_at = now()
            WHERE ({", ".join(f"dossiers.{c}" for c in columns[1:])})
                  IS DISTINCT FROM ({", ".join(f"EXCLUDED.{c}" for c in columns[1:])})
            RETURNING id, unit_id""",
        arrays,
    ).fetchall()
    # The wall reloads the tiles of the units whose figures moved (on commit, like every live event).
    units = {unit for _, unit in changed} | {before[i] for i, _ in changed if i in before}
    for unit in sorted(units):
        notify(conn, LiveEvent(topic="kpi", type="dossier.figures", unit_id=unit))
    return len(states)


def stale_dossiers(conn: psycopg.Connection, kept_since: datetime | None, chunk: int = 5000) -> list[str]:
    """Dossiers whose ``dossiers`` row is not the fold of their stored events (or is missing): what
    ``ioc kpi check --refold`` reports. Reads the events in chunks of dossiers, in id order.

    Only dossiers whose events all lie after ``kept_since`` (now minus the events' retention) are
    checked: older events may have been dropped with their partition while the dossier row keeps
    what they said, and re-folding what is left would be wrong, not a repair. ``kept_since`` None: the
    dossier events are kept for ever (the default, ``IOC_DOSSIER_RETENTION_DAYS`` unset), all are checked."""
    return stale_and_checked(conn, kept_since, chunk)[0]


def stale_and_checked(
    conn: psycopg.Connection, kept_since: datetime | None, chunk: int = 5000
) -> tuple[list[str], int]:
    """:func:`stale_dossiers` and how many dossiers were checked (a check of nothing must say so)."""
    ids = [
        r[0]
        for r in conn.execute(
            "SELECT dossier_id FROM dossier_events GROUP BY 1 HAVING %(since)s::timestamptz IS NULL"
            " OR min(time) >= %(since)s ORDER BY 1",
            {"since": kept_since},
        ).fetchall()
    ]
    stale = [stale for i in range(0, len(ids), chunk) for stale in stale_among(conn, ids[i : i + chunk])]
    return stale, len(ids)


def stale_among(conn: psycopg.Connection, ids: list[str]) -> list[str]:
    """Those of ``ids`` whose ``dossiers`` row differs from the fold of their events."""
    by_id: dict[str, list[tuple]] = {}
    for dossier_id, at, event, unit_id, payload in conn.execute(
        "SELECT dossier_id, time, event, unit_id, payload FROM dossier_events WHERE dossier_id = ANY(%s)", (ids,)
    ):
        by_id.setdefault(dossier_id, []).append((at, event, unit_id, payload or {}))
    rows = {
        r[0]: r[1:]
        for r in conn.execute(f"SELECT id, {', '.join(_STATE_COLUMNS)} FROM dossiers WHERE id = ANY(%s)", (ids,))
    }
    stale: list[str] = []
    for dossier_id in ids:
        state = fold(dossier_id, by_id.get(dossier_id, []))
        if rows.get(dossier_id) != tuple(getattr(state, c) for c in _STATE_COLUMNS):
            stale.append(dossier_id)
    return stale
