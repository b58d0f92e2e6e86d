"""Export an IOC alert as CAP 1.2: a read-only view that stores and issues nothing.

Reading is not issuing (docs/warnings.md): ``GET /api/alerts/{id}/cap`` used to store each export as
a sent CAP message, which the radio service then played. Now an export is computed from the alert's
current state only: its identifier is ``<alert id>.<seq>`` and its ``sent`` is the alert's last
change, so reading twice gives the same document and reading never writes. When warnings were
*issued* for the alert (:mod:`ioc.warnings.store`), the export references them and is an ``Update``
(a ``Cancel`` once the alert is dismissed); otherwise it is an ``Alert``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg

from ioc.cap.build import to_xml
from ioc.cap.model import Area, CapMessage, Info, Reference

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
        identifier=f"{alert['id']}.{alert['seq']}",
        sender=sender,
        sent=sent,
        status=cap_status,
        msg_type=msg_type,
        scope="Restricted" if restricted else "Public",
        restriction="Chỉ dành cho cơ quan chức năng (IOC)" if restricted else None,
        references=list(previous),
        infos=infos,
    )


def export_alert(conn: psycopg.Connection, alert_id: int, *, sender: str, sender_name: str,
                 now: datetime | None = None) -> bytes:  # fmt: skip
    """The CAP document for the alert's current state; nothing is written (``now`` is unused, kept for callers)."""
    cur = conn.execute("SELECT * FROM alerts WHERE id = %s", (alert_id,))
    row = cur.fetchone()
    if row is None:
        raise LookupError(f"alert {alert_id} does not exist")
    alert = dict(zip([d.name for d in cur.description], row, strict=True))
    issued = conn.execute(
        "SELECT sender, identifier, sent_text FROM cap_messages WHERE alert_id = %s AND issued_at IS NOT NULL"
        " ORDER BY id",
        (alert_id,),
    ).fetchall()
    unit: dict[str, Any] = {}
    if alert["unit_id"]:
        found = conn.execute("SELECT name, geometry FROM units WHERE id = %s", (alert["unit_id"],)).fetchone()
        if found:
            unit = {"name": found[0], "geometry": found[1]}
    previous = [Reference(s, i, t) for s, i, t in issued]
    message = build_alert_message(alert, unit, previous, sender=sender, sent=alert["updated_at"],
                                  sender_name=sender_name)  # fmt: skip
    return to_xml(message)
