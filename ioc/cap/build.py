"""Write a :class:`CapMessage` as a CAP 1.2 XML document (elements in the schema's order)."""

from __future__ import annotations

from lxml import etree

from ioc.cap.model import NS, Area, CapMessage, Info, format_sent


def _sub(parent: etree._Element, name: str, text: str | None) -> None:
    if text is not None and text != "":
        etree.SubElement(parent, f"{{{NS}}}{name}").text = text


def _pair(lat: float, lon: float) -> str:
    return f"{lat:.5f},{lon:.5f}"


def _area(parent: etree._Element, area: Area) -> None:
    node = etree.SubElement(parent, f"{{{NS}}}area")
    _sub(node, "areaDesc", area.description)
    for ring in area.polygons:
        _sub(node, "polygon", " ".join(_pair(lat, lon) for lat, lon in ring))
    for lat, lon, radius in area.circles:
        _sub(node, "circle", f"{_pair(lat, lon)} {radius:g}")
    for name, value in area.geocodes:
        code = etree.SubElement(node, f"{{{NS}}}geocode")
        _sub(code, "valueName", name)
        _sub(code, "value", value)


def _info(parent: etree._Element, info: Info) -> None:
    node = etree.SubElement(parent, f"{{{NS}}}info")
    _sub(node, "language", info.language)
    for category in info.categories:
        _sub(node, "category", category)
    _sub(node, "event", info.event)
    _sub(node, "urgency", info.urgency)
    _sub(node, "severity", info.severity)
    _sub(node, "certainty", info.certainty)
    if info.expires is not None:
        _sub(node, "expires", format_sent(info.expires))
    _sub(node, "senderName", info.sender_name)
    _sub(node, "headline", info.headline)
    _sub(node, "description", info.description)
    _sub(node, "instruction", info.instruction)
    _sub(node, "web", info.web)
    for name, value in info.parameters:
        param = etree.SubElement(node, f"{{{NS}}}parameter")
        _sub(param, "valueName", name)
        _sub(param, "value", value)
    for area in info.areas:
        _area(node, area)


def to_xml(message: CapMessage) -> bytes:
    root = etree.Element(f"{{{NS}}}alert", nsmap={None: NS})
    _sub(root, "identifier", message.identifier)
    _sub(root, "sender", message.sender)
    _sub(root, "sent", format_sent(message.sent))
    _sub(root, "status", message.status)
    _sub(root, "msgType", message.msg_type)
    _sub(root, "source", message.source)
    _sub(root, "scope", message.scope)
    _sub(root, "restriction", message.restriction)
    _sub(root, "note", message.note)
    if message.references:
        _sub(root, "references", " ".join(str(r) for r in message.references))
    for info in message.infos:
        _info(root, info)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
