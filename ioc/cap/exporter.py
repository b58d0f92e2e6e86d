"""Export an IOC alert as CAP 1.2, chaining Update and Cancel messages to what was sent before.

The first export of an alert is an ``Alert``; later exports after a change are ``Update``s whose
``references`` list every earlier message of the alert; a dismissed (false alarm) alert becomes a
``Cancel``. Exporting again without a change returns the same document. Each message sent is kept
in ``cap_messages`` so the chain survives restarts.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg

from ioc.cap.build import to_xml
from ioc.cap.model import Area, CapMessage, Info, Reference, format_sent

# kind -> (Vietnamese event, English event, CAP category, certainty)
KIND_LABELS: dict[str, tuple[str, str, str, str]] = {
    "camera.intrusion": ("Xâm nhập trái phép", "Intrusion", "Security", "Observed"),
    "camera.loitering": ("Lảng vảng bất thường", "Loitering", "Security", "Observed"),
    "camera.crowd": ("Tụ tập đông người", "Crowd", "Safety", "Observed"),
    "camera.congestion": ("Ùn tắc giao thông", "Traffic congestion", "Transport", "Observed"),
    "camera.tamper": ("Camera bị che hoặc phá hoại", "Camera tampering", "Security", "Observed"),
    "device.offline": ("Thiết bị mất kết nối", "Device offline", "Infra", "Observed"),
    "sensor.level": ("Mực nước cao", "High water level", "Met", "Observed"),
    "sensor.rain": ("Mưa lớn", "Heavy rain", "Met", "Observed"),
    "report.new": ("Phản ánh của người dân", "Citizen report", "Other", "Likely"),
}
SEVERITY_TO_CAP = {
    "critical": "Extreme",
    "severe": "Severe",
    "moderate": "Moderate",
    "minor": "Minor",
    "info": "Unknown",
}
RESTRICTED_PREFIXES = ("camera.",)  # camera evidence concerns people: not for the public


def _urgency(severity: str, status: str) -> str:
    if status in ("resolved", "closed"):
        return "Past"
    return {"critical": "Immediate", "severe": "Immediate", "moderate": "Expected"}.get(severity, "Unknown")


def _unit_area(unit_name: str | None, geometry: dict | None, lat: float | None, lon: float | None) -> Area:
    polygons: list[list[tuple[float, float]]] = []
    if geometry and geometry.get("type") in ("Polygon", "MultiPolygon"):
        shells = [geometry["coordinates"]] if geometry["type"] == "Polygon" else geometry["coordinates"]
        for shell in shells:
            polygons.append([(round(p[1], 5), round(p[0], 5)) for p in shell[0]])
    circles = [(lat, lon, 0.5)] if lat is not None and lon is not None else []
    return Area(unit_name or "Toàn địa bàn", polygons, circles)


def build_alert_message(alert: dict[str, Any], unit: dict[str, Any], previous: list[Reference], *,
                        sender: str, sent: datetime, sender_name: str) -> CapMessage:  # fmt: skip
    """The CAP message for ``alert`` (a row of ``alerts`` as a dict) given the messages sent before."""
    kind = alert["kind"]
    vi_event, en_event, category, certainty = KIND_LABELS.get(kind, (kind, kind, "Other", "Possible"))
    cap_status = (alert.get("evidence") or {}).get("cap", {}).get("status", "Actual")
    msg_type = "Alert" if not previous else "Update"
    if alert["status"] == "dismissed":
        msg_type = "Cancel" if previous else "Alert"
    restricted = kind.startswith(RESTRICTED_PREFIXES)
    area = _unit_area(unit.get("name"), unit.get("geometry"), alert.get("lat"), alert.get("lon"))
    common = {
        "categories": [category],
        "urgency": _urgency(alert["severity"], alert["status"]),
        "severity": SEVERITY_TO_CAP.get(alert["severity"], "Unknown"),
        "certainty": certainty,
        "sender_name": sender_name,
        "parameters": [
            ("ioc:alert_id", str(alert["id"])),
            ("ioc:status", alert["status"]),
            ("ioc:count", str(alert["count"])),
        ],  # fmt: skip
        "areas": [area],
    }
    infos = [
        Info(language="vi-VN", event=vi_event, headline=alert["title"], description=alert.get("description"), **common),
        Info(language="en-US", event=en_event, headline=en_event, **common),
    ]
    return CapMessage(
        identifier=f"{alert['id']}.{len(previous) + 1}",
        sender=sender,
        sent=sent,
        status=cap_status,
        msg_type=msg_type,
        scope="Restricted" if restricted else "Public",
        restriction="Chỉ dành cho cơ quan chức năng (IOC)" if restricted else None,
        references=list(previous),
        infos=infos,
    )


def export_alert(conn: psycopg.Connection, alert_id: int, *, sender: str, sender_name: str, now: datetime) -> bytes:
    """The CAP document for the alert's current state; stored so that the next one references it."""
    cur = conn.execute("SELECT * FROM alerts WHERE id = %s", (alert_id,))
    row = cur.fetchone()
    if row is None:
        raise LookupError(f"alert {alert_id} does not exist")
    alert = dict(zip([d.name for d in cur.description], row, strict=True))
    sent_rows = conn.execute(
        "SELECT sender, identifier, sent_text, alert_seq, xml FROM cap_messages"
        " WHERE alert_id = %s AND direction = 'out' ORDER BY id",
        (alert_id,),
    ).fetchall()
    if sent_rows and sent_rows[-1][3] == alert["seq"]:
        return bytes(sent_rows[-1][4])  # nothing changed since the last export
    unit: dict[str, Any] = {}
    if alert["unit_id"]:
        found = conn.execute("SELECT name, geometry FROM units WHERE id = %s", (alert["unit_id"],)).fetchone()
        if found:
            unit = {"name": found[0], "geometry": found[1]}
    previous = [Reference(s, i, t) for s, i, t, _, _ in sent_rows]
    message = build_alert_message(alert, unit, previous, sender=sender, sent=now, sender_name=sender_name)
    xml = to_xml(message)
    conn.execute(
        """INSERT INTO cap_messages (direction, sender, identifier, sent, sent_text, msg_type, status, scope,
                                     alert_id, alert_seq, refs, xml)
           VALUES ('out', %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)""",
        (sender, message.identifier, now, format_sent(now), message.msg_type, message.status, message.scope,
         alert_id, alert["seq"], [str(r) for r in previous], xml),
    )  # fmt: skip
    return xml
