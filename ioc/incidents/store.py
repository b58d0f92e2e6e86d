"""Incidents in PostgreSQL: attach signals by the rules, and what operators do with incidents.

Attaching runs inside the transaction that raises the alert (or records the broadcast), under one
transaction-scoped advisory lock: two ingest workers raising alerts of one flood at the same moment
cannot open two incidents for it (the duplicate race ThingsBoard's one-alarm-per-originator model
is known for). Every change appends to ``incident_events`` (append-only by trigger) and is announced
on the live stream when the transaction commits.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from ioc.alerts.model import Severity
from ioc.hub.events import LiveEvent, notify
from ioc.incidents.correlate import Candidate, Signal, choose, max_window_min
from ioc.incidents.rules import FALLBACK_ID, Rule, RuleSet, configured

#: Serialises incident correlation (alerts already serialise on the alert-order lock; broadcasts
#: and operator actions do not).
INCIDENT_LOCK = 0x10C_1C1D
OPEN_ALERT = ("new", "acknowledged", "in_progress")
SEVERITY_ORDER = [s.value for s in Severity]
#: Points of an incident's signals the decision looks at (the newest ones).
MAX_POINTS = 50


class IncidentNotFound(LookupError):
    pass


class InvalidIncidentAction(ValueError):
    """The action does not apply to the incident as it is; ``str()`` says why."""


def lock(conn: psycopg.Connection) -> None:
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (INCIDENT_LOCK,))


def topic_of_alert(kind: str, evidence: dict[str, Any] | None) -> str:
    """A citizen's report is known by its category (``report.thien-tai``), every other alert by its kind."""
    if kind == "report.new" and evidence and evidence.get("category"):
        return f"report.{evidence['category']}"
    return kind


def signal_of_alert(conn: psycopg.Connection, alert_id: int) -> Signal:
    row = conn.execute(
        "SELECT kind, evidence, unit_id, lat, lon, first_seen, dedup_key, severity FROM alerts WHERE id = %s",
        (alert_id,),
    ).fetchone()
    if row is None:
        raise IncidentNotFound(f"alert {alert_id} does not exist")
    kind, evidence, unit_id, lat, lon, at, cause, severity = row
    return Signal("alert", alert_id, topic_of_alert(kind, evidence), at, (unit_id,) if unit_id else (),
                  lat, lon, cause, severity)  # fmt: skip


def _candidates(conn: psycopg.Connection, rules: RuleSet, signal: Signal) -> list[Candidate]:
    window = timedelta(minutes=max_window_min(rules))
    rule_ids = [r.id for r in rules.rules_accepting(signal.topic)]
    rows = conn.execute(
        """SELECT i.id, i.rule_id, i.first_signal_at, i.last_signal_at, i.lead_unit_id, i.helper_unit_ids,
                  (SELECT coalesce(array_agg(ARRAY[p.lat, p.lon]), '{}') FROM (
                       SELECT lat, lon FROM incident_signals s WHERE s.incident_id = i.id AND lat IS NOT NULL
                       ORDER BY at DESC LIMIT %(max_points)s) p),
                  (SELECT coalesce(array_agg(DISTINCT cause), '{}') FROM incident_signals s
                    WHERE s.incident_id = i.id AND cause IS NOT NULL)
           FROM incidents i
           WHERE i.status IN ('open', 'resolved')
             AND i.last_signal_at >= %(at)s - %(window)s AND i.first_signal_at <= %(at)s + %(window)s
             AND (i.rule_id = ANY(%(rules)s)
                  OR i.id IN (SELECT incident_id FROM incident_signals WHERE cause = %(cause)s))""",
        {"at": signal.at, "window": window, "rules": rule_ids, "cause": signal.cause, "max_points": MAX_POINTS},
    ).fetchall()
    out = []
    for id_, rule_id, first, last, lead, helpers, points, causes in rows:
        units = set(helpers or ()) | ({lead} if lead else set())
        out.append(Candidate(id_, rule_id, first, last, units, [(p[0], p[1]) for p in points or ()], set(causes)))
    return out


def attach(conn: psycopg.Connection, signal: Signal, *, title: str, now: datetime,
           rules: RuleSet | None = None) -> int | None:  # fmt: skip
    """Put ``signal`` into its incident (joining or opening one); return the incident id, or None
    when the signal only joins and nothing fits (a radio warning with no incident to warn of)."""
    rules = rules or configured()
    lock(conn)
    existing = conn.execute(
        "SELECT incident_id FROM incident_signals WHERE signal = %s AND ref = %s", (signal.kind, signal.ref)
    ).fetchone()
    if existing:
        return int(existing[0])
    decision = choose(rules, signal, _candidates(conn, rules, signal))
    if decision.join is not None:
        incident_id = decision.join
    elif decision.open_rule is not None:
        incident_id = _open(conn, decision.open_rule, signal, title=title, now=now)
    else:
        return None
    _add_signal(conn, incident_id, signal, title=title, by=f"rule:{decision.reason}", now=now)
    return incident_id


def attach_alert(conn: psycopg.Connection, alert_id: int, *, title: str, now: datetime) -> int | None:
    return attach(conn, signal_of_alert(conn, alert_id), title=title, now=now)


def attach_broadcast(conn: psycopg.Connection, broadcast_id: int, *, unit_ids: Iterable[str], title: str,
                     urgent: bool, now: datetime) -> int | None:  # fmt: skip
    """An urgent broadcast joins the incident it warns about (``radio.urgent``); routine ones do not."""
    if not urgent:
        return None
    signal = Signal("broadcast", broadcast_id, "radio.urgent", now, tuple(sorted(set(unit_ids))), severity="severe")
    return attach(conn, signal, title=title, now=now)


def _open(conn: psycopg.Connection, rule: Rule, signal: Signal, *, title: str, now: datetime) -> int:
    lead = signal.unit_ids[0] if signal.unit_ids else None
    if rule.id == FALLBACK_ID or rule.place == "cause":
        incident_title = title
    else:
        unit_name = conn.execute("SELECT name FROM units WHERE id = %s", (lead,)).fetchone() if lead else None
        incident_title = f"{rule.name} – {unit_name[0]}" if unit_name else rule.name
    row = conn.execute(
        """INSERT INTO incidents (rule_id, title, severity, lead_unit_id, lat, lon, first_signal_at, last_signal_at,
                                  created_at, updated_at)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id""",
        (rule.id, incident_title, signal.severity, lead, signal.lat, signal.lon, signal.at, signal.at, now, now),
    ).fetchone()
    assert row is not None
    incident_id = int(row[0])
    _event(conn, incident_id, now, "system", "opened", data={"rule": rule.id})
    _announce(conn, incident_id, "incident.created", now)
    return incident_id


def _add_signal(conn: psycopg.Connection, incident_id: int, signal: Signal, *, title: str, by: str,
                now: datetime) -> None:  # fmt: skip
    conn.execute(
        """INSERT INTO incident_signals (signal, ref, incident_id, topic, cause, severity, unit_ids, lat, lon, at,
                                         attached_by)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)""",
        (signal.kind, signal.ref, incident_id, signal.topic, signal.cause, signal.severity, list(signal.unit_ids),
         signal.lat, signal.lon, signal.at, by),
    )  # fmt: skip
    was = conn.execute("SELECT status FROM incidents WHERE id = %s", (incident_id,)).fetchone()
    refresh(conn, incident_id, now)
    if was and was[0] == "resolved":
        conn.execute("UPDATE incidents SET status = 'open' WHERE id = %s", (incident_id,))
        _event(conn, incident_id, now, "system", "reopened", note=title)
    _event(conn, incident_id, now, "system", "signal",
           data={"signal": signal.kind, "ref": signal.ref, "topic": signal.topic, "title": title,
                 "by": by})  # fmt: skip
    _announce(conn, incident_id, "incident.updated", now)


def refresh(conn: psycopg.Connection, incident_id: int, now: datetime) -> None:
    """Recompute what an incident shows from its signals (after attach, merge or split)."""
    conn.execute(
        """UPDATE incidents i SET
               signal_count = s.n,
               first_signal_at = coalesce(s.first_at, i.first_signal_at),
               last_signal_at = coalesce(s.last_at, i.last_signal_at),
               severity = coalesce(s.severity, i.severity),
               helper_unit_ids = coalesce(ARRAY(SELECT DISTINCT u FROM incident_signals x, unnest(x.unit_ids) u
                                                WHERE x.incident_id = i.id AND u IS DISTINCT FROM i.lead_unit_id
                                                ORDER BY u), '{}'),
               lat = coalesce(i.lat, s.lat), lon = coalesce(i.lon, s.lon),
               updated_at = %(now)s
           FROM (SELECT count(*) AS n, min(at) AS first_at, max(at) AS last_at,
                        (%(order)s::text[])[max(array_position(%(order)s::text[], severity))] AS severity,
                        (array_agg(lat ORDER BY at) FILTER (WHERE lat IS NOT NULL))[1] AS lat,
                        (array_agg(lon ORDER BY at) FILTER (WHERE lon IS NOT NULL))[1] AS lon
                 FROM incident_signals WHERE incident_id = %(id)s) s
           WHERE i.id = %(id)s""",
        {"id": incident_id, "now": now, "order": SEVERITY_ORDER},
    )


def alert_changed(conn: psycopg.Connection, alert_id: int, *, now: datetime) -> None:
    """After an alert's status changed: an incident whose alerts are all handled is resolved; one
    with an open alert again is open."""
    row = conn.execute(
        """SELECT i.id, i.status,
                  EXISTS (SELECT 1 FROM incident_signals s JOIN alerts a ON s.signal = 'alert' AND a.id = s.ref
                          WHERE s.incident_id = i.id AND a.status IN ('new', 'acknowledged', 'in_progress'))
           FROM incident_signals s JOIN incidents i ON i.id = s.incident_id
           WHERE s.signal = 'alert' AND s.ref = %s""",
        (alert_id,),
    ).fetchone()
    if row is None:
        return
    incident_id, status, any_open = row
    if status == "open" and not any_open:
        _set_status(conn, incident_id, "resolved", actor="system", now=now, note=None)
    elif status == "resolved" and any_open:
        _set_status(conn, incident_id, "open", actor="system", now=now, note=None)


def sync_alert_units(conn: psycopg.Connection, alert_id: int, *, now: datetime) -> None:
    """An alert that concerns several communes (``alert_units``, a warning over three communes):
    its signal names them all, so each commune helps with (and sees) the incident it is in."""
    row = conn.execute(
        """UPDATE incident_signals s
              SET unit_ids = ARRAY(SELECT DISTINCT u FROM unnest(s.unit_ids || ARRAY(
                                       SELECT unit_id FROM alert_units WHERE alert_id = %(id)s)) u ORDER BY u)
            WHERE signal = 'alert' AND ref = %(id)s RETURNING incident_id""",
        {"id": alert_id},
    ).fetchone()
    if row is not None:
        refresh(conn, row[0], now)
        _announce(conn, row[0], "incident.updated", now)


# -- what operators do ------------------------------------------------------------------------------

STATUS_ACTIONS = {"resolve": "resolved", "close": "closed", "reopen": "open"}


def _locked(conn: psycopg.Connection, incident_id: int) -> dict[str, Any]:
    cur = conn.execute(
        "SELECT id, rule_id, status, lead_unit_id, helper_unit_ids, merged_into FROM incidents"
        " WHERE id = %s FOR UPDATE",
        (incident_id,),
    )
    row = cur.fetchone()
    if row is None:
        raise IncidentNotFound(f"incident {incident_id} does not exist")
    return dict(zip([d.name for d in cur.description], row, strict=True))


def _set_status(conn: psycopg.Connection, incident_id: int, status: str, *, actor: str, now: datetime,
                note: str | None) -> None:  # fmt: skip
    old = conn.execute("SELECT status FROM incidents WHERE id = %s", (incident_id,)).fetchone()
    conn.execute(
        "UPDATE incidents SET status = %s, updated_at = %s,"
        " closed_at = CASE WHEN %s IN ('closed', 'merged') THEN %s ELSE NULL END WHERE id = %s",
        (status, now, status, now, incident_id),
    )
    _event(conn, incident_id, now, actor, f"status:{status}", note=note, data={"from": old[0] if old else None})
    _announce(conn, incident_id, "incident.updated", now)


def set_status(conn: psycopg.Connection, incident_id: int, action: str, *, actor: str, now: datetime,
               note: str | None = None) -> None:  # fmt: skip
    lock(conn)
    incident = _locked(conn, incident_id)
    target = STATUS_ACTIONS.get(action)
    if target is None:
        raise InvalidIncidentAction(f"unknown action {action!r}; one of: {', '.join(STATUS_ACTIONS)}")
    if incident["status"] == "merged":
        raise InvalidIncidentAction(f"incident {incident_id} was merged into {incident['merged_into']}")
    if incident["status"] == target:
        raise InvalidIncidentAction(f"incident {incident_id} is already {target}")
    if action == "reopen" and incident["status"] not in ("resolved", "closed"):
        raise InvalidIncidentAction("only a resolved or closed incident can be reopened")
    _set_status(conn, incident_id, target, actor=actor, now=now, note=note)


def merge(conn: psycopg.Connection, source_id: int, into_id: int, *, actor: str, now: datetime,
          note: str | None = None) -> None:  # fmt: skip
    """Fold ``source_id`` into ``into_id``: its signals move, it is kept as ``merged`` for the record."""
    if source_id == into_id:
        raise InvalidIncidentAction("an incident cannot be merged into itself")
    lock(conn)
    source, into = _locked(conn, source_id), _locked(conn, into_id)
    for incident in (source, into):
        if incident["status"] in ("merged", "closed"):
            raise InvalidIncidentAction(f"incident {incident['id']} is {incident['status']}")
    moved = conn.execute(
        "UPDATE incident_signals SET incident_id = %s WHERE incident_id = %s RETURNING signal, ref",
        (into_id, source_id),
    ).fetchall()
    conn.execute(
        "UPDATE incidents SET status = 'merged', merged_into = %s, closed_at = %s, updated_at = %s WHERE id = %s",
        (into_id, now, now, source_id),
    )
    refresh(conn, into_id, now)
    refresh(conn, source_id, now)
    signals = [{"signal": s, "ref": r} for s, r in moved]
    _event(conn, source_id, now, actor, "merged_into", note=note, data={"into": into_id, "signals": signals})
    _event(conn, into_id, now, actor, "merged_from", note=note, data={"from": source_id, "signals": signals})
    _announce(conn, source_id, "incident.updated", now)
    _announce(conn, into_id, "incident.updated", now)


def split(conn: psycopg.Connection, incident_id: int, signals: Sequence[tuple[str, int]], *, actor: str,
          now: datetime, note: str | None = None) -> int:  # fmt: skip
    """Move ``signals`` out of ``incident_id`` into a new incident of the same rule; return its id."""
    lock(conn)
    incident = _locked(conn, incident_id)
    if incident["status"] in ("merged", "closed"):
        raise InvalidIncidentAction(f"incident {incident_id} is {incident['status']}")
    wanted = sorted(set(signals))
    if not wanted:
        raise InvalidIncidentAction("name at least one signal to split off")
    rows = conn.execute(
        """SELECT signal, ref, unit_ids, at FROM incident_signals
           WHERE incident_id = %s AND (signal, ref) IN (SELECT * FROM unnest(%s::text[], %s::bigint[]))
           ORDER BY at""",
        (incident_id, [s for s, _ in wanted], [r for _, r in wanted]),
    ).fetchall()
    if len(rows) != len(wanted):
        raise InvalidIncidentAction("every signal to split off must belong to this incident")
    total = conn.execute("SELECT count(*) FROM incident_signals WHERE incident_id = %s", (incident_id,)).fetchone()
    if total and total[0] == len(rows):
        raise InvalidIncidentAction("splitting off every signal leaves nothing behind; keep at least one")
    first = rows[0]
    lead = first[2][0] if first[2] else None
    title_row = conn.execute("SELECT title, severity FROM incidents WHERE id = %s", (incident_id,)).fetchone()
    assert title_row is not None
    new = conn.execute(
        """INSERT INTO incidents (rule_id, title, severity, lead_unit_id, first_signal_at, last_signal_at,
                                  created_at, updated_at)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING id""",
        (incident["rule_id"], f"{title_row[0]} (tách từ #{incident_id})", title_row[1], lead, first[3], first[3],
         now, now),
    ).fetchone()  # fmt: skip
    assert new is not None
    new_id = int(new[0])
    conn.execute(
        """UPDATE incident_signals SET incident_id = %s
           WHERE incident_id = %s AND (signal, ref) IN (SELECT * FROM unnest(%s::text[], %s::bigint[]))""",
        (new_id, incident_id, [s for s, _ in wanted], [r for _, r in wanted]),
    )
    refresh(conn, incident_id, now)
    refresh(conn, new_id, now)
    moved = [{"signal": s, "ref": r} for s, r in wanted]
    _event(conn, new_id, now, actor, "split_from", note=note, data={"from": incident_id, "signals": moved})
    _event(conn, incident_id, now, actor, "split_off", note=note, data={"into": new_id, "signals": moved})
    _announce(conn, new_id, "incident.created", now)
    _announce(conn, incident_id, "incident.updated", now)
    return new_id


def set_units(conn: psycopg.Connection, incident_id: int, *, lead_unit_id: str | None, actor: str,
              now: datetime) -> None:  # fmt: skip
    lock(conn)
    incident = _locked(conn, incident_id)
    conn.execute("UPDATE incidents SET lead_unit_id = %s, updated_at = %s WHERE id = %s",
                 (lead_unit_id, now, incident_id))  # fmt: skip
    refresh(conn, incident_id, now)
    _event(conn, incident_id, now, actor, "lead", data={"from": incident["lead_unit_id"], "to": lead_unit_id})
    # The communes it leaves hear of it once more (their consoles drop it), as the ones it joins do.
    _announce(conn, incident_id, "incident.updated", now,
              also=[incident["lead_unit_id"], *(incident["helper_unit_ids"] or [])])  # fmt: skip


def step_done(conn: psycopg.Connection, incident_id: int, step_id: str, *, actor: str, now: datetime,
              note: str | None = None, rules: RuleSet | None = None) -> None:  # fmt: skip
    rules = rules or configured()
    incident = _locked(conn, incident_id)
    rule = rules.get(incident["rule_id"])
    if rule is None or step_id not in {s.id for s in rule.checklist}:
        raise InvalidIncidentAction(f"step {step_id!r} is not on this incident's checklist")
    done = conn.execute(
        """INSERT INTO incident_steps (incident_id, step_id, done_by, done_at, note) VALUES (%s, %s, %s, %s, %s)
           ON CONFLICT DO NOTHING RETURNING step_id""",
        (incident_id, step_id, actor, now, note),
    ).fetchone()
    if done is None:
        raise InvalidIncidentAction(f"step {step_id!r} is already done")
    _event(conn, incident_id, now, actor, "step", note=note, data={"step": step_id})
    _announce(conn, incident_id, "incident.updated", now)


def add_note(conn: psycopg.Connection, incident_id: int, *, actor: str, now: datetime, note: str) -> None:
    _locked(conn, incident_id)
    _event(conn, incident_id, now, actor, "note", note=note)
    _announce(conn, incident_id, "incident.updated", now)


def acknowledge(conn: psycopg.Connection, incident_id: int, *, units: frozenset[str] | set[str] | None, actor: str,
                now: datetime) -> list[int]:  # fmt: skip
    """``actor`` takes the incident: every new alert of it that they see (a commune: its own units'
    signals) is acknowledged as from the alert's own button (escalation stops, the person's on-call
    pages close), and the timeline keeps one entry naming the alerts. Answers their ids.

    No incident lock before the alerts' own: alerts are locked first everywhere (ingest, lifecycle),
    then the incident, so taking them in the other order could deadlock with a signal arriving."""
    from ioc.alerts.lifecycle import InvalidAction, act

    params: dict[str, Any] = {"id": incident_id}
    scope = "TRUE" if units is None else "s.unit_ids && %(units)s::text[]"
    if units is not None:
        params["units"] = sorted(units)
    ids = [int(r[0]) for r in conn.execute(
        f"""SELECT a.id FROM incident_signals s JOIN alerts a ON s.signal = 'alert' AND a.id = s.ref
            WHERE s.incident_id = %(id)s AND a.status = 'new' AND {scope} ORDER BY a.id""", params)]  # fmt: skip
    if not ids:
        raise InvalidIncidentAction("nothing to acknowledge: no new alert in this incident")
    for alert_id in ids:
        try:
            act(conn, alert_id, "acknowledge", actor=actor, now=now)
        except InvalidAction as exc:  # taken by someone else meanwhile: the caller reloads and sees
            raise InvalidIncidentAction(str(exc)) from exc
    _event(conn, incident_id, now, actor, "acknowledged", data={"alerts": ids})
    _announce(conn, incident_id, "incident.updated", now)
    return ids


# -- reading --------------------------------------------------------------------------------------

INCIDENT_COLUMNS = (
    "id, rule_id, title, severity, status, lead_unit_id, helper_unit_ids, lat, lon, first_signal_at,"
    " last_signal_at, signal_count, merged_into, created_at, updated_at, closed_at"
)


def _rows(cur: psycopg.Cursor) -> list[dict[str, Any]]:
    names = [d.name for d in cur.description or ()]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def _scope(units: frozenset[str] | set[str] | None, params: dict[str, Any]) -> str:
    if units is None:
        return "TRUE"
    params["units"] = sorted(units)
    return "(lead_unit_id = ANY(%(units)s) OR helper_unit_ids && %(units)s::text[])"


def list_incidents(conn: psycopg.Connection, *, units: frozenset[str] | set[str] | None, status: str | None,
                   unit: str | None, before_id: int | None, limit: int) -> list[dict[str, Any]]:  # fmt: skip
    """Newest first; ``units`` None: every incident (district staff); ``status`` 'active': open ones."""
    params: dict[str, Any] = {"limit": limit}
    where = [_scope(units, params), "status <> 'merged'"]
    if status == "active":
        where.append("status = 'open'")
    elif status:
        where.append("status = %(status)s")
        params["status"] = status
    if unit:
        where.append("(lead_unit_id = %(unit)s OR %(unit)s = ANY(helper_unit_ids))")
        params["unit"] = unit
    if before_id:
        where.append("id < %(before)s")
        params["before"] = before_id
    cur = conn.execute(
        f"""SELECT {INCIDENT_COLUMNS},
                   (SELECT count(*) FROM incident_signals s JOIN alerts a ON s.signal = 'alert' AND a.id = s.ref
                     WHERE s.incident_id = incidents.id AND a.status IN ('new', 'acknowledged', 'in_progress'))
                     AS open_alerts
            FROM incidents WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT %(limit)s""",
        params,
    )
    return _rows(cur)


def get(conn: psycopg.Connection, incident_id: int, *, units: frozenset[str] | set[str] | None) -> dict[str, Any]:
    """One incident the caller may see (else :class:`IncidentNotFound`, so existence is not revealed)."""
    params: dict[str, Any] = {"id": incident_id}
    cur = conn.execute(f"SELECT {INCIDENT_COLUMNS} FROM incidents WHERE id = %(id)s AND {_scope(units, params)}",
                       params)  # fmt: skip
    rows = _rows(cur)
    if not rows:
        raise IncidentNotFound(f"incident {incident_id} does not exist")
    return rows[0]


def signals_of(conn: psycopg.Connection, incident_id: int, *, units: frozenset[str] | set[str] | None
               ) -> list[dict[str, Any]]:  # fmt: skip
    """The incident's signals with what each is now. A commune's staff see only the signals of units
    they may see: a helper commune does not read the lead commune's citizens' reports through it."""
    params: dict[str, Any] = {"id": incident_id}
    scope = "TRUE" if units is None else "s.unit_ids && %(units)s::text[]"
    if units is not None:
        params["units"] = sorted(units)
    cur = conn.execute(
        f"""SELECT s.signal, s.ref, s.topic, s.severity, s.unit_ids, s.lat, s.lon, s.at, s.attached_by,
                   coalesce(a.title, b.title) AS title,
                   coalesce(a.status, b.status) AS status,
                   a.count AS count, a.last_seen AS last_seen
            FROM incident_signals s
            LEFT JOIN alerts a ON s.signal = 'alert' AND a.id = s.ref
            LEFT JOIN radio_broadcasts b ON s.signal = 'broadcast' AND b.id = s.ref
            WHERE s.incident_id = %(id)s AND {scope}
            ORDER BY s.at, s.ref""",
        params,
    )
    return _rows(cur)


def timeline(conn: psycopg.Connection, incident_id: int, signals: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Everything that happened, oldest first: the incident's own events, what people did on its
    alerts (alert_audit) and each cluster's answer to its broadcasts."""
    alert_ids = [s["ref"] for s in signals if s["signal"] == "alert"]
    broadcast_ids = [s["ref"] for s in signals if s["signal"] == "broadcast"]
    cur = conn.execute(
        """SELECT at, actor, source, action, note, data, ref FROM (
               SELECT at, actor, 'incident' AS source, action, note, data, NULL::bigint AS ref, 0 AS src, id AS ord
                 FROM incident_events WHERE incident_id = %(id)s
               UNION ALL
               SELECT at, actor, 'alert', action, note, data, alert_id, 1, id
                 FROM alert_audit WHERE alert_id = ANY(%(alerts)s)
               UNION ALL
               SELECT b.updated_at, coalesce(b.confirmed_by, b.requested_by), 'broadcast', 'broadcast:' || b.status,
                      b.title, jsonb_build_object('kind', b.kind), b.id, 2, b.id
                 FROM radio_broadcasts b WHERE b.id = ANY(%(broadcasts)s)) t
           ORDER BY at, src, ord""",
        {"id": incident_id, "alerts": alert_ids, "broadcasts": broadcast_ids},
    )
    return _rows(cur)


def checklist(conn: psycopg.Connection, incident: dict[str, Any], rules: RuleSet | None = None) -> list[dict[str, Any]]:
    rules = rules or configured()
    rule = rules.get(incident["rule_id"])
    done = {
        r[0]: {"done_by": r[1], "done_at": r[2], "note": r[3]}
        for r in conn.execute(
            "SELECT step_id, done_by, done_at, note FROM incident_steps WHERE incident_id = %s", (incident["id"],)
        ).fetchall()
    }
    steps = rule.checklist if rule else ()
    return [{"id": s.id, "text": s.text, "text_en": s.text_en, **done.get(s.id, {})} for s in steps]


def public_summary(conn: psycopg.Connection, alert_id: int | None) -> dict[str, Any] | None:
    """What a citizen following a report may know of the incident it belongs to: its name, status and
    how many citizens' reports and other signals it gathers. Only for incidents of a commune: a
    district-level one (IOC-only reports, such as complaints about officials) is never shown."""
    if alert_id is None:
        return None
    row = conn.execute(
        """SELECT i.title, i.status, i.signal_count,
                  (SELECT count(*) FROM incident_signals x WHERE x.incident_id = i.id AND x.topic LIKE 'report.%%')
           FROM incident_signals s JOIN incidents i ON i.id = coalesce(
                (SELECT m.merged_into FROM incidents m WHERE m.id = s.incident_id), s.incident_id)
           WHERE s.signal = 'alert' AND s.ref = %s AND i.lead_unit_id IS NOT NULL""",
        (alert_id,),
    ).fetchone()
    if row is None:
        return None
    title, status, signals, reports = row
    return {"title": title, "status": status, "signals": signals, "reports": reports}


@dataclass(frozen=True)
class Figures:
    signals: int
    incidents: int


def figures(conn: psycopg.Connection, *, start: datetime, end: datetime) -> Figures:
    """Raw signals and the incidents they became, for signals between ``start`` and ``end``."""
    row = conn.execute(
        "SELECT count(*), count(DISTINCT incident_id) FROM incident_signals WHERE at >= %s AND at < %s",
        (start, end),
    ).fetchone()
    assert row is not None
    return Figures(int(row[0]), int(row[1]))


# -- bookkeeping --------------------------------------------------------------------------------

def _event(conn: psycopg.Connection, incident_id: int, at: datetime, actor: str, action: str, *,
           note: str | None = None, data: dict[str, Any] | None = None) -> None:  # fmt: skip
    conn.execute(
        "INSERT INTO incident_events (incident_id, at, actor, action, note, data) VALUES (%s, %s, %s, %s, %s, %s)",
        (incident_id, at, actor, action, note, Jsonb(data or {})),
    )


def _announce(conn: psycopg.Connection, incident_id: int, kind: str, at: datetime, *,
              also: Sequence[str | None] = ()) -> None:  # fmt: skip
    """Tell the walls and consoles: the event names the lead commune and every helping one, so each
    commune the incident belongs to hears of it live (and no other commune does); ``also``: communes
    it just left."""
    row = conn.execute(
        "SELECT lead_unit_id, helper_unit_ids, status, severity, signal_count, title FROM incidents WHERE id = %s",
        (incident_id,),
    ).fetchone()
    if row is None:
        return
    lead, helpers, status, severity, count, title = row
    units = list(dict.fromkeys(u for u in [lead, *(helpers or []), *also] if u))
    notify(conn, LiveEvent(topic="incident", type=kind, unit_id=lead, unit_ids=units[:50], at=at,
                           data={"id": incident_id, "status": status, "severity": severity, "signal_count": count,
                                 "title": title[:200]}))  # fmt: skip
