"""Import CAP 1.2 messages from outside authorities (weather service, civil defence) as alerts.

``Alert`` opens an IOC alert; ``Update`` changes the alert its ``references`` point to (an Update
whose references are all unknown here opens a new alert, with a note saying so); ``Cancel``
dismisses it. The same message received twice (HTTP retry, MQTT redelivery) is applied once. The
document is stored byte for byte (``cap_messages.xml``), so an XML signature in it stays verifiable.

A received message is **not issued**: it becomes a warning waiting for its issue act
(:mod:`ioc.warnings.store`), and nothing public (loudspeakers, webhooks) moves until an operator or
leader issues it. A received Cancel of an issued warning is applied at once (stopping is safe).
Test, Exercise, System and Draft messages become alerts the operators see, marked in the title,
and are flagged ``public: false`` so that nothing public (radio, public pages) ever relays them.
The affected unit comes from the message's areas: the one leaf unit they touch, or the nearest
unit that contains all the units they touch.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg.types.json import Jsonb
from shapely.geometry import mapping

from ioc.alerts.announce import announce, announce_current
from ioc.alerts.lifecycle import act
from ioc.alerts.model import AlertDraft, Severity
from ioc.alerts.ordering import lock_alert_order
from ioc.alerts.store import raise_alerts
from ioc.areas import area_geometry, covered_units
from ioc.cap.model import CapMessage, Info, format_sent
from ioc.cap.schema import CapError, CapProblem
from ioc.text import fold, nfc

if TYPE_CHECKING:
    from ioc.warnings.config import WarningsConfig

CAP_TO_SEVERITY = {
    "Extreme": "critical",
    "Severe": "severe",
    "Moderate": "moderate",
    "Minor": "minor",
    "Unknown": "info",
}
NOT_REAL = {"Test": "[THỬ NGHIỆM] ", "Exercise": "[DIỄN TẬP] ", "System": "[HỆ THỐNG] ", "Draft": "[NHÁP] "}


@dataclass(frozen=True)
class CapResult:
    alert_id: int | None
    action: str  # created | updated | cancelled | duplicate | acknowledged
    message: str


def _pick_info(message: CapMessage) -> Info | None:
    for info in message.infos:
        if info.language.lower().startswith("vi"):
            return info
    return message.infos[0] if message.infos else None


def _area_geometry(info: Info | None) -> Any:
    return area_geometry(info.areas) if info else None


def _units_for(conn: psycopg.Connection, info: Info | None) -> list[str]:
    """The communes the message's areas cover (exact areas: shared edges and slivers do not count)."""
    return [c.unit_id for c in covered_units(conn, info.areas)] if info else []


def _unit_for(conn: psycopg.Connection, touched: list[str]) -> str | None:
    """The one unit covered, or the nearest unit holding all of them (the alert's home unit)."""
    if not touched:
        return None
    if len(touched) == 1:
        return touched[0]
    parents = dict(conn.execute("SELECT id, parent_id FROM units").fetchall())

    def ancestors(unit: str) -> list[str]:
        chain = []
        while unit:
            chain.append(unit)
            unit = parents.get(unit)
        return chain

    common = set(ancestors(touched[0]))
    for unit in touched[1:]:
        common &= set(ancestors(unit))
    return next((u for u in ancestors(touched[0]) if u in common), None)


def _record(conn: psycopg.Connection, message: CapMessage, xml: bytes, alert_id: int | None) -> int:
    row = conn.execute(
        """INSERT INTO cap_messages (direction, sender, identifier, sent, sent_text, msg_type, status, scope,
                                     alert_id, refs, xml)
           VALUES ('in', %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id""",
        (message.sender, message.identifier, message.sent, format_sent(message.sent), message.msg_type,
         message.status, message.scope, alert_id, [str(r) for r in message.references], xml),
    ).fetchone()  # fmt: skip
    assert row is not None
    return int(row[0])


def _known_reference(conn: psycopg.Connection, message: CapMessage) -> tuple[int, int | None] | None:
    """(alert id, warning id) of the newest referenced message known here, or None."""
    for ref in reversed(message.references):
        row = conn.execute(
            "SELECT alert_id, warning_id FROM cap_messages WHERE sender = %s AND identifier = %s"
            " AND alert_id IS NOT NULL",
            (ref.sender, ref.identifier),
        ).fetchone()
        if row:
            return row[0], row[1]
    return None


def _referenced_alert(conn: psycopg.Connection, message: CapMessage) -> int:
    known = _known_reference(conn, message)
    if known:
        return known[0]
    names = ", ".join(f"{r.sender}/{r.identifier}" for r in message.references)
    raise CapError([CapProblem(f"references: none of the referenced messages is known here ({names})")])


def _fields(message: CapMessage) -> dict[str, Any]:
    info = _pick_info(message)
    headline = (info.headline or info.event) if info else message.identifier
    title = nfc(NOT_REAL.get(message.status, "") + (headline or "Cảnh báo CAP"))
    geometry = _area_geometry(info)
    return {
        "info": info,
        "title": title,
        "severity": CAP_TO_SEVERITY.get(info.severity if info else "Unknown", "info"),
        "description": "\n\n".join(x for x in (info.description, info.instruction) if x) if info else None,
        "geometry": geometry,
        "evidence": {
            "cap": {
                "sender": message.sender,
                "identifier": message.identifier,
                "status": message.status,
                "scope": message.scope,
                "msg_type": message.msg_type,
                "event": info.event if info else None,
                "public": message.public_deliverable,
            }
        },
    }


def apply_cap(conn: psycopg.Connection, message: CapMessage, xml: bytes, *, now: datetime,
              warnings: WarningsConfig | None = None, issuer: Any = None) -> CapResult:  # fmt: skip
    """Apply ``message`` in ``conn``'s transaction. With ``warnings`` (the district's warning policy),
    Alerts and Updates also become warnings waiting for their issue act, and a Cancel of an issued
    warning is sent on every channel (``issuer``: :class:`ioc.warnings.store.Issuer`)."""
    seen = conn.execute(
        "SELECT alert_id FROM cap_messages WHERE sender = %s AND identifier = %s", (message.sender, message.identifier)
    ).fetchone()
    if seen:
        return CapResult(seen[0], "duplicate", "this message was already received; nothing changed")
    if message.msg_type in ("Ack", "Error"):
        _record(conn, message, xml, None)
        return CapResult(None, "acknowledged", f"{message.msg_type} recorded")
    note = None
    if message.msg_type == "Update" and _known_reference(conn, message) is None:
        names = ", ".join(f"{r.sender}/{r.identifier}" for r in message.references)
        note = f"CAP Update của bản tin chưa nhận được ({names}): mở cảnh báo mới"
    if message.msg_type == "Alert" or note:
        f = _fields(message)
        info = f["info"]
        category = (info.categories[0] if info and info.categories else "Other").lower()
        geometry = f["geometry"]
        centroid = geometry.centroid if geometry is not None else None
        touched = _units_for(conn, info)
        [change] = raise_alerts(
            conn,
            [
                AlertDraft(
                    kind=f"cap.{category}",
                    severity=Severity(f["severity"]),
                    title=f["title"],
                    at=message.sent,
                    unit_id=_unit_for(conn, touched),
                    dedup_key=f"cap:{message.sender}:{message.identifier}",
                    description=f["description"],
                    lat=centroid.y if centroid is not None else None,
                    lon=centroid.x if centroid is not None else None,
                    area=mapping(geometry) if geometry is not None else None,
                    evidence=f["evidence"],
                    source_ref={"cap": f"{message.sender},{message.identifier}"},
                    policy="default",
                )
            ],
            now=now,
        )
        message_id = _record(conn, message, xml, change.id)
        for unit in touched:  # each commune's officers see it (ioc.alerts.access)
            conn.execute("INSERT INTO alert_units (alert_id, unit_id) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                         (change.id, unit))  # fmt: skip
        if len(touched) > 1:
            announce_current(conn, change.id, now)
            from ioc.incidents.store import sync_alert_units

            sync_alert_units(conn, change.id, now=now)
        if note:
            conn.execute(
                """INSERT INTO alert_audit (alert_id, at, actor, action, from_status, to_status, note, data)
                   VALUES (%s, %s, %s, 'comment', 'new', 'new', %s, %s)""",
                (change.id, now, f"cap:{message.sender}", note, Jsonb({"identifier": message.identifier})),
            )
        _new_warning(conn, message, message_id, change.id, now=now, warnings=warnings, note=note)
        detail = f"alert {change.id} opened" + (" (Update of an unknown message)" if note else "")
        return CapResult(change.id, "created", detail)
    known = _known_reference(conn, message)
    alert_id = _referenced_alert(conn, message)
    warning_id = known[1] if known else None
    if message.msg_type == "Cancel":
        status = conn.execute("SELECT status FROM alerts WHERE id = %s", (alert_id,)).fetchone()[0]
        note = f"CAP Cancel từ {message.sender}: {message.note or 'hủy cảnh báo'}"
        if status in ("new", "acknowledged", "in_progress"):
            act(conn, alert_id, "dismiss", actor=f"cap:{message.sender}", now=now, note=note)
        elif status == "resolved":
            act(conn, alert_id, "close", actor=f"cap:{message.sender}", now=now, note=note)
        message_id = _record(conn, message, xml, alert_id)
        # Only the sender of the referenced messages cancels the warning on the public channels.
        own = any(r.sender == message.sender for r in message.references)
        if warning_id is not None and warnings is not None and issuer is not None and own:
            from ioc.warnings import store

            state = conn.execute("SELECT state FROM warnings WHERE id = %s", (warning_id,)).fetchone()
            if state and state[0] != "cancelled":
                received = message_id if state[0] == "issued" else None
                store.cancel(conn, warning_id, by=f"cap:{message.sender}", now=now, issuer=issuer,
                             note=message.note, received_message_id=received)  # fmt: skip
        return CapResult(alert_id, "cancelled", f"alert {alert_id} cancelled")
    # Update: the referenced alert takes the new content.
    f = _fields(message)
    geometry = f["geometry"]
    lock_alert_order(conn)
    seq = conn.execute(
        """UPDATE alerts SET title = %s, title_search = %s, severity = %s, description = %s,
                  area = coalesce(%s, area), evidence = %s, seq = nextval('alert_seq'), updated_at = %s,
                  last_seen = greatest(last_seen, %s)
           WHERE id = %s RETURNING seq, unit_id, status""",
        (f["title"], fold(f["title"]), f["severity"], f["description"],
         Jsonb(mapping(geometry)) if geometry is not None else None, Jsonb(f["evidence"]), now, message.sent,
         alert_id),
    ).fetchone()  # fmt: skip
    conn.execute(
        """INSERT INTO alert_audit (alert_id, at, actor, action, from_status, to_status, note, data)
           VALUES (%s, %s, %s, 'cap_update', %s, %s, %s, %s)""",
        (alert_id, now, f"cap:{message.sender}", seq[2], seq[2], f"CAP Update {message.identifier}",
         Jsonb({"identifier": message.identifier})),
    )  # fmt: skip
    announce(conn, "updated", alert_id=alert_id, seq=seq[0], unit_id=seq[1], at=now, title=f["title"],
             severity=f["severity"])  # fmt: skip
    message_id = _record(conn, message, xml, alert_id)
    if warning_id is not None and warnings is not None:
        from ioc.warnings import store

        # Content unusable as a warning (no info): the alert is still updated.
        with contextlib.suppress(ValueError):
            store.attach_received(conn, warning_id, message_id, store.content_from_message(message),
                                  by=f"cap:{message.sender}", now=now)  # fmt: skip
    return CapResult(alert_id, "updated", f"alert {alert_id} updated")


def _new_warning(conn: psycopg.Connection, message: CapMessage, message_id: int, alert_id: int, *, now: datetime,
                 warnings: WarningsConfig | None, note: str | None) -> None:  # fmt: skip
    """A received Alert (or an Update of an unknown message) waits as a warning for its issue act."""
    if warnings is None or message.msg_type not in ("Alert", "Update"):
        return
    from ioc.warnings import store

    info = _pick_info(message)
    category = warnings.category_for(info.categories[0] if info and info.categories else None,
                                     info.event if info else None)  # fmt: skip
    try:
        content = store.content_from_message(message)
    except ValueError:
        return
    store.create(conn, category=category or f"cap.{(info.categories[0] if info and info.categories else 'other')}",
                 cap_status=message.status, scope=message.scope, content=content, alert_id=alert_id,
                 by=f"cap:{message.sender}", now=now, config=warnings, note=note,
                 pending_message_id=message_id)  # fmt: skip
