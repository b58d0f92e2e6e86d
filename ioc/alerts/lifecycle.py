"""What people do with an alert, and the audit record of every change.

``new -> acknowledged -> in_progress -> resolved -> closed``, ``dismissed`` (false alarm, reason
required) from any open status, ``reopen`` of a resolved alert, and ``comment`` / ``assign``
without a status change. Every action appends to ``alert_audit`` (append-only by trigger) and
announces the change on the live stream, in the caller's transaction. Who may do what is decided by
the HTTP layer (roles and units); this module only knows what is a valid move.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg.types.json import Jsonb

from ioc.alerts.announce import announce
from ioc.alerts.model import AlertChange, Status
from ioc.alerts.ordering import lock_alert_order
from ioc.text import nfc

OPEN = frozenset({Status.NEW, Status.ACKNOWLEDGED, Status.IN_PROGRESS})


@dataclass(frozen=True)
class Move:
    allowed_from: frozenset[Status]
    to: Status | None  # None: no status change
    needs_note: bool = False
    stamp: str | None = None  # column set to the action's time


MOVES: dict[str, Move] = {
    "acknowledge": Move(frozenset({Status.NEW}), Status.ACKNOWLEDGED, stamp="acknowledged_at"),
    "start": Move(frozenset({Status.NEW, Status.ACKNOWLEDGED}), Status.IN_PROGRESS, stamp="acknowledged_at"),
    "resolve": Move(OPEN, Status.RESOLVED, stamp="resolved_at"),
    "close": Move(frozenset({Status.RESOLVED}), Status.CLOSED, stamp="closed_at"),
    "dismiss": Move(OPEN, Status.DISMISSED, needs_note=True, stamp="closed_at"),
    "reopen": Move(frozenset({Status.RESOLVED}), Status.IN_PROGRESS, needs_note=True),
    "comment": Move(OPEN | {Status.RESOLVED}, None, needs_note=True),
    "assign": Move(OPEN, None),
}


class AlertNotFound(LookupError):
    pass


class InvalidAction(ValueError):
    """The action does not apply to the alert as it is now; ``str()`` says why."""


def act(
    conn: psycopg.Connection,
    alert_id: int,
    action: str,
    *,
    actor: str,
    now: datetime,
    note: str | None = None,
    photo_ref: str | None = None,
    assign_to_unit: str | None = None,
) -> AlertChange:
    """Apply ``action`` to the alert in ``conn``'s transaction and record it."""
    move = MOVES.get(action)
    if move is None:
        raise InvalidAction(f"unknown action {action!r}; one of: {', '.join(MOVES)}")
    note = nfc(note.strip()) if note and note.strip() else None
    if move.needs_note and not note:
        raise InvalidAction(f"'{action}' needs a note (why)")
    if action == "assign" and not assign_to_unit:
        raise InvalidAction("'assign' needs the unit to assign to")
    lock_alert_order(conn)
    row = conn.execute(
        "SELECT status, unit_id, dedup_key, count, escalation_level FROM alerts WHERE id = %s FOR UPDATE",
        (alert_id,),
    ).fetchone()
    if row is None:
        raise AlertNotFound(f"alert {alert_id} does not exist")
    status, unit_id, dedup_key, count, level = Status(row[0]), row[1], row[2], row[3], row[4]
    if status not in move.allowed_from:
        allowed = ", ".join(sorted(s.value for s in move.allowed_from))
        raise InvalidAction(f"cannot {action} an alert that is {status.value} (allowed from: {allowed})")
    if action == "reopen" and dedup_key:
        newer = conn.execute(
            "SELECT id FROM alerts WHERE dedup_key = %s AND id <> %s"
            " AND status IN ('new', 'acknowledged', 'in_progress')",
            (dedup_key, alert_id),
        ).fetchone()
        if newer:
            raise InvalidAction(f"a newer open alert #{newer[0]} exists for the same cause; work on that one")
    new_status = move.to or status
    sets = ["status = %(status)s", "seq = nextval('alert_seq')", "updated_at = %(now)s"]
    if move.stamp:
        sets.append(f"{move.stamp} = coalesce({move.stamp}, %(now)s)")
    if new_status is not Status.NEW:
        sets.append("escalate_at = NULL")
    if action == "reopen":
        sets.append("resolved_at = NULL")
    if assign_to_unit:
        sets.append("assigned_unit_id = %(unit)s")
    seq = conn.execute(
        f"UPDATE alerts SET {', '.join(sets)} WHERE id = %(id)s RETURNING seq",
        {"status": new_status.value, "now": now, "unit": assign_to_unit, "id": alert_id},
    ).fetchone()
    assert seq is not None
    conn.execute(
        """INSERT INTO alert_audit (alert_id, at, actor, action, from_status, to_status, note, photo_ref, data)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)""",
        (
            alert_id,
            now,
            actor,
            action,
            status.value,
            new_status.value,
            note,
            photo_ref,
            Jsonb({"assigned_unit_id": assign_to_unit} if assign_to_unit else {}),
        ),
    )
    if status is Status.NEW and new_status in (Status.ACKNOWLEDGED, Status.IN_PROGRESS):
        from ioc.oncall.pages import acknowledged

        acknowledged(conn, alert_id, by=actor, now=now)  # the person paged took it: pages closed, timeline
    if new_status is not status:
        from ioc.incidents.store import alert_changed

        alert_changed(conn, alert_id, now=now)
    change = AlertChange(alert_id, seq[0], new_status, unit_id, action, count, level)
    announce(conn, action, alert_id=alert_id, seq=change.seq, unit_id=unit_id, at=now,
             status=new_status.value, actor=actor)  # fmt: skip
    return change
