"""What an alert is, in the application's terms: severities, statuses, and a draft to raise one."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class Severity(StrEnum):
    """CAP-aligned severities plus ``info`` and ``minor`` for the wall; ordered by :attr:`rank`."""

    INFO = "info"
    MINOR = "minor"
    MODERATE = "moderate"
    SEVERE = "severe"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return list(Severity).index(self)


class Status(StrEnum):
    NEW = "new"
    ACKNOWLEDGED = "acknowledged"
    IN_PROGRESS = "in_progress"
    RESOLVED = "resolved"
    CLOSED = "closed"
    DISMISSED = "dismissed"

    @property
    def is_open(self) -> bool:
        return self in (Status.NEW, Status.ACKNOWLEDGED, Status.IN_PROGRESS)


@dataclass(frozen=True)
class AlertDraft:
    """One occurrence of a cause. Drafts with the same ``dedup_key`` update one open alert."""

    kind: str
    severity: Severity
    title: str
    at: datetime
    unit_id: str | None = None
    dedup_key: str | None = None
    description: str | None = None
    lat: float | None = None
    lon: float | None = None
    area: dict[str, Any] | None = None
    evidence: dict[str, Any] = field(default_factory=dict)
    source_ref: dict[str, Any] | None = None
    policy: str | None = None


@dataclass(frozen=True)
class AlertChange:
    """An alert after a change: what the hub announces and the API returns."""

    id: int
    seq: int
    status: Status
    unit_id: str | None
    action: str
    count: int = 1
    escalation_level: int = 0
