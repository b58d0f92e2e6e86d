"""Import CAP 1.2 messages from outside authorities (weather service, civil defence) as alerts.

``Alert`` opens an IOC alert; ``Update`` changes the alert its ``references`` point to; ``Cancel``
dismisses it. The same message received twice (HTTP retry, MQTT redelivery) is applied once.
Test, Exercise, System and Draft messages become alerts the operators see, marked in the title,
and are flagged ``public: false`` so that nothing public (radio, public pages) ever relays them.
The affected unit comes from the message's areas: the one leaf unit they touch, or the nearest
unit that contains all the units they touch.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb
from shapely.geometry import Point, Polygon, mapping, shape
from shapely.ops import unary_union

from ioc.alerts.announce import announce
from ioc.alerts.lifecycle import act
from ioc.alerts.model import AlertDraft, Severity
from ioc.alerts.ordering import lock_alert_order
from ioc.alerts.store import raise_alerts
from ioc.cap.model import CapMessage, Info, format_sent
from ioc.cap.schema import CapError, CapProblem
from ioc.text import fold, nfc

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
    shapes = []
    for area in info.areas if info else []:
        for ring in area.polygons:
            if len(ring) >= 4:
                shapes.append(Polygon([(lon, lat) for lat, lon in ring]))
        for lat, lon, radius_km in area.circles:
            # Degrees per km near the equator; good enough for routing to a unit, not for surveying.
            shapes.append(Point(lon, lat).buffer(max(radius_km, 0.05) / 111.0))
    return unary_union(shapes) if shapes else None


def _unit_for(conn: psycopg.Connection, geometry: Any) -> str | None:
    if geometry is None:
        return None
    rows = conn.execute(
        "SELECT id, parent_id, geometry FROM units WHERE valid_to IS NULL AND geometry IS NOT NULL"
    ).fetchall()
    parents = {r[0]: r[1] for r in rows}
    has_children = {r[1] for r in rows if r[1]}
    touched = [r[0] for r in rows if r[0] not in has_children and shape(r[2]).intersects(geometry)]
    if not touched:
        return None
    if len(touched) == 1:
        return touched[0]

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


def _record(conn: psycopg.Connection, message: CapMessage, xml: bytes, alert_id: int | None) -> None:
    conn.execute(
        """INSERT INTO cap_messages (direction, sender, identifier, sent, sent_text, msg_type, status, scope,
                                     alert_id, refs, xml)
           VALUES ('in', %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)""",
        (message.sender, message.identifier, message.sent, format_sent(message.sent), message.msg_type,
         message.status, message.scope, alert_id, [str(r) for r in message.references], xml),
    )  # fmt: skip


def _referenced_alert(conn: psycopg.Connection, message: CapMessage) -> int:
    for ref in reversed(message.references):
        row = conn.execute(
            "SELECT alert_id FROM cap_messages WHERE sender = %s AND identifier = %s AND alert_id IS NOT NULL",
            (ref.sender, ref.identifier),
        ).fetchone()
        if row:
            return row[0]
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


def apply_cap(conn: psycopg.Connection, message: CapMessage, xml: bytes, *, now: datetime) -> CapResult:
    """Apply ``message`` in ``conn``'s transaction."""
    seen = conn.execute(
        "SELECT alert_id FROM cap_messages WHERE sender = %s AND identifier = %s", (message.sender, message.identifier)
    ).fetchone()
    if seen:
        return CapResult(seen[0], "duplicate", "this message was already received; nothing changed")
    if message.msg_type in ("Ack", "Error"):
        _record(conn, message, xml, None)
        return CapResult(None, "acknowledged", f"{message.msg_type} recorded")
    if message.msg_type == "Alert":
        f = _fields(message)
        info = f["info"]
        category = (info.categories[0] if info and info.categories else "Other").lower()
        geometry = f["geometry"]
        centroid = geometry.centroid if geometry is not None else None
        [change] = raise_alerts(
            conn,
            [
                AlertDraft(
                    kind=f"cap.{category}",
                    severity=Severity(f["severity"]),
                    title=f["title"],
                    at=message.sent,
                    unit_id=_unit_for(conn, geometry),
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
        _record(conn, message, xml, change.id)
        return CapResult(change.id, "created", f"alert {change.id} opened")
    alert_id = _referenced_alert(conn, message)
    if message.msg_type == "Cancel":
        status = conn.execute("SELECT status FROM alerts WHERE id = %s", (alert_id,)).fetchone()[0]
        note = f"CAP Cancel từ {message.sender}: {message.note or 'hủy cảnh báo'}"
        if status in ("new", "acknowledged", "in_progress"):
            act(conn, alert_id, "dismiss", actor=f"cap:{message.sender}", now=now, note=note)
        elif status == "resolved":
            act(conn, alert_id, "close", actor=f"cap:{message.sender}", now=now, note=note)
        _record(conn, message, xml, alert_id)
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
    _record(conn, message, xml, alert_id)
    return CapResult(alert_id, "updated", f"alert {alert_id} updated")
