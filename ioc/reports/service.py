"""Accepting a citizen report: where it is, whose it is, when it is due, and the alert for it.

One transaction stores the report, its photos' records, and the alert that puts it in front of
the commune's staff and the district (``report.new``, de-duplicated by the report's id). The
location comes from the form, else from the first photo's EXIF GPS; the commune is the unit whose
polygon contains it (none: the district handles it). The due time is the category's SLA.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from ioc.alerts.model import AlertDraft, Severity
from ioc.alerts.store import raise_alerts
from ioc.geo import UnitLocator
from ioc.reports.codes import new_code
from ioc.reports.media import StoredPhoto, StoredVideo
from ioc.text import fold, nfc


@dataclass(frozen=True)
class Category:
    id: str
    name: str
    name_en: str
    sla_hours: float
    severity: str
    privacy: str = "public_hidden"

    @classmethod
    def of(cls, category: Any) -> Category:
        """From the district configuration's ``ReportCategory``."""
        return cls(category.id, category.name, category.name_en, category.sla_hours, category.severity,
                   category.privacy)  # fmt: skip


@dataclass(frozen=True)
class Submission:
    category: str
    description: str
    lat: float | None = None
    lon: float | None = None
    address: str | None = None
    reporter_name: str | None = None
    reporter_phone: str | None = None
    reporter_email: str | None = None
    consent: bool = False
    source: str = "web"
    source_ref: str | None = None


@dataclass(frozen=True)
class Accepted:
    report_id: int
    tracking_code: str
    unit_id: str | None
    due_at: datetime
    alert_id: int | None
    location_from: str  # "form", "photo" or "none"


class UnknownCategory(ValueError):
    pass


def submit(
    conn: psycopg.Connection,
    submission: Submission,
    photos: list[StoredPhoto],
    *,
    categories: dict[str, Category],
    locator: UnitLocator,
    now: datetime,
    videos: list[StoredVideo] | None = None,
) -> Accepted:
    category = categories.get(submission.category)
    if category is None:
        raise UnknownCategory(f"category {submission.category!r} is not one of: {', '.join(sorted(categories))}")
    lat, lon, location_from = submission.lat, submission.lon, "form"
    if lat is None or lon is None:
        gps = next((p.gps for p in photos if p.gps), None)
        lat, lon, location_from = (gps[0], gps[1], "photo") if gps else (None, None, "none")
    unit_id = locator.unit_at(lon, lat) if lat is not None and lon is not None else None
    due = now + timedelta(hours=category.sla_hours)
    description = nfc(submission.description.strip())
    for _ in range(5):  # a code collision is astronomically rare; try again rather than fail
        code = new_code()
        with conn.transaction():
            row = conn.execute(
                """INSERT INTO reports (tracking_code, category, description, description_search, lat, lon, address,
                       unit_id, source, source_ref, reporter_name, reporter_phone, reporter_email, consent, due_at,
                       created_at, updated_at, privacy)
                   VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
                   ON CONFLICT (tracking_code) DO NOTHING RETURNING id""",
                (code, category.id, description, fold(description), lat, lon,
                 nfc(submission.address) if submission.address else None, unit_id, submission.source,
                 submission.source_ref, nfc(submission.reporter_name) if submission.reporter_name else None,
                 submission.reporter_phone, submission.reporter_email, submission.consent, due, now, now,
                 category.privacy),
            ).fetchone()  # fmt: skip
        if row:
            break
    else:  # pragma: no cover
        raise RuntimeError("could not allocate a tracking code")
    report_id = row[0]
    for photo in photos:
        conn.execute(
            """INSERT INTO report_media (report_id, sha256, kind, mime, bytes, width, height, storage_key, thumb_key)
               VALUES (%s, %s, 'photo', %s, %s, %s, %s, %s, %s)""",
            (report_id, photo.sha256, photo.mime, photo.bytes, photo.width, photo.height, photo.storage_key,
             photo.thumb_key),
        )  # fmt: skip
    for video in videos or []:
        conn.execute(
            """INSERT INTO report_media (report_id, sha256, kind, mime, bytes, width, height, duration_s, storage_key,
                                         thumb_key)
               VALUES (%s, %s, 'video', %s, %s, %s, %s, %s, %s, %s)""",
            (report_id, video.sha256, video.mime, video.bytes, video.width, video.height, video.duration_s,
             video.storage_key, video.thumb_key),
        )  # fmt: skip
    evidence: dict[str, Any] = {"report_id": report_id, "tracking_code": code, "category": category.id,
                                "description": description[:300],
                                "photos": [p.thumb_key for p in photos],
                                "videos": [v.thumb_key for v in videos or []]}  # fmt: skip
    # An IOC-only report (about local officials) raises a district-level alert: no commune sees it.
    alert_unit = None if category.privacy == "ioc_only" else unit_id
    [alert] = raise_alerts(
        conn,
        [AlertDraft(kind="report.new", severity=Severity(category.severity), title=f"Phản ánh mới: {category.name}",
                    at=now, unit_id=alert_unit, dedup_key=f"report:{report_id}", description=description[:1000],
                    lat=lat, lon=lon, evidence=evidence, source_ref={"report": report_id}, policy="default")],
        now=now,
    )  # fmt: skip
    conn.execute("UPDATE reports SET alert_id = %s WHERE id = %s", (alert.id, report_id))
    conn.execute(
        "INSERT INTO alert_audit (alert_id, at, actor, action, note, data)"
        " VALUES (%s, %s, 'citizen', 'report', %s, %s)",
        (alert.id, now, f"phản ánh {code}", Jsonb({"report_id": report_id})),
    )
    return Accepted(report_id, code, unit_id, due, alert.id, location_from)


def public_view(conn: psycopg.Connection, code: str) -> dict[str, Any] | None:
    """What anyone holding the code may see: no personal data, no internal notes."""
    row = conn.execute(
        """SELECT r.tracking_code, r.category, r.status, r.created_at, r.updated_at, r.due_at, r.resolved_at,
                  r.rating, u.name, (SELECT count(*) FROM report_media m WHERE m.report_id = r.id)
           FROM reports r LEFT JOIN units u ON u.id = r.unit_id WHERE r.tracking_code = %s""",
        (code,),
    ).fetchone()
    if row is None:
        return None
    keys = ("tracking_code", "category", "status", "created_at", "updated_at", "due_at", "resolved_at", "rating",
            "unit_name", "photos")  # fmt: skip
    view = dict(zip(keys, row, strict=True))
    view["replies"] = [
        {"at": at, "text": text}
        for at, text in conn.execute(
            "SELECT p.at, p.text FROM report_replies p JOIN reports r ON r.id = p.report_id"
            " WHERE r.tracking_code = %s AND p.public ORDER BY p.id",
            (code,),
        ).fetchall()
    ]
    return view
