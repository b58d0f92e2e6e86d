"""From what the worker stores to alerts, in the same transaction.

Camera events, sensor readings past a configured level and presence changes become
:class:`~ioc.alerts.rules.Observation`s; the rules of ``config/alert-rules.yaml`` turn them into
alerts (or resolve open ones). This runs inside the batch's transaction and only for rows that were
really inserted, so a message redelivered after a crash adds nothing twice, and an alert exists
exactly when its evidence is stored.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg

from ingest.presence import Change
from ingest.validate import Accepted
from ioc.alerts.lifecycle import act
from ioc.alerts.rules import Observation, RuleBook, evaluate, load_rulebook
from ioc.alerts.store import raise_alerts
from ioc.contract.schemas import CameraEventV1, TelemetryV1

log = logging.getLogger("ingest.alerting")


@dataclass(frozen=True)
class DeviceFacts:
    name: str
    lat: float | None
    lon: float | None
    levels: dict[str, Any] | None


class AlertFeed:
    """Observations of one batch, then alerts. The device facts are re-read every ``refresh_s``."""

    def __init__(self, book: RuleBook, *, refresh_s: float = 60.0) -> None:
        self.book = book
        self.policies = book.escalation_policies()
        self.sources = {rule.when.source for rule in book.rules}
        self.metrics = {rule.when.metric for rule in book.rules if rule.when.metric}
        self.refresh_s = refresh_s
        self._facts: dict[str, DeviceFacts] = {}
        self._loaded = float("-inf")

    @classmethod
    def from_file(cls, path: str | Path) -> AlertFeed:
        return cls(load_rulebook(path))

    # -- facts ---------------------------------------------------------------------------------------
    def _refresh(self, conn: psycopg.Connection) -> None:
        if time.monotonic() - self._loaded < self.refresh_s:
            return
        rows = conn.execute("SELECT id, name, lat, lon, properties->'levels' FROM devices").fetchall()
        self._facts = {r[0]: DeviceFacts(r[1], r[2], r[3], r[4]) for r in rows}
        self._loaded = time.monotonic()

    # -- observations --------------------------------------------------------------------------------
    def wants(self, accepted: Accepted) -> bool:
        """Cheap test in the validation loop: could this message matter to a rule?"""
        if accepted.table == "camera_events":
            return "camera_event" in self.sources
        if accepted.table == "telemetry" and isinstance(accepted.payload, TelemetryV1):
            return "telemetry" in self.sources and not self.metrics.isdisjoint(accepted.payload.metrics)
        return False

    def _observation(self, accepted: Accepted) -> Observation | None:
        payload = accepted.payload
        facts = self._facts.get(accepted.device_id)
        common = {
            "at": payload.ts,
            "unit_id": accepted.unit_id,
            "device_id": accepted.device_id,
            "device_kind": accepted.kind,
            "device_name": facts.name if facts else None,
            "lat": facts.lat if facts else None,
            "lon": facts.lon if facts else None,
        }
        if isinstance(payload, CameraEventV1):
            fields = payload.model_dump(mode="json", exclude={"v", "ts", "data"})
            fields.update({k: v for k, v in payload.data.items() if isinstance(v, str | int | float | bool)})
            return Observation(source="camera_event", fields=fields, ref={"message_id": payload.id}, **common)
        if isinstance(payload, TelemetryV1):
            if not facts or not facts.levels:
                return None
            return Observation(source="telemetry", fields=dict(payload.metrics), levels=facts.levels,
                               ref={"message_id": payload.id}, **common)  # fmt: skip
        return None

    def _presence(self, change: Change) -> Observation:
        facts = self._facts.get(change.device_id)
        return Observation(
            source="presence", at=change.at, unit_id=change.unit_id, device_id=change.device_id,
            device_kind=change.kind, device_name=facts.name if facts else None,
            lat=facts.lat if facts else None, lon=facts.lon if facts else None,
            fields={"state": change.state, "reason": change.reason, "previous": change.previous},
        )  # fmt: skip

    # -- in the transaction -----------------------------------------------------------------------------
    def apply(
        self,
        conn: psycopg.Connection,
        candidates: Iterable[Accepted],
        stored: dict[str, set[tuple[str, str]]],
        changes: Iterable[Change],
        now: datetime,
    ) -> int:
        """Raise and resolve alerts for the batch; return how many alerts changed."""
        self._refresh(conn)
        observations: list[Observation] = []
        used: set[tuple[str, str, str]] = set()
        for accepted in candidates:
            key = (accepted.values[1], accepted.payload.id)
            if key not in stored.get(accepted.table, ()) or (accepted.table, *key) in used:
                continue  # a redelivery of something already stored (and already alerted on)
            used.add((accepted.table, *key))
            obs = self._observation(accepted)
            if obs is not None:
                observations.append(obs)
        if "presence" in self.sources:
            observations.extend(self._presence(c) for c in changes)
        if not observations:
            return 0
        drafts, resolutions = evaluate(self.book, observations)
        changed = raise_alerts(conn, drafts, now=now, policies=self.policies,
                               suppress_after_dismiss=self.book.suppress_after_dismiss)  # fmt: skip
        for resolution in resolutions:
            row = conn.execute(
                "SELECT id FROM alerts WHERE dedup_key = %s AND status IN ('new', 'acknowledged', 'in_progress')",
                (resolution.dedup_key,),
            ).fetchone()
            if row:
                act(conn, row[0], "resolve", actor="system", now=now,
                    note=f"tự động: {resolution.rule_id}")  # fmt: skip
        return len(changed) + len(resolutions)
