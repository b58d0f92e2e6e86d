"""Read a received CAP 1.2 document: schema first, then the rules the schema cannot express.

Every problem is collected and reported with its place, so the sender can fix the document in one
round: an identifier with spaces, an Update without ``references``, an open polygon ring, a
coordinate outside the globe...
"""

from __future__ import annotations

import re
from datetime import datetime

from lxml import etree

from ioc.cap.model import NS, Area, CapMessage, Info, Reference
from ioc.cap.schema import CapError, CapProblem, parse_document, schema_problems

# CAP 1.2 §3.2.1: identifier and sender contain no spaces, commas or restricted characters (< and &).
_TOKEN = re.compile(r"^[^\s,<&]+$")
_SENT = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[-+]\d\d:\d\d$")


def _q(name: str) -> str:
    return f"{{{NS}}}{name}"


def _text(node: etree._Element, name: str) -> str | None:
    child = node.find(_q(name))
    return child.text.strip() if child is not None and child.text else None


def _texts(node: etree._Element, name: str) -> list[str]:
    return [c.text.strip() for c in node.findall(_q(name)) if c.text]


def _point(text: str, where: str, line: int | None, problems: list[CapProblem]) -> tuple[float, float] | None:
    try:
        lat_s, lon_s = text.split(",")
        lat, lon = float(lat_s), float(lon_s)
    except ValueError:
        problems.append(CapProblem(f"{where}: {text!r} is not 'latitude,longitude'", line))
        return None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        problems.append(CapProblem(f"{where}: {text!r} is outside WGS 84 ranges", line))
        return None
    return lat, lon


def _area(node: etree._Element, path: str, problems: list[CapProblem]) -> Area:
    polygons = []
    for i, poly in enumerate(node.findall(_q("polygon"))):
        where = f"{path}/polygon[{i + 1}]"
        points = [_point(p, where, poly.sourceline, problems) for p in (poly.text or "").split()]
        ring = [p for p in points if p is not None]
        if len(points) < 4:
            problems.append(CapProblem(f"{where}: a polygon needs at least 4 points", poly.sourceline))
        elif ring and ring[0] != ring[-1]:
            problems.append(CapProblem(f"{where}: the first and last points must be the same", poly.sourceline))
        polygons.append(ring)
    circles = []
    for i, circle in enumerate(node.findall(_q("circle"))):
        where = f"{path}/circle[{i + 1}]"
        parts = (circle.text or "").split()
        center = _point(parts[0], where, circle.sourceline, problems) if parts else None
        try:
            radius = float(parts[1]) if len(parts) == 2 else -1.0
        except ValueError:
            radius = -1.0
        if center is None or radius < 0:
            problems.append(CapProblem(f"{where}: expected 'latitude,longitude radius_km'", circle.sourceline))
            continue
        circles.append((center[0], center[1], radius))
    geocodes = [(_text(g, "valueName") or "", _text(g, "value") or "") for g in node.findall(_q("geocode"))]
    return Area(_text(node, "areaDesc") or "", polygons, circles, geocodes)


# Longest accepted text per element (CAP 1.2 §3.2.2 asks headlines to stay under 160 characters):
# a title travels in live events, which PostgreSQL's NOTIFY caps at 8000 bytes.
MAX_CHARS = {"headline": 500, "event": 200, "senderName": 200, "areaDesc": 2000}


def _lengths(node: etree._Element, path: str, problems: list[CapProblem]) -> None:
    for name, limit in MAX_CHARS.items():
        for child in node.iter(_q(name)):
            if child.text and len(child.text) > limit:
                problems.append(CapProblem(f"{path}/{name}: {len(child.text)} characters; at most {limit}",
                                           child.sourceline))  # fmt: skip


def _info(node: etree._Element, index: int, problems: list[CapProblem]) -> Info:
    path = f"/alert/info[{index}]"
    _lengths(node, path, problems)
    expires_text = _text(node, "expires")
    areas = [_area(a, f"{path}/area[{i + 1}]", problems) for i, a in enumerate(node.findall(_q("area")))]
    return Info(
        language=_text(node, "language") or "en-US",
        categories=_texts(node, "category"),
        event=_text(node, "event") or "",
        urgency=_text(node, "urgency") or "Unknown",
        severity=_text(node, "severity") or "Unknown",
        certainty=_text(node, "certainty") or "Unknown",
        headline=_text(node, "headline"),
        description=_text(node, "description"),
        instruction=_text(node, "instruction"),
        sender_name=_text(node, "senderName"),
        web=_text(node, "web"),
        expires=datetime.fromisoformat(expires_text) if expires_text else None,
        parameters=[(_text(p, "valueName") or "", _text(p, "value") or "") for p in node.findall(_q("parameter"))],
        areas=areas,
    )


def _references(text: str | None, line: int | None, problems: list[CapProblem]) -> list[Reference]:
    refs = []
    for item in (text or "").split():
        parts = item.split(",")
        if len(parts) != 3 or not _SENT.match(parts[2]):
            problems.append(CapProblem(f"references: {item!r} is not 'sender,identifier,sent'", line))
            continue
        refs.append(Reference(*parts))
    return refs


def parse_cap(data: bytes) -> CapMessage:
    """The message in ``data``, or :class:`CapError` listing every problem."""
    root = parse_document(data)
    if root.tag != _q("alert"):
        raise CapError([CapProblem(f"root element must be <alert> in namespace {NS}, not {root.tag}", root.sourceline)])
    problems = schema_problems(root)
    if problems:
        raise CapError(problems)
    for name in ("identifier", "sender"):
        value = _text(root, name) or ""
        if not _TOKEN.match(value):
            node = root.find(_q(name))
            problems.append(CapProblem(f"{name} must not contain spaces, commas, '<' or '&'", node.sourceline))
    msg_type = _text(root, "msgType") or ""
    ref_node = root.find(_q("references"))
    references = _references(_text(root, "references"), ref_node.sourceline if ref_node is not None else None, problems)
    if msg_type in ("Update", "Cancel", "Ack", "Error") and not references:
        problems.append(CapProblem(f"a {msg_type} message must name the message(s) it refers to in <references>"))
    scope = _text(root, "scope") or ""
    if scope == "Restricted" and not _text(root, "restriction"):
        problems.append(CapProblem("scope Restricted needs a <restriction>"))
    infos = [_info(node, i + 1, problems) for i, node in enumerate(root.findall(_q("info")))]
    if msg_type in ("Alert", "Update") and not infos:
        problems.append(CapProblem(f"a {msg_type} message needs at least one <info>"))
    if problems:
        raise CapError(problems)
    return CapMessage(
        identifier=_text(root, "identifier") or "",
        sender=_text(root, "sender") or "",
        sent=datetime.fromisoformat(_text(root, "sent") or ""),
        status=_text(root, "status") or "",
        msg_type=msg_type,
        scope=scope,
        infos=infos,
        references=references,
        restriction=_text(root, "restriction"),
        note=_text(root, "note"),
        source=_text(root, "source"),
    )
