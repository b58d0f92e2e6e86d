"""Citizen reports that arrive over MQTT (an outside app, the 1022 hotline) become report rows.

One path for every source: the same :func:`ioc.reports.service.submit` as the web form and Open311,
so an MQTT report gets a tracking code, is routed to its commune by polygon and raises the same
alert. It runs in the ingest batch's transaction, only for newly stored messages, and the report
is keyed by (source, message id): a redelivered message never makes a second report. A category
the district does not know is filed under ``khac`` (Other) with the original kept in the report's
attributes, rather than refused: the citizen's report must not be lost over a label.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from ingest.validate import Accepted
from ioc.contract.schemas import ReportV1
from ioc.geo import UnitLocator, leaf_unit_locator
from ioc.reports.service import Category, Submission, submit

log = logging.getLogger("ingest.reports")
FALLBACK_CATEGORY = "khac"


class ReportIntake:
    def __init__(self, district_config: Path, *, refresh_s: float = 300.0) -> None:
        from ioc.district.loader import load_district

        district = load_district(district_config)
        self.categories = {c.id: Category.of(c) for c in district.report_categories}
        self.refresh_s = refresh_s
        self._locator: UnitLocator | None = None
        self._loaded = float("-inf")

    def wants(self, accepted: Accepted) -> bool:
        return isinstance(accepted.payload, ReportV1)

    def _units(self, conn: psycopg.Connection) -> UnitLocator:
        if self._locator is None or time.monotonic() - self._loaded > self.refresh_s:
            self._locator = leaf_unit_locator(conn)
            self._loaded = time.monotonic()
        return self._locator

    def apply(self, conn: psycopg.Connection, candidates: list[Accepted], stored: dict[str, set[Any]], now: Any) -> int:
        made = 0
        for accepted in candidates:
            payload = accepted.payload
            if not isinstance(payload, ReportV1) or (accepted.device_id, payload.id) not in stored.get(
                "device_events", ()
            ):
                continue
            source = f"mqtt:{accepted.device_id}"
            if conn.execute("SELECT 1 FROM reports WHERE source = %s AND source_ref = %s",
                            (source, payload.id)).fetchone():  # fmt: skip
                continue
            category = payload.category if payload.category in self.categories else FALLBACK_CATEGORY
            submission = Submission(
                category=category, description=payload.description, lat=payload.lat, lon=payload.lon,
                address=payload.address, reporter_name=payload.reporter_name, reporter_phone=payload.reporter_phone,
                consent=payload.consent, source=source, source_ref=payload.id,
            )  # fmt: skip
            accepted_report = submit(conn, submission, [], categories=self.categories, locator=self._units(conn),
                                     now=now)  # fmt: skip
            attributes = {"sent_category": payload.category} if category != payload.category else {}
            conn.execute("UPDATE reports SET media_urls = %s, attributes = %s WHERE id = %s",
                         (list(payload.media_urls), Jsonb(attributes), accepted_report.report_id))  # fmt: skip
            made += 1
        return made
