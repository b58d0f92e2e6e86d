"""Accepting a citizen report: where it is, whose it is, when it is due, and the alert for it.

One transaction stores the report, its photos' records, and the alert that puts it in front of
the commune's staff and the district (``report.new``, de-duplicated by the report's id). The
location comes from the form, else from the first photo's EXIF GPS; the commune is the unit whose
polygon contains it (none: the district handles it). The due time is the category's SLA.
"""

from __future__ import annotations

import contextlib
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
    #: What public lists show: "public", "coarse" or "ioc_only" (see ioc.reports.public).
    public_listing: str = "coarse"
    #: Public lists never show the text.
    sensitive: bool = False

    @classmethod
    def of(cls, category: Any) -> Category:
        """From the district configuration's ``ReportCategory``."""
        return cls(category.id, category.name, category.name_en, category.sla_hours, category.severity,
                   category.privacy, category.public_listing, category.sensitive)  # fmt: skip

    @property
    def listing(self) -> str:
        """The public listing level in force: an IOC-only category is never listed, whatever it says."""
        return "ioc_only" if self.privacy == "ioc_only" else self.public_listing


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
                   ON CONFLICT (tracking_code) DO NOTHING RETURNING id, public_id""",
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
    report_id, public_id = row[0], f"YC-{row[1][:4]}-{row[1][4:]}"
    if lat is not None and lon is not None:
        duplicate = likely_duplicate(conn, report_id, category.id, lat, lon, now)
        if duplicate is not None:
            conn.execute("UPDATE reports SET suggested_duplicate_of = %s WHERE id = %s", (duplicate, report_id))
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
    # Staff screens (the wall, consoles) show the public id: the tracking code is the reporter's secret.
    evidence: dict[str, Any] = {"report_id": report_id, "public_id": public_id, "category": category.id,
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
        (alert.id, now, f"phản ánh {public_id}", Jsonb({"report_id": report_id})),
    )
    return Accepted(report_id, code, unit_id, due, alert.id, location_from)


def public_view(conn: psycopg.Connection, code: str) -> dict[str, Any] | None:
    """What anyone holding the code may see: no personal data, no internal notes. A report merged
    into another shows that report's status and replies (all its reporters follow the same case)."""
    own = code
    code = follows(conn, code)
    row = conn.execute(
        """SELECT r.tracking_code, r.category, r.status, r.created_at, r.updated_at, r.due_at, r.resolved_at,
                  r.rating, u.name, (SELECT count(*) FROM report_media m WHERE m.report_id = r.id), r.public_id,
                  r.alert_id
           FROM reports r LEFT JOIN units u ON u.id = r.unit_id WHERE r.tracking_code = %s""",
        (code,),
    ).fetchone()
    if row is None:
        return None
    keys = ("tracking_code", "category", "status", "created_at", "updated_at", "due_at", "resolved_at", "rating",
            "unit_name", "photos", "public_id", "alert_id")  # fmt: skip
    view = dict(zip(keys, row, strict=True))
    from ioc.incidents.store import public_summary

    view["incident"] = public_summary(conn, view.pop("alert_id"))  # e.g. the flood the report is part of
    view["tracking_code"] = own
    view["public_id"] = f"YC-{view['public_id'][:4]}-{view['public_id'][4:]}"  # as public lists show it
    view["merged_into"] = code if code != own else None
    view["supporters"] = conn.execute(
        "SELECT 1 + count(*) FROM reports WHERE merged_into = (SELECT id FROM reports WHERE tracking_code = %s)",
        (code,),
    ).fetchone()[0]
    view["replies"] = [
        {"at": at, "text": text}
        for at, text in conn.execute(
            "SELECT p.at, p.text FROM report_replies p JOIN reports r ON r.id = p.report_id"
            " WHERE r.tracking_code = %s AND p.public ORDER BY p.id",
            (code,),
        ).fetchall()
    ]
    return view


DUPLICATE_RADIUS_M = 50.0
DUPLICATE_WINDOW = timedelta(hours=72)


def likely_duplicate(conn: psycopg.Connection, report_id: int, category: str, lat: float, lon: float,
                     now: datetime) -> int | None:  # fmt: skip
    """An open report of the same category within :data:`DUPLICATE_RADIUS_M` and
    :data:`DUPLICATE_WINDOW`: suggested to staff as the one to merge into (never merged automatically)."""
    row = conn.execute(
        """SELECT id FROM reports
           WHERE id <> %(id)s AND category = %(category)s AND merged_into IS NULL
             AND status IN ('received', 'in_progress') AND created_at >= %(since)s AND lat IS NOT NULL
             AND 2 * 6371000 * asin(sqrt(power(sin(radians(lat - %(lat)s) / 2), 2)
                 + cos(radians(%(lat)s)) * cos(radians(lat)) * power(sin(radians(lon - %(lon)s) / 2), 2)))
                 <= %(radius)s
           ORDER BY created_at LIMIT 1""",
        {"id": report_id, "category": category, "since": now - DUPLICATE_WINDOW, "lat": lat, "lon": lon,
         "radius": DUPLICATE_RADIUS_M},
    ).fetchone()  # fmt: skip
    return row[0] if row else None


class MergeRefused(ValueError):
    pass


def merge(conn: psycopg.Connection, report_id: int, into_id: int, *, actor: str, now: datetime) -> None:
    """Merge ``report_id`` into ``into_id``: it counts as "+1" there, its citizen follows that report's
    status, and its own alert is closed as a duplicate."""
    from ioc.alerts.lifecycle import InvalidAction, act

    if report_id == into_id:
        raise MergeRefused("a report cannot be merged into itself")
    rows = dict(conn.execute("SELECT id, merged_into FROM reports WHERE id = ANY(%s) FOR UPDATE",
                             ([report_id, into_id],)).fetchall())  # fmt: skip
    if len(rows) != 2:
        raise MergeRefused("both reports must exist")
    if rows[into_id] is not None:
        raise MergeRefused(f"report {into_id} is itself merged into {rows[into_id]}; merge into that one")
    conn.execute("UPDATE reports SET merged_into = %s, updated_at = %s WHERE merged_into = %s OR id = %s",
                 (into_id, now, report_id, report_id))  # fmt: skip
    alert = conn.execute("SELECT alert_id FROM reports WHERE id = %s", (report_id,)).fetchone()[0]
    if alert is not None:
        with contextlib.suppress(InvalidAction):  # already handled: the merge still stands
            act(conn, alert, "dismiss", actor=actor, now=now, note=f"trùng với phản ánh #{into_id} (duplicate)")


def follows(conn: psycopg.Connection, code: str) -> str:
    """The tracking code whose status a citizen sees: the report it was merged into, if any."""
    row = conn.execute(
        """SELECT t.tracking_code FROM reports r JOIN reports t ON t.id = r.merged_into
           WHERE r.tracking_code = %s""",
        (code,),
    ).fetchone()
    return row[0] if row else code
