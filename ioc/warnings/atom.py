"""An Atom feed (RFC 4287) of the issued public warnings, for aggregators (e.g. a national CAP
aggregator or Google Public Alerts): one entry per issued Actual, Public CAP message, newest first,
linking to the CAP document. Written with lxml (already a dependency) because the feed is a dozen
elements; a feed library would add a dependency for no gain."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import psycopg
from lxml import etree

ATOM = "http://www.w3.org/2005/Atom"


def _sub(parent: etree._Element, name: str, text: str | None = None, **attrs: str) -> etree._Element:
    node = etree.SubElement(parent, f"{{{ATOM}}}{name}", **attrs)
    if text is not None:
        node.text = text
    return node


def recent_public(conn: psycopg.Connection, limit: int = 50) -> list[dict[str, Any]]:
    cur = conn.execute(
        """SELECT m.id, m.sender, m.identifier, m.msg_type, m.sent, m.issued_at, w.id AS warning_id,
                  w.content->>'headline' AS headline, w.content->>'severity' AS severity, w.category
           FROM cap_messages m JOIN warnings w ON w.id = m.warning_id
           WHERE m.issued_at IS NOT NULL AND m.status = 'Actual' AND m.scope = 'Public'
           ORDER BY m.issued_at DESC, m.id DESC LIMIT %s""",
        (limit,),
    )
    names = [d.name for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def feed(entries: list[dict[str, Any]], *, base_url: str, title: str, feed_id: str) -> bytes:
    root = etree.Element(f"{{{ATOM}}}feed", nsmap={None: ATOM})
    _sub(root, "id", feed_id)
    _sub(root, "title", title)
    updated = max((e["issued_at"] for e in entries), default=datetime(2000, 1, 1, tzinfo=UTC))
    _sub(root, "updated", updated.isoformat())
    _sub(root, "link", rel="self", href=f"{base_url}/api/warnings/feed.atom")
    author = _sub(root, "author")
    _sub(author, "name", title)
    for e in entries:
        entry = _sub(root, "entry")
        _sub(entry, "id", f"urn:cap:{e['sender']}:{e['identifier']}")
        prefix = {"Update": "[Cập nhật] ", "Cancel": "[Hủy] "}.get(e["msg_type"], "")
        _sub(entry, "title", prefix + (e["headline"] or e["identifier"]))
        _sub(entry, "updated", e["issued_at"].isoformat())
        _sub(entry, "published", e["sent"].isoformat())
        _sub(entry, "category", term=e["category"])
        _sub(entry, "summary", f"{e['msg_type']} · {e['severity']}")
        _sub(entry, "link", rel="alternate", type="application/cap+xml",
             href=f"{base_url}/api/warnings/messages/{e['id']}.cap")  # fmt: skip
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
