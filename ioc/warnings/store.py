"""Warnings: drafted, issued by an explicit audited act, revised, cancelled; routed to exact communes.

Nothing reaches a loudspeaker or a public channel unless a person issued it here (or, for a message
received from an authority, a person issued that message): exports and imports only store.

* :func:`create` keeps a draft; :func:`revise` a new content for an issued warning;
* :func:`issue` is the act: an operator or leader; for an Actual, Public warning under the
  ``second_person: actual_public`` policy a first person *requests* it and a **different** person
  issues it. Issuing writes the CAP message (``cap_messages``, ``issued_at`` set), routes the area
  to communes (``warning_units``, ``alert_units``), opens or updates the warning's alert and queues
  one delivery per channel and target (the ledger, :mod:`ioc.warnings.ledger`);
* :func:`cancel` issues a Cancel at once (stopping is always safe): every channel gets it, and
  deliveries of earlier messages not yet sent are withdrawn.

Device-health alerts, citizen reports, camera evidence and closed alerts never become public
warnings (:func:`source_problem`); the radio service checks the same again before it plays.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from ioc.alerts.announce import announce, announce_current
from ioc.alerts.lifecycle import InvalidAction, act
from ioc.alerts.model import AlertDraft, Severity
from ioc.alerts.ordering import lock_alert_order
from ioc.alerts.store import raise_alerts
from ioc.areas import AreaRule, covered_units
from ioc.cap.build import to_xml
from ioc.cap.importer import CAP_TO_SEVERITY
from ioc.cap.model import CapMessage, Info, Reference, format_sent
from ioc.hub.events import LiveEvent, notify
from ioc.text import fold
from ioc.warnings import ledger
from ioc.warnings.config import WarningsConfig
from ioc.warnings.model import AreaIn, Circle, Content, Geocode

#: Alerts whose kind starts so are about devices, people's reports or camera evidence: never public.
NEVER_PUBLIC_KINDS = ("device.", "report.", "camera.", "radio.", "warning.delivery")
ENDED_ALERT = ("resolved", "closed", "dismissed")


class WarningNotFound(LookupError):
    pass


class WarningRefused(ValueError):
    """The act is not allowed in the warning's state (409) or with this content (422: ``field``)."""

    def __init__(self, message: str, *, status: int = 409, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.field = field


@dataclass(frozen=True)
class Issuer:
    """Who the IOC is in CAP (settings ``cap_sender`` / ``cap_sender_name``) and the district's policy."""

    sender: str
    sender_name: str
    config: WarningsConfig


def source_problem(conn: psycopg.Connection, alert_id: int | None) -> str | None:
    """Why the alert cannot be the source of a public warning, or None when it can."""
    if alert_id is None:
        return None
    row = conn.execute("SELECT kind, status FROM alerts WHERE id = %s", (alert_id,)).fetchone()
    if row is None:
        return f"alert {alert_id} does not exist"
    kind, status = row
    if kind.startswith(NEVER_PUBLIC_KINDS):
        return f"an alert of kind {kind} is never a public warning"
    if status in ENDED_ALERT:
        return f"alert {alert_id} is {status}"
    return None


def _audit(conn: psycopg.Connection, warning_id: int, now: datetime, actor: str, action: str,
           note: str | None = None, **data: Any) -> None:  # fmt: skip
    conn.execute(
        "INSERT INTO warning_audit (warning_id, at, actor, action, note, data) VALUES (%s, %s, %s, %s, %s, %s)",
        (warning_id, now, actor, action, note, Jsonb(data)),
    )


def create(conn: psycopg.Connection, *, category: str, cap_status: str, scope: str, content: Content,
           alert_id: int | None, by: str, now: datetime, config: WarningsConfig, note: str | None = None,
           pending_message_id: int | None = None) -> int:  # fmt: skip
    """A draft warning (nothing is sent until :func:`issue`)."""
    if pending_message_id is None and category not in config.categories:
        known = ", ".join(sorted(config.categories)) or "none"
        raise WarningRefused(f"unknown warning category {category!r}; configured: {known}", status=422,
                             field="category")  # fmt: skip
    problem = source_problem(conn, alert_id)
    if problem:
        raise WarningRefused(problem, status=422, field="alert_id")
    row = conn.execute(
        """INSERT INTO warnings (category, cap_status, scope, content, pending, pending_message_id, alert_id,
                                 expires, note, created_by, created_at, updated_at)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id""",
        (category, cap_status, scope, Jsonb(content.model_dump(mode="json")),
         Jsonb(content.model_dump(mode="json")) if pending_message_id is None else None, pending_message_id,
         alert_id, content.expires, note, by, now, now),
    ).fetchone()  # fmt: skip
    assert row is not None
    warning_id = int(row[0])
    if pending_message_id is not None:
        conn.execute("UPDATE cap_messages SET warning_id = %s WHERE id = %s", (warning_id, pending_message_id))
    _audit(conn, warning_id, now, by, "create", note, category=category)
    return warning_id


def _lock(conn: psycopg.Connection, warning_id: int) -> dict[str, Any]:
    cur = conn.execute("SELECT * FROM warnings WHERE id = %s FOR UPDATE", (warning_id,))
    row = cur.fetchone()
    if row is None:
        raise WarningNotFound(f"warning {warning_id} does not exist")
    return dict(zip([d.name for d in cur.description], row, strict=True))


def revise(conn: psycopg.Connection, warning_id: int, content: Content, *, by: str, now: datetime) -> None:
    """A new content for the warning, to be issued as an Update by :func:`issue`."""
    w = _lock(conn, warning_id)
    if w["state"] == "cancelled":
        raise WarningRefused(f"warning {warning_id} is cancelled")
    conn.execute(
        "UPDATE warnings SET pending = %s, pending_message_id = NULL, requested_by = NULL, updated_at = %s "
        "WHERE id = %s",
        (Jsonb(content.model_dump(mode="json")), now, warning_id),
    )
    _audit(conn, warning_id, now, by, "revise")


def attach_received(conn: psycopg.Connection, warning_id: int, message_id: int, content: Content, *,
                    by: str, now: datetime) -> None:  # fmt: skip
    """A received Update of the warning: it waits for its issue act like a revision."""
    conn.execute(
        "UPDATE warnings SET pending = NULL, pending_message_id = %s, requested_by = NULL, updated_at = %s "
        "WHERE id = %s",
        (message_id, now, warning_id),
    )
    conn.execute("UPDATE cap_messages SET warning_id = %s WHERE id = %s", (warning_id, message_id))
    _audit(conn, warning_id, now, by, "received_update", data_message_id=message_id, headline=content.headline)


def needs_second_person(w: dict[str, Any], config: WarningsConfig) -> bool:
    return config.second_person == "actual_public" and w["cap_status"] == "Actual" and w["scope"] == "Public"


def issue(conn: psycopg.Connection, warning_id: int, *, by: str, now: datetime, issuer: Issuer) -> dict[str, Any]:
    """The issue act (see the module docstring). Returns ``{"state", "message_id"?, "msg_type"?}``."""
    w = _lock(conn, warning_id)
    if w["state"] == "cancelled":
        raise WarningRefused(f"warning {warning_id} is cancelled")
    if w["pending"] is None and w["pending_message_id"] is None:
        raise WarningRefused(f"warning {warning_id} has nothing waiting to be issued (revise it first)")
    if needs_second_person(w, issuer.config):
        if w["requested_by"] is None:
            conn.execute(
                "UPDATE warnings SET requested_by = %s, updated_at = %s, "
                "state = CASE WHEN state = 'draft' THEN 'awaiting_confirmation' ELSE state END WHERE id = %s",
                (by, now, warning_id),
            )
            _audit(conn, warning_id, now, by, "request_issue", "chờ người thứ hai xác nhận")
            return {"state": "awaiting_confirmation" if w["state"] == "draft" else w["state"], "requested_by": by}
        if w["requested_by"] == by:
            raise WarningRefused("an Actual, Public warning is issued by a second person, not the one who asked",
                                 status=403)  # fmt: skip
    if w["pending_message_id"] is not None:
        return _issue_received(conn, w, by=by, now=now, issuer=issuer)
    content = Content.model_validate(w["pending"])
    units = _route(conn, content, issuer.config)
    previous = _issued_refs(conn, warning_id)
    msg_type = "Update" if previous else "Alert"
    message = build_message(w, content, msg_type, previous, issuer=issuer, now=now, units=units)
    xml = to_xml(message)
    message_id = _store_issued(conn, message, xml, w, by=by, now=now)
    return _after_issue(conn, w, content, units, message_id, msg_type, by=by, now=now, issuer=issuer)


def _issue_received(conn: psycopg.Connection, w: dict[str, Any], *, by: str, now: datetime,
                    issuer: Issuer) -> dict[str, Any]:  # fmt: skip
    from ioc.cap.parse import parse_cap

    row = conn.execute("SELECT xml, msg_type FROM cap_messages WHERE id = %s", (w["pending_message_id"],)).fetchone()
    assert row is not None
    message = parse_cap(bytes(row[0]))
    try:
        content = content_from_message(message)
    except ValueError as exc:  # pydantic's ValidationError too: an area beyond the API's limits
        raise WarningRefused(f"the received message cannot be issued as it is: {exc}"[:500], status=422) from exc
    units = _route(conn, content, issuer.config)
    conn.execute(
        "UPDATE cap_messages SET issued_by = %s, issued_at = %s, warning_id = %s, alert_id = coalesce(alert_id, %s)"
        " WHERE id = %s",
        (by, now, w["id"], w["alert_id"], w["pending_message_id"]),
    )
    return _after_issue(conn, w, content, units, w["pending_message_id"], row[1], by=by, now=now, issuer=issuer)


def _route(conn: psycopg.Connection, content: Content, config: WarningsConfig) -> list[tuple[str, float | None]]:
    rule = AreaRule(min_share=config.area.min_share, min_km2=config.area.min_km2)
    units = [(c.unit_id, c.share) for c in covered_units(conn, content.cap_areas(), rule)]
    if not units:
        raise WarningRefused("the warning's area covers no commune (check its polygons, circles or geocodes)",
                             status=422, field="content.areas")  # fmt: skip
    return units


def _issued_refs(conn: psycopg.Connection, warning_id: int) -> list[Reference]:
    rows = conn.execute(
        "SELECT sender, identifier, sent_text FROM cap_messages WHERE warning_id = %s AND issued_at IS NOT NULL "
        "ORDER BY id",
        (warning_id,),
    ).fetchall()
    return [Reference(*r) for r in rows]


def build_message(w: dict[str, Any], content: Content, msg_type: str, previous: list[Reference], *,
                  issuer: Issuer, now: datetime, units: list[tuple[str, float | None]]) -> CapMessage:  # fmt: skip
    category = issuer.config.categories.get(w["category"])
    info = Info(
        language="vi-VN",
        categories=[category.cap_category if category else "Other"],
        event=content.event,
        urgency="Past" if msg_type == "Cancel" else content.urgency,
        severity=content.severity,
        certainty=content.certainty,
        headline=content.headline,
        description=content.description,
        instruction=content.instruction,
        sender_name=issuer.sender_name,
        expires=content.expires,
        parameters=[("ioc:warning_id", str(w["id"])), ("ioc:category", w["category"]),
                    ("ioc:units", " ".join(u for u, _ in units))],  # fmt: skip
        areas=content.cap_areas(),
    )
    return CapMessage(
        identifier=f"ioc-w{w['id']}-{len(previous) + 1}",
        sender=issuer.sender,
        sent=now,
        status=w["cap_status"],
        msg_type=msg_type,
        scope=w["scope"],
        restriction="Chỉ dành cho cơ quan chức năng" if w["scope"] == "Restricted" else None,
        references=previous,
        infos=[info],
    )


def _store_issued(conn: psycopg.Connection, message: CapMessage, xml: bytes, w: dict[str, Any], *, by: str,
                  now: datetime) -> int:  # fmt: skip
    row = conn.execute(
        """INSERT INTO cap_messages (direction, sender, identifier, sent, sent_text, msg_type, status, scope,
                                     alert_id, refs, xml, warning_id, issued_by, issued_at)
           VALUES ('out', %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id""",
        (message.sender, message.identifier, message.sent, format_sent(message.sent), message.msg_type,
         message.status, message.scope, w["alert_id"], [str(r) for r in message.references], xml, w["id"], by,
         now),
    ).fetchone()  # fmt: skip
    assert row is not None
    return int(row[0])


def _after_issue(conn: psycopg.Connection, w: dict[str, Any], content: Content,
                 units: list[tuple[str, float | None]], message_id: int, msg_type: str, *, by: str, now: datetime,
                 issuer: Issuer) -> dict[str, Any]:  # fmt: skip
    unit_ids = [u for u, _ in units]
    alert_id = _warning_alert(conn, w, content, unit_ids, now=now)
    conn.execute("DELETE FROM warning_units WHERE warning_id = %s", (w["id"],))
    for unit, share in units:
        conn.execute("INSERT INTO warning_units (warning_id, unit_id, share) VALUES (%s, %s, %s)",
                     (w["id"], unit, share))  # fmt: skip
        conn.execute("INSERT INTO alert_units (alert_id, unit_id) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                     (alert_id, unit))  # fmt: skip
    announce_current(conn, alert_id, now)  # each commune's console sees it live
    from ioc.incidents.store import sync_alert_units

    sync_alert_units(conn, alert_id, now=now)  # ... and helps with the incident it is in
    conn.execute(
        """UPDATE warnings SET state = 'issued', content = %s, pending = NULL, pending_message_id = NULL,
                  requested_by = NULL, alert_id = %s, unit_ids = %s, expires = %s,
                  issued_at = coalesce(issued_at, %s), updated_at = %s WHERE id = %s""",
        (Jsonb(content.model_dump(mode="json")), alert_id, unit_ids, content.expires, now, now, w["id"]),
    )
    conn.execute("UPDATE cap_messages SET alert_id = coalesce(alert_id, %s) WHERE id = %s", (alert_id, message_id))
    _audit(conn, w["id"], now, by, "issue", None, msg_type=msg_type, message_id=message_id, units=unit_ids)
    public = w["cap_status"] == "Actual" and w["scope"] == "Public"
    ledger.supersede(conn, w["id"], message_id, now=now, why=f"superseded by {msg_type}")
    ledger.enqueue(conn, w["id"], message_id, msg_type, w["category"], unit_ids, public=public,
                   config=issuer.config, now=now)  # fmt: skip
    _live(conn, w["id"], msg_type, content.headline, unit_ids, now)
    return {"state": "issued", "message_id": message_id, "msg_type": msg_type, "unit_ids": unit_ids,
            "alert_id": alert_id}  # fmt: skip


def _warning_alert(conn: psycopg.Connection, w: dict[str, Any], content: Content, unit_ids: list[str], *,
                   now: datetime) -> int:  # fmt: skip
    """The alert the warning belongs to: opened on the first issue, updated after."""
    severity = CAP_TO_SEVERITY.get(content.severity, "info")
    if w["alert_id"] is None:
        [change] = raise_alerts(conn, [AlertDraft(
            kind=f"warning.{w['category']}", severity=Severity(severity), title=content.headline, at=now,
            unit_id=unit_ids[0] if len(unit_ids) == 1 else _common_parent(conn, unit_ids),
            dedup_key=f"warning:{w['id']}", description=content.description,
            evidence={"warning_id": w["id"], "category": w["category"], "units": unit_ids},
            source_ref={"warning": w["id"]}, policy="default",
        )], now=now)  # fmt: skip
        return change.id
    lock_alert_order(conn)
    row = conn.execute(
        """UPDATE alerts SET title = %s, title_search = %s, severity = %s, description = coalesce(%s, description),
                  seq = nextval('alert_seq'), updated_at = %s WHERE id = %s RETURNING seq, unit_id""",
        (content.headline, fold(content.headline), severity, content.description, now, w["alert_id"]),
    ).fetchone()  # fmt: skip
    if row is not None:
        announce(conn, "updated", alert_id=w["alert_id"], seq=row[0], unit_id=row[1], at=now,
                 title=content.headline, severity=severity)  # fmt: skip
    return int(w["alert_id"])


def _common_parent(conn: psycopg.Connection, unit_ids: list[str]) -> str | None:
    parents = {r[0] for r in conn.execute("SELECT parent_id FROM units WHERE id = ANY(%s)", (unit_ids,))}
    return parents.pop() if len(parents) == 1 else None


def cancel(conn: psycopg.Connection, warning_id: int, *, by: str, now: datetime, issuer: Issuer,
           note: str | None = None, received_message_id: int | None = None) -> dict[str, Any]:  # fmt: skip
    """Cancel: one person suffices (it stops things). A draft is just closed; an issued warning gets a
    CAP Cancel on every channel, and loudspeakers still playing it are stopped by the radio service."""
    w = _lock(conn, warning_id)
    if w["state"] == "cancelled":
        raise WarningRefused(f"warning {warning_id} is already cancelled")
    _audit(conn, warning_id, now, by, "cancel", note)
    if w["state"] != "issued":
        conn.execute("UPDATE warnings SET state = 'cancelled', cancelled_at = %s, pending = NULL, "
                     "pending_message_id = NULL, updated_at = %s WHERE id = %s", (now, now, warning_id))  # fmt: skip
        return {"state": "cancelled"}
    content = Content.model_validate(w["content"])
    units = [(u, None) for u in w["unit_ids"]]
    if received_message_id is not None:
        message_id = received_message_id
        conn.execute("UPDATE cap_messages SET issued_by = %s, issued_at = %s, warning_id = %s WHERE id = %s",
                     (by, now, warning_id, message_id))  # fmt: skip
    else:
        message = build_message(w, content, "Cancel", _issued_refs(conn, warning_id), issuer=issuer, now=now,
                                units=units)  # fmt: skip
        message = CapMessage(**{**message.__dict__, "note": note or "Hủy cảnh báo"})
        message_id = _store_issued(conn, message, to_xml(message), w, by=by, now=now)
    conn.execute(
        "UPDATE warnings SET state = 'cancelled', cancelled_at = %s, pending = NULL, pending_message_id = NULL, "
        "updated_at = %s WHERE id = %s",
        (now, now, warning_id),
    )
    if w["alert_id"] is not None:
        # The alert may already be closed by someone: the warning's Cancel still goes out.
        with contextlib.suppress(InvalidAction):
            act(conn, w["alert_id"], "dismiss", actor=by, now=now, note=f"Hủy cảnh báo: {note or 'đã hủy'}")
    public = w["cap_status"] == "Actual" and w["scope"] == "Public"
    ledger.supersede(conn, warning_id, message_id, now=now, why="superseded by Cancel")
    ledger.enqueue(conn, warning_id, message_id, "Cancel", w["category"], list(w["unit_ids"]), public=public,
                   config=issuer.config, now=now)  # fmt: skip
    _live(conn, warning_id, "Cancel", content.headline, list(w["unit_ids"]), now)
    return {"state": "cancelled", "message_id": message_id, "msg_type": "Cancel"}


def acknowledge(conn: psycopg.Connection, warning_id: int, unit_id: str, *, by: str, now: datetime) -> int:
    """A commune's officer saw the warning on the console: its console deliveries become acknowledged."""
    _audit(conn, warning_id, now, by, "acknowledge", None, unit_id=unit_id)
    return ledger.acknowledge_console(conn, warning_id, unit_id, by=by, now=now)


def _live(conn: psycopg.Connection, warning_id: int, msg_type: str, headline: str, unit_ids: list[str],
          now: datetime) -> None:  # fmt: skip
    data = {"warning_id": warning_id, "msg_type": msg_type, "headline": headline[:160], "units": unit_ids[:50]}
    notify(conn, LiveEvent(topic="warning", type=f"warning.{msg_type.lower()}", unit_id=None, at=now, data=data))
    for unit in unit_ids:
        notify(conn, LiveEvent(topic="warning", type=f"warning.{msg_type.lower()}", unit_id=unit, at=now, data=data))


def content_from_message(message: CapMessage) -> Content:
    """The warning content of a received CAP message (its Vietnamese info first)."""
    info = next((i for i in message.infos if i.language.lower().startswith("vi")), None) or (
        message.infos[0] if message.infos else None
    )
    if info is None:
        raise WarningRefused("the CAP message has no <info>", status=422)
    areas = [
        AreaIn(
            description=(a.description or "Khu vực")[:500],
            polygons=[list(r) for r in a.polygons],
            circles=[Circle(lat=la, lon=lo, radius_km=r) for la, lo, r in a.circles],
            geocodes=[Geocode(name=n or "code", value=v) for n, v in a.geocodes if v],
        )
        for a in info.areas
    ] or [AreaIn(description="Khu vực")]
    return Content(
        event=info.event[:200] or "Cảnh báo", headline=(info.headline or info.event or message.identifier)[:160],
        description=info.description, instruction=info.instruction, severity=info.severity,  # type: ignore[arg-type]
        urgency=info.urgency, certainty=info.certainty, expires=info.expires, areas=areas,  # type: ignore[arg-type]
    )  # fmt: skip


# -- reading --------------------------------------------------------------------------------------

WARNING_COLUMNS = ("id, category, cap_status, scope, state, content, pending IS NOT NULL OR pending_message_id IS NOT "
                   "NULL AS pending, requested_by, alert_id, unit_ids, expires, note, created_by, created_at, "
                   "issued_at, cancelled_at, updated_at")  # fmt: skip


def visible_condition(units: frozenset[str] | None, params: list[Any]) -> str:
    """District staff see every warning; a commune sees those routed to it (any of its units)."""
    if units is None:
        return "TRUE"
    params.append(list(units))
    return "EXISTS (SELECT 1 FROM warning_units wu WHERE wu.warning_id = warnings.id AND wu.unit_id = ANY(%s))"


def get(conn: psycopg.Connection, warning_id: int, units: frozenset[str] | None) -> dict[str, Any] | None:
    params: list[Any] = [warning_id]
    cur = conn.execute(f"SELECT {WARNING_COLUMNS} FROM warnings WHERE id = %s AND {visible_condition(units, params)}",
                       params)  # fmt: skip
    row = cur.fetchone()
    if row is None:
        return None
    out = dict(zip([d.name for d in cur.description], row, strict=True))
    out["audit"] = [
        dict(zip(("at", "actor", "action", "note", "data"), r, strict=True))
        for r in conn.execute("SELECT at, actor, action, note, data FROM warning_audit WHERE warning_id = %s "
                              "ORDER BY id", (warning_id,))  # fmt: skip
    ]
    out["messages"] = [
        dict(zip(("id", "direction", "sender", "identifier", "msg_type", "status", "issued_by", "issued_at"), r,
                 strict=True))
        for r in conn.execute("SELECT id, direction, sender, identifier, msg_type, status, issued_by, issued_at "
                              "FROM cap_messages WHERE warning_id = %s ORDER BY id", (warning_id,))  # fmt: skip
    ]
    return out


def list_visible(conn: psycopg.Connection, units: frozenset[str] | None, *, state: str | None = None,
                 limit: int = 100) -> list[dict[str, Any]]:  # fmt: skip
    params: list[Any] = []
    where = [visible_condition(units, params)]
    if state:
        where.append("state = %s")
        params.append(state)
    params.append(limit)
    cur = conn.execute(f"SELECT {WARNING_COLUMNS} FROM warnings WHERE {' AND '.join(where)} ORDER BY id DESC "
                       "LIMIT %s", params)  # fmt: skip
    names = [d.name for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def figures(conn: psycopg.Connection, units: frozenset[str] | None, since: datetime) -> list[dict[str, Any]]:
    """Issued warnings per commune since ``since``: a warning over three communes counts in each."""
    params: list[Any] = [since]
    where = ""
    if units is not None:
        where = "AND wu.unit_id = ANY(%s)"
        params.append(list(units))
    rows = conn.execute(
        f"""SELECT wu.unit_id, count(*) FILTER (WHERE w.state = 'issued'),
                   count(*) FILTER (WHERE w.state = 'cancelled'), count(*)
            FROM warning_units wu JOIN warnings w ON w.id = wu.warning_id
            WHERE w.issued_at >= %s {where} GROUP BY wu.unit_id ORDER BY wu.unit_id""",
        params,
    ).fetchall()
    return [{"unit_id": u, "issued": i, "cancelled": c, "total": t} for u, i, c, t in rows]
