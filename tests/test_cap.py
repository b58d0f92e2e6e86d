"""CAP 1.2: exports validate against the OASIS schema and chain their references; imports of an
Alert, an Update and a Cancel end as one alert in the right state; malformed documents are refused
with a precise reason."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from lxml import etree
from psycopg.types.json import Jsonb

from ioc.alerts.lifecycle import act
from ioc.alerts.model import AlertDraft, Severity
from ioc.alerts.store import raise_alerts
from ioc.cap.exporter import export_alert
from ioc.cap.importer import apply_cap
from ioc.cap.parse import parse_cap
from ioc.cap.schema import CapError, cap_schema

T0 = datetime(2026, 10, 20, 1, 0, tzinfo=UTC)
SENDER = "ioc@bactramy.example.vn"
SQUARE_KOT = {
    "type": "Polygon",
    "coordinates": [[[108.0, 15.4], [108.1, 15.4], [108.1, 15.5], [108.0, 15.5], [108.0, 15.4]]],
}
SQUARE_KA = {
    "type": "Polygon",
    "coordinates": [[[108.3, 15.1], [108.4, 15.1], [108.4, 15.2], [108.3, 15.2], [108.3, 15.1]]],
}


@pytest.fixture()
def conn(db: psycopg.Connection) -> psycopg.Connection:
    db.execute(
        "INSERT INTO units (id, name, name_search, level, parent_id, geometry) VALUES"
        " ('cap-huyen', 'Huyện thử', 'huyen thu', 'district', NULL, NULL),"
        " ('cap-kot', 'Trà Kót', 'tra kot', 'commune', 'cap-huyen', %s),"
        " ('cap-ka', 'Trà Ka', 'tra ka', 'commune', 'cap-huyen', %s)",
        (Jsonb(SQUARE_KOT), Jsonb(SQUARE_KA)),
    )
    return db


def _valid(xml: bytes) -> etree._Element:
    root = etree.fromstring(xml)
    assert cap_schema().validate(root), cap_schema().error_log
    return root


def _text(root: etree._Element, name: str) -> str | None:
    node = root.find(f"{{urn:oasis:names:tc:emergency:cap:1.2}}{name}")
    return node.text if node is not None else None


def test_export_validates_stores_nothing_and_chains_only_issued_messages(conn: psycopg.Connection) -> None:
    title = "Mực nước vượt mức báo động tại cầu Trà Kót"
    draft = AlertDraft(kind="sensor.level", severity=Severity.SEVERE, title=title,
                       at=T0, unit_id="cap-kot", dedup_key="wl-1", lat=15.45, lon=108.05)  # fmt: skip
    alert = raise_alerts(conn, [draft], now=T0)[0]
    stored = conn.execute("SELECT count(*) FROM cap_messages").fetchone()
    first = export_alert(conn, alert.id, sender=SENDER, sender_name="IOC Bắc Trà My", now=T0)
    root = _valid(first)
    assert (_text(root, "msgType"), _text(root, "status"), _text(root, "scope")) == ("Alert", "Actual", "Public")
    assert _text(root, "identifier") == f"{alert.id}.{alert.seq}"
    assert "Trà Kót" in first.decode() and "vi-VN" in first.decode() and "en-US" in first.decode()
    assert export_alert(conn, alert.id, sender=SENDER, sender_name="IOC Bắc Trà My",
                        now=T0 + timedelta(minutes=1)) == first  # same state, same document
    assert conn.execute("SELECT count(*) FROM cap_messages").fetchone() == stored  # reading stores nothing

    # Once a warning was issued for the alert, an export references it; a dismissed alert is a Cancel.
    conn.execute(
        "INSERT INTO cap_messages (direction, sender, identifier, sent, sent_text, msg_type, status, scope, alert_id,"
        " xml, issued_by, issued_at) VALUES ('out', %s, 'ioc-w1-1', %s, '2026-10-20T01:00:00-00:00', 'Alert',"
        " 'Actual', 'Public', %s, '', 'op', %s)",
        (SENDER, T0, alert.id, T0),
    )
    act(conn, alert.id, "dismiss", actor="op", now=T0 + timedelta(minutes=4), note="cảm biến lỗi")
    cancel = _valid(export_alert(conn, alert.id, sender=SENDER, sender_name="IOC"))
    assert _text(cancel, "msgType") == "Cancel"
    assert _text(cancel, "references") == f"{SENDER},ioc-w1-1,2026-10-20T01:00:00-00:00"
    # What we export, we can read back.
    assert parse_cap(etree.tostring(cancel)).msg_type == "Cancel"


def _cap(identifier: str, msg_type: str = "Alert", *, status: str = "Actual", references: str | None = None,
         severity: str = "Severe", headline: str = "Lũ quét trên sông Trường",
         polygon: str | None = None) -> bytes:  # fmt: skip
    polygon = polygon or "15.41,108.01 15.41,108.09 15.49,108.09 15.49,108.01 15.41,108.01"
    refs = f"<references>{references}</references>" if references else ""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">
  <identifier>{identifier}</identifier>
  <sender>kttv@quangnam.gov.vn</sender>
  <sent>2026-10-20T08:00:00+07:00</sent>
  <status>{status}</status>
  <msgType>{msg_type}</msgType>
  <scope>Public</scope>
  {refs}
  <info>
    <language>vi-VN</language>
    <category>Met</category>
    <event>Lũ quét</event>
    <urgency>Immediate</urgency>
    <severity>{severity}</severity>
    <certainty>Likely</certainty>
    <headline>{headline}</headline>
    <description>Nguy cơ lũ quét, sạt lở đất tại các xã vùng núi.</description>
    <instruction>Di dời người dân khỏi khu vực ven suối.</instruction>
    <area><areaDesc>Xã Trà Kót</areaDesc><polygon>{polygon}</polygon></area>
  </info>
</alert>""".encode()


def test_import_alert_update_cancel_is_one_alert_in_the_final_state(conn: psycopg.Connection) -> None:
    ref = "kttv@quangnam.gov.vn,KTTV-1,2026-10-20T08:00:00+07:00"
    created = apply_cap(conn, parse_cap(_cap("KTTV-1")), _cap("KTTV-1"), now=T0)
    assert created.action == "created"
    row = conn.execute(
        "SELECT unit_id, severity, kind, evidence FROM alerts WHERE id = %s", (created.alert_id,)
    ).fetchone()
    assert row[:3] == ("cap-kot", "severe", "cap.met") and row[3]["cap"]["public"] is True
    assert apply_cap(conn, parse_cap(_cap("KTTV-1")), _cap("KTTV-1"), now=T0).action == "duplicate"

    update = _cap("KTTV-2", "Update", references=ref, severity="Extreme", headline="Lũ quét đang xảy ra")
    updated = apply_cap(conn, parse_cap(update), update, now=T0 + timedelta(minutes=10))
    assert (updated.action, updated.alert_id) == ("updated", created.alert_id)

    cancel = _cap("KTTV-3", "Cancel", references=f"{ref} kttv@quangnam.gov.vn,KTTV-2,2026-10-20T08:00:00+07:00")
    cancelled = apply_cap(conn, parse_cap(cancel), cancel, now=T0 + timedelta(minutes=20))
    assert (cancelled.action, cancelled.alert_id) == ("cancelled", created.alert_id)
    final = conn.execute("SELECT status, severity, title FROM alerts WHERE id = %s", (created.alert_id,)).fetchone()
    assert final == ("dismissed", "critical", "Lũ quét đang xảy ra")
    assert conn.execute("SELECT count(*) FROM alerts WHERE kind = 'cap.met'").fetchone()[0] == 1


def test_exercise_is_marked_and_never_public_and_an_area_over_two_communes_goes_to_their_parent(
    conn: psycopg.Connection,
) -> None:
    wide = "15.15,108.05 15.15,108.35 15.45,108.35 15.45,108.05 15.15,108.05"
    xml = _cap("KTTV-9", status="Exercise", polygon=wide)
    result = apply_cap(conn, parse_cap(xml), xml, now=T0)
    title, unit, evidence = conn.execute(
        "SELECT title, unit_id, evidence FROM alerts WHERE id = %s", (result.alert_id,)
    ).fetchone()
    assert title.startswith("[DIỄN TẬP]") and evidence["cap"]["public"] is False and unit == "cap-huyen"


MALFORMED = {
    "not xml": (b"this is not xml", "not well-formed"),
    "wrong root": (b'<feed xmlns="http://www.w3.org/2005/Atom"/>', "root element must be <alert>"),
    "missing identifier": (_cap("X").replace(b"<identifier>X</identifier>", b""), "identifier"),
    "unknown status": (_cap("X", status="Real"), "status"),
    "sent in Z": (_cap("X").replace(b"2026-10-20T08:00:00+07:00", b"2026-10-20T01:00:00Z"), "sent"),
    "update without references": (_cap("X", "Update"), "must name the message(s) it refers to"),
    "identifier with a space": (_cap("X Y"), "identifier must not contain spaces"),
    "open polygon": (_cap("X", polygon="15.4,108.0 15.4,108.1 15.5,108.1 15.5,108.05"), "first and last points"),
    "latitude out of range": (_cap("X", polygon="95,108.0 15.4,108.1 15.5,108.1 95,108.0"), "outside WGS 84"),
    "external entity": (
        b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        b'<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>&x;</identifier></alert>',
        "DOCTYPE and entity declarations are not allowed",
    ),
    "bad severity": (_cap("X", severity="Huge"), "severity"),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_cap_is_refused_with_a_reason(name: str) -> None:
    data, reason = MALFORMED[name]
    with pytest.raises(CapError) as caught:
        parse_cap(data)
    assert reason in str(caught.value), str(caught.value)


def test_cancel_of_an_unknown_message_is_refused(conn: psycopg.Connection) -> None:
    xml = _cap("KTTV-77", "Cancel", references="kttv@quangnam.gov.vn,NOPE,2026-10-20T08:00:00+07:00")
    with pytest.raises(CapError, match="none of the referenced messages is known"):
        apply_cap(conn, parse_cap(xml), xml, now=T0)


def test_an_update_of_an_unknown_message_opens_a_new_alert_with_a_note(conn: psycopg.Connection) -> None:
    xml = _cap("KTTV-88", "Update", references="kttv@quangnam.gov.vn,NEVER-SEEN,2026-10-20T08:00:00+07:00")
    result = apply_cap(conn, parse_cap(xml), xml, now=T0)
    assert result.action == "created" and "unknown message" in result.message
    notes = [r[0] for r in conn.execute("SELECT note FROM alert_audit WHERE alert_id = %s", (result.alert_id,))]
    assert any("NEVER-SEEN" in (n or "") for n in notes)


def test_a_signed_document_is_kept_byte_for_byte(conn: psycopg.Connection) -> None:
    signature = (b'<Signature xmlns="http://www.w3.org/2000/09/xmldsig#"><SignedInfo/>'
                 b"<SignatureValue>c2lnbmVk</SignatureValue></Signature>")  # fmt: skip
    xml = _cap("KTTV-SIGNED").replace(b"</alert>", signature + b"\n</alert>")
    apply_cap(conn, parse_cap(xml), xml, now=T0)
    stored = conn.execute("SELECT xml FROM cap_messages WHERE identifier = 'KTTV-SIGNED'").fetchone()
    assert bytes(stored[0]) == xml  # the signature stays verifiable
