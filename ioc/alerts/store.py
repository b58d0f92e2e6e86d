"""Raise alerts from drafts: one open alert per cause, counted and kept up to date.

Drafts sharing a ``dedup_key`` are folded first (500 hits of one camera rule in a batch become one
upsert with count 500: PostgreSQL refuses to update one row twice in a statement), then upserted
against the partial unique index of *open* alerts. A cause dismissed as a false alarm stays quiet
for ``suppress_after_dismiss``: its hits are counted on the dismissed alert instead of opening a
new one. Call inside the transaction that stores the events, so an alert exists exactly when its
evidence does.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import psycopg
from psycopg.types.json import Jsonb

from ioc.alerts.announce import announce
from ioc.alerts.escalation import EscalationPolicy, first_deadline
from ioc.alerts.model import AlertChange, AlertDraft, Severity, Status
from ioc.alerts.ordering import lock_alert_order
from ioc.text import fold, nfc

SEVERITY_ORDER = [s.value for s in Severity]
MAX_SOURCE_REFS = 20
DEFAULT_SUPPRESS_AFTER_DISMISS = timedelta(minutes=30)


@dataclass(frozen=True)
class _Folded:
    draft: AlertDraft  # the latest occurrence: its evidence and title win
    first: datetime
    count: int
    severity: Severity
    source_refs: list[dict]


def fold_drafts(drafts: Iterable[AlertDraft]) -> list[_Folded]:
    """Group drafts by dedup key (drafts without one stay separate), keeping their order of appearance."""
    groups: dict[object, list[AlertDraft]] = {}
    for index, draft in enumerate(drafts):
        groups.setdefault(draft.dedup_key or ("nokey", index), []).append(draft)
    folded = []
    for items in groups.values():
        latest = max(items, key=lambda d: d.at)
        refs = [d.source_ref for d in items if d.source_ref][-MAX_SOURCE_REFS:]
        folded.append(
            _Folded(
                draft=latest,
                first=min(d.at for d in items),
                count=len(items),
                severity=max((d.severity for d in items), key=lambda s: s.rank),
                source_refs=refs,
            )
        )
    return folded


_UPSERT = """
INSERT INTO alerts AS a (kind, severity, title, title_search, description, unit_id, assigned_unit_id,
                         lat, lon, area, evidence, source_refs, dedup_key, count, first_seen, last_seen,
                         status, seq, policy, escalate_at, updated_at)
VALUES (%(kind)s, %(severity)s, %(title)s, %(title_search)s, %(description)s, %(unit_id)s, %(unit_id)s,
        %(lat)s, %(lon)s, %(area)s, %(evidence)s, %(source_refs)s, %(dedup_key)s, %(count)s, %(first)s, %(last)s,
        'new', nextval('alert_seq'), %(policy)s, %(escalate_at)s, %(now)s)
ON CONFLICT (dedup_key) WHERE dedup_key IS NOT NULL AND status NOT IN ('closed', 'dismissed', 'resolved')
DO UPDATE SET
    count = a.count + EXCLUDED.count,
    first_seen = least(a.first_seen, EXCLUDED.first_seen),
    last_seen = greatest(a.last_seen, EXCLUDED.last_seen),
    evidence = CASE WHEN EXCLUDED.last_seen >= a.last_seen THEN EXCLUDED.evidence ELSE a.evidence END,
    -- The title carries the latest occurrence's reading ("... (312 cm)"), not the first one's.
    title = CASE WHEN EXCLUDED.last_seen >= a.last_seen THEN EXCLUDED.title ELSE a.title END,
    title_search = CASE WHEN EXCLUDED.last_seen >= a.last_seen THEN EXCLUDED.title_search ELSE a.title_search END,
    severity = CASE WHEN array_position(%(order)s::text[], EXCLUDED.severity)
                         > array_position(%(order)s::text[], a.severity)
                    THEN EXCLUDED.severity ELSE a.severity END,
    source_refs = (SELECT coalesce(jsonb_agg(r ORDER BY i), '[]'::jsonb) FROM (
                      SELECT r, i FROM jsonb_array_elements(a.source_refs || EXCLUDED.source_refs)
                             WITH ORDINALITY AS t(r, i)
                      ORDER BY i DESC LIMIT %(max_refs)s) recent),
    seq = nextval('alert_seq'),
    updated_at = EXCLUDED.updated_at
RETURNING id, seq, status, unit_id, count, escalation_level, (xmax = 0) AS created, severity, title
"""


def _suppressed(conn: psycopg.Connection, folded: Sequence[_Folded], now: datetime, window: timedelta) -> set[str]:
    """Dedup keys dismissed as false alarms within ``window``: count their hits, open nothing."""
    keys = [f.draft.dedup_key for f in folded if f.draft.dedup_key]
    if not keys or window <= timedelta(0):
        return set()
    rows = conn.execute(
        """SELECT DISTINCT ON (dedup_key) dedup_key, id FROM alerts
           WHERE dedup_key = ANY(%s) AND status = 'dismissed' AND updated_at > %s
             AND NOT EXISTS (SELECT 1 FROM alerts o WHERE o.dedup_key = alerts.dedup_key
                             AND o.status NOT IN ('closed', 'dismissed', 'resolved'))
           ORDER BY dedup_key, updated_at DESC""",
        (keys, now - window),
    ).fetchall()
    by_key = {f.draft.dedup_key: f for f in folded}
    for key, alert_id in rows:
        item = by_key[key]
        conn.execute(
            "UPDATE alerts SET count = count + %s, last_seen = greatest(last_seen, %s) WHERE id = %s",
            (item.count, item.draft.at, alert_id),
        )
    return {key for key, _ in rows}


def raise_alerts(
    conn: psycopg.Connection,
    drafts: Iterable[AlertDraft],
    *,
    now: datetime,
    policies: Mapping[str, EscalationPolicy] | None = None,
    suppress_after_dismiss: timedelta = DEFAULT_SUPPRESS_AFTER_DISMISS,
) -> list[AlertChange]:
    """Create or update the alerts for ``drafts`` in ``conn``'s transaction; announce each change."""
    folded = fold_drafts(drafts)
    if not folded:
        return []
    lock_alert_order(conn)
    quiet = _suppressed(conn, folded, now, suppress_after_dismiss)
    changes: list[AlertChange] = []
    for item in folded:
        draft = item.draft
        if draft.dedup_key in quiet:
            continue
        policy = (policies or {}).get(draft.policy or "")
        title = nfc(draft.title)
        row = conn.execute(
            _UPSERT,
            {
                "kind": draft.kind,
                "severity": item.severity.value,
                "title": title,
                "title_search": fold(title),
                "description": nfc(draft.description) if draft.description else None,
                "unit_id": draft.unit_id,
                "lat": draft.lat,
                "lon": draft.lon,
                "area": Jsonb(draft.area) if draft.area else None,
                "evidence": Jsonb(draft.evidence),
                "source_refs": Jsonb(item.source_refs),
                "dedup_key": draft.dedup_key,
                "count": item.count,
                "first": item.first,
                "last": draft.at,
                "policy": draft.policy,
                "escalate_at": first_deadline(policy, item.first) if policy else None,
                "order": SEVERITY_ORDER,
                "now": now,
                "max_refs": MAX_SOURCE_REFS,
            },
        ).fetchone()
        assert row is not None
        alert_id, seq, status, unit_id, count, level, created, severity, stored_title = row
        action = "created" if created else "updated"
        if created:
            conn.execute(
                "INSERT INTO alert_audit (alert_id, at, actor, action, to_status, data)"
                " VALUES (%s, %s, 'system', 'created', 'new', %s)",
                (alert_id, now, Jsonb({"count": item.count, "kind": draft.kind})),
            )
            from ioc.incidents.store import attach_alert

            attach_alert(conn, alert_id, title=stored_title, now=now)
            from ioc.oncall.pages import page_if_severe

            page_if_severe(conn, alert_id, unit_id=unit_id, severity=severity, now=now)
        change = AlertChange(alert_id, seq, Status(status), unit_id, action, count, level)
        changes.append(change)
        announce(conn, action, alert_id=alert_id, seq=seq, unit_id=unit_id, at=now, kind=draft.kind,
                 severity=severity, status=status, title=stored_title, count=count)  # fmt: skip
    return changes
