"""A CAP 1.2 message as plain data: what the builder writes and the parser returns.

Only the parts the IOC uses are modelled (one or more ``info`` blocks with ``area``s); the rest of a
received document is kept verbatim in ``cap_messages.xml``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

NS = "urn:oasis:names:tc:emergency:cap:1.2"

STATUSES = ("Actual", "Exercise", "System", "Test", "Draft")
MSG_TYPES = ("Alert", "Update", "Cancel", "Ack", "Error")
SCOPES = ("Public", "Restricted", "Private")
CATEGORIES = ("Geo", "Met", "Safety", "Security", "Rescue", "Fire", "Health", "Env", "Transport", "Infra", "CBRNE",
              "Other")  # fmt: skip
URGENCIES = ("Immediate", "Expected", "Future", "Past", "Unknown")
SEVERITIES = ("Extreme", "Severe", "Moderate", "Minor", "Unknown")
CERTAINTIES = ("Observed", "Likely", "Possible", "Unlikely", "Unknown")


@dataclass(frozen=True)
class Reference:
    """``sender,identifier,sent`` of an earlier message."""

    sender: str
    identifier: str
    sent: str

    def __str__(self) -> str:
        return f"{self.sender},{self.identifier},{self.sent}"


@dataclass(frozen=True)
class Area:
    description: str
    polygons: list[list[tuple[float, float]]] = field(default_factory=list)  # rings of (lat, lon), closed
    circles: list[tuple[float, float, float]] = field(default_factory=list)  # (lat, lon, radius km)
    geocodes: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class Info:
    language: str
    categories: list[str]
    event: str
    urgency: str
    severity: str
    certainty: str
    headline: str | None = None
    description: str | None = None
    instruction: str | None = None
    sender_name: str | None = None
    web: str | None = None
    expires: datetime | None = None
    parameters: list[tuple[str, str]] = field(default_factory=list)
    areas: list[Area] = field(default_factory=list)


@dataclass(frozen=True)
class CapMessage:
    identifier: str
    sender: str
    sent: datetime
    status: str
    msg_type: str
    scope: str
    infos: list[Info] = field(default_factory=list)
    references: list[Reference] = field(default_factory=list)
    restriction: str | None = None
    note: str | None = None
    source: str | None = None

    @property
    def reference(self) -> Reference:
        return Reference(self.sender, self.identifier, format_sent(self.sent))

    @property
    def public_deliverable(self) -> bool:
        """Only real, public messages may reach the public (radio, public pages): never Test,
        Exercise, System or Draft ones, never Restricted or Private ones."""
        return self.status == "Actual" and self.scope == "Public"


def format_sent(when: datetime) -> str:
    """CAP's dateTime: seconds precision and an explicit offset (``Z`` is not allowed)."""
    if when.tzinfo is None:
        raise ValueError("CAP times need a time zone")
    text = when.replace(microsecond=0).isoformat()
    return text.replace("+00:00", "-00:00") if text.endswith("+00:00") else text
