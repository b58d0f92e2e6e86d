"""Sector feeds in the ingest batch: school attendance, clinic daily figures and online mentions
become sector rows (and, past a threshold, alerts) in the batch's transaction.

Like the dossier refresh and the alert feed, this runs only for messages newly stored in
``device_events`` (``stored``), so a redelivered message adds nothing, and inside the batch's
transaction, so the figures and their alerts commit with the message or not at all: with ack after
commit, each message's effects happen exactly once. What a figure means, and when it alerts, is in
docs/kpi.md; the logic shared with the HTTP API is in :mod:`ioc.sectors`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path

import psycopg

from ingest.validate import Accepted
from ioc.alerts.escalation import EscalationPolicy
from ioc.contract.sectors import ClinicDailyV1, MentionV1, SchoolAttendanceV1
from ioc.hub.events import LiveEvent, notify
from ioc.sectors.alerts import SectorAlerts
from ioc.sectors.mentions import record_mention
from ioc.sectors.places import UnitNames
from ioc.sectors.store import upsert_attendance, upsert_clinic_day
from ioc.sectors.thresholds import load_thresholds

log = logging.getLogger("ingest.sectors")
_PAYLOADS = (SchoolAttendanceV1, ClinicDailyV1, MentionV1)
_SECTOR = {SchoolAttendanceV1: "education", ClinicDailyV1: "health", MentionV1: "mentions"}


class SectorFeed:
    """Derives sector rows from a batch; ``alerts`` None: figures only, no threshold alerts."""

    def __init__(self, alerts: SectorAlerts | None, *, refresh_s: float = 60.0) -> None:
        self.alerts = alerts
        self.names = UnitNames()
        self.refresh_s = refresh_s
        self._device_names: dict[str, str] = {}
        self._loaded = float("-inf")

    @classmethod
    def from_file(cls, path: Path | None, policies: Mapping[str, EscalationPolicy] | None = None) -> SectorFeed:
        return cls(SectorAlerts(load_thresholds(path), policies) if path is not None else None)

    def wants(self, accepted: Accepted) -> bool:
        return isinstance(accepted.payload, _PAYLOADS)

    def _name(self, conn: psycopg.Connection, device_id: str) -> str:
        if time.monotonic() - self._loaded > self.refresh_s or device_id not in self._device_names:
            self._device_names = dict(conn.execute("SELECT id, name FROM devices").fetchall())
            self._loaded = time.monotonic()
        return self._device_names.get(device_id, device_id)

    def apply(
        self, conn: psycopg.Connection, candidates: Iterable[Accepted], stored: dict[str, set[tuple[str, str]]],
        now: datetime,
    ) -> int:  # fmt: skip
        """Store the sector rows of the batch's new messages; return how many changed."""
        new = stored.get("device_events", set())
        changed = 0
        touched: set[tuple[str, str]] = set()
        # Oldest first: two reports for one day in a batch end as the newer one, whatever their order.
        messages = sorted((a for a in candidates if isinstance(a.payload, _PAYLOADS)), key=lambda a: a.payload.ts)
        seen: set[tuple[str, str]] = set()
        for accepted in messages:
            payload = accepted.payload
            key = (accepted.device_id, payload.id)
            if key not in new or key in seen:
                continue  # a redelivery of a message already stored (and already counted)
            seen.add(key)
            if self._one(conn, accepted, now):
                changed += 1
                touched.add((_SECTOR[type(payload)], accepted.unit_id))
        for sector, unit_id in sorted(touched):
            notify(conn, LiveEvent(topic="kpi", type=f"sector.{sector}", unit_id=unit_id, at=now))
        return changed

    def _one(self, conn: psycopg.Connection, accepted: Accepted, now: datetime) -> bool:
        payload = accepted.payload
        if isinstance(payload, SchoolAttendanceV1):
            if not upsert_attendance(conn, school_id=accepted.device_id, unit_id=accepted.unit_id, day=payload.day,
                                     enrolled=payload.pupils_enrolled, present=payload.pupils_present,
                                     reported_at=payload.ts, message_id=payload.id):  # fmt: skip
                return False
            if self.alerts is not None:
                name = self._name(conn, accepted.device_id)
                self.alerts.attendance(conn, school_id=accepted.device_id, school_name=name, unit_id=accepted.unit_id,
                                       day=payload.day, enrolled=payload.pupils_enrolled,
                                       present=payload.pupils_present, at=payload.ts, message_id=payload.id,
                                       now=now)  # fmt: skip
            return True
        if isinstance(payload, ClinicDailyV1):
            if not upsert_clinic_day(conn, clinic_id=accepted.device_id, unit_id=accepted.unit_id, day=payload.day,
                                     visits=payload.visits, vaccinations=payload.vaccinations, cases=payload.cases,
                                     reported_at=payload.ts, message_id=payload.id):  # fmt: skip
                return False
            if self.alerts is not None:
                for disease, cases in sorted(payload.cases.items()):
                    if cases > 0:
                        self.alerts.disease_day(conn, unit_id=accepted.unit_id, disease=disease, day=payload.day,
                                                at=payload.ts, now=now)  # fmt: skip
            return True
        assert isinstance(payload, MentionV1)
        unit_id = payload.unit_id
        if unit_id is not None and not conn.execute("SELECT 1 FROM units WHERE id = %s", (unit_id,)).fetchone():
            log.warning("mention %s names unknown unit %r; using the unit its source watches", payload.id, unit_id)
            unit_id = None
        recorded = record_mention(
            conn, url=payload.url, source=payload.source, title=payload.title, text=payload.text,
            published_at=payload.ts, scope_unit_id=accepted.unit_id, unit_id=unit_id, device_id=accepted.device_id,
            message_id=payload.id, names=self.names, alerts=self.alerts, now=now,
        )  # fmt: skip
        return recorded.id is not None
