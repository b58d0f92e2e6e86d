"""Escalation: an alert nobody acknowledges climbs the ladder (commune -> district -> leader).

A policy is a list of steps, each "after this long unacknowledged, notify this level". The next
deadline is stored on the alert (``escalate_at``) so the periodic job reads only the due alerts
through a partial index, and several job runners can share the work (``SKIP LOCKED``).
Acknowledging (or any later status) stops the climb.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

import psycopg
from psycopg.types.json import Jsonb

from ioc.alerts.announce import announce
from ioc.alerts.model import AlertChange, Status
from ioc.alerts.ordering import lock_alert_order


@dataclass(frozen=True)
class EscalationStep:
    after: timedelta  # since the alert was first seen
    target: str  # who is told: a role (commune_officer, operator, leader)


@dataclass(frozen=True)
class EscalationPolicy:
    name: str
    steps: tuple[EscalationStep, ...]

    def __post_init__(self) -> None:
        afters = [s.after for s in self.steps]
        if afters != sorted(afters) or len(set(afters)) != len(afters):
            raise ValueError(f"escalation policy {self.name!r}: steps must have strictly increasing 'after'")

    def deadline(self, level: int, first_seen: datetime) -> datetime | None:
        """When the alert at ``level`` (0 = not escalated yet) escalates next, or None at the top."""
        if level >= len(self.steps):
            return None
        return first_seen + self.steps[level].after


def first_deadline(policy: EscalationPolicy, first_seen: datetime) -> datetime | None:
    return policy.deadline(0, first_seen)


def escalate_due(
    conn: psycopg.Connection,
    now: datetime,
    policies: Mapping[str, EscalationPolicy],
    *,
    limit: int = 500,
) -> list[AlertChange]:
    """Escalate every unacknowledged alert whose deadline has passed; one level per due step.

    Runs in the caller's transaction. An alert whose policy is no longer configured stops
    escalating (its deadline is cleared) rather than failing the job.
    """
    lock_alert_order(conn)
    due = conn.execute(
        """SELECT id, policy, escalation_level, first_seen, unit_id FROM alerts
           WHERE status = 'new' AND escalate_at IS NOT NULL AND escalate_at <= %s
           ORDER BY escalate_at, id LIMIT %s FOR UPDATE SKIP LOCKED""",
        (now, limit),
    ).fetchall()
    changes: list[AlertChange] = []
    for alert_id, policy_name, level, first_seen, unit_id in due:
        policy = policies.get(policy_name or "")
        if policy is None or level >= len(policy.steps):
            conn.execute("UPDATE alerts SET escalate_at = NULL WHERE id = %s", (alert_id,))
            continue
        # Catch up on every step already due (the job may have been down), in one change.
        new_level = level
        while new_level < len(policy.steps) and policy.steps[new_level].after + first_seen <= now:
            new_level += 1
        target = policy.steps[new_level - 1].target
        seq = conn.execute(
            """UPDATE alerts SET escalation_level = %s, escalate_at = %s, seq = nextval('alert_seq'),
                      updated_at = %s
               WHERE id = %s RETURNING seq, count""",
            (new_level, policy.deadline(new_level, first_seen), now, alert_id),
        ).fetchone()
        assert seq is not None
        conn.execute(
            """INSERT INTO alert_audit (alert_id, at, actor, action, from_status, to_status, note, data)
               VALUES (%s, %s, 'system', 'escalate', 'new', 'new', %s, %s)""",
            (
                alert_id,
                now,
                f"chưa được tiếp nhận; chuyển lên cấp {new_level}: {target}",
                Jsonb({"level": new_level, "target": target, "policy": policy.name}),
            ),
        )
        from ioc.oncall.pages import page

        page(conn, alert_id, unit_id=unit_id, role=target, now=now, why=f"escalation {new_level}")  # the roster
        change = AlertChange(alert_id, seq[0], Status.NEW, unit_id, "escalated", seq[1], new_level)
        changes.append(change)
        announce(conn, "escalated", alert_id=alert_id, seq=change.seq, unit_id=unit_id, at=now,
                 level=new_level, target=target)  # fmt: skip
    return changes
