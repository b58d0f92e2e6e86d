"""Payload schemas: one pydantic model per (kind, channel), the single source of docs/mqtt.md.

Every JSON payload is an envelope ``{"v": <schema version>, "id": <message id>, "ts": <device
time>, ...}``. ``id`` is unique per device (a counter, a UUID, a ULID): with ``ts`` it is the key
that makes a redelivered message land once. Models are strict (a number sent as a string is an
error, not a guess), forbid unknown fields (a typo is reported, not silently dropped) and refuse
NaN/Infinity, so what is stored is exactly what the contract says. Free-form vendor data goes in
``data`` / ``info`` objects, which are checked only for what PostgreSQL cannot store.

docs/mqtt.md's payload section is generated from these models (``python -m ingest.docgen``); a
test fails when the two differ.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, model_validator

from ioc.contract.topics import Channel

SCHEMA_VERSION = 1
JSON_MAX_DEPTH = 8

Identifier = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"),
    Field(description="1-64 characters: letters, digits, `_`, `-` (first a letter or digit)."),
]
MessageId = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$"),
    Field(
        description="Message id, unique per device: 1-64 characters of letters, digits, `.`, `_`, `:`, `-` "
        "(a counter, UUID or ULID). A message sent again with the same id and ts is stored once.",
    ),
]
DottedName = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,31}(\.[a-z][a-z0-9_]{0,31}){0,3}$"),
]
MetricName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
ShortText = Annotated[str, StringConstraints(max_length=200)]


class JsonCheckError(ValueError):
    pass


def _check_json(value: Any, depth: int = 0, path: str = "") -> None:
    """What pydantic lets through in free-form objects but PostgreSQL's jsonb refuses or the contract
    forbids: NaN/Infinity (also 1e400, which overflows to Infinity), NUL characters, deep nesting."""
    if depth > JSON_MAX_DEPTH:
        raise JsonCheckError(f"nested deeper than {JSON_MAX_DEPTH} levels at {path or '(root)'}")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise JsonCheckError(f"non-finite number (NaN or Infinity) at {path or '(root)'}")
    elif isinstance(value, str):
        if "\x00" in value:
            raise JsonCheckError(f"NUL character at {path or '(root)'}")
    elif isinstance(value, dict):
        for key, item in value.items():
            if "\x00" in key:
                raise JsonCheckError(f"NUL character in a key at {path or '(root)'}")
            _check_json(item, depth + 1, f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_json(item, depth + 1, f"{path}[{index}]")


def _checked_object(value: dict[str, Any]) -> dict[str, Any]:
    _check_json(value)
    return value


JsonObject = Annotated[
    dict[str, Any],
    AfterValidator(_checked_object),
    Field(
        max_length=64,
        description="Free-form object (at most 64 keys, nested at most 8 levels; no NaN/Infinity, no NUL).",
    ),
]
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]


class Envelope(BaseModel):
    """Fields every JSON payload carries."""

    model_config = ConfigDict(strict=True, allow_inf_nan=False, extra="forbid", frozen=True)

    #: how the worker stores it: the time-series table and, for device_events, the event type
    table: ClassVar[str] = "device_events"
    max_bytes: ClassVar[int] = 16 * 1024

    v: Literal[1] = Field(description="Schema version of this payload; this document describes version 1.")
    id: MessageId
    ts: AwareDatetime = Field(
        description="When it happened, device time, RFC 3339 with a UTC offset "
        "(`2026-03-01T08:30:00+07:00` or `...Z`). Accepted back to the retention of the table it goes to "
        "(IOC_TELEMETRY_RETENTION_DAYS / IOC_EVENTS_RETENTION_DAYS) and up to 5 minutes ahead of the IOC's clock."
    )


class TelemetryV1(Envelope):
    """Periodic measurements of any device (sensor readings, radio signal and battery, camera stream
    health). Stored in `telemetry`; also counts as a sign of life for presence."""

    table: ClassVar[str] = "telemetry"
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "v": 1,
                    "id": "wl-000123",
                    "ts": "2026-03-01T08:30:00+07:00",
                    "metrics": {"water_level_cm": 182.5, "rain_mm_1h": 12.0, "battery_pct": 87},
                }
            ]
        }
    )

    metrics: dict[MetricName, FiniteFloat] = Field(
        min_length=1,
        max_length=128,
        description="Measurements by name (`^[a-z][a-z0-9_]{0,63}$`, unit in the name: `water_level_cm`), "
        "finite numbers, 1-128 of them.",
    )
    seq: int | None = Field(default=None, ge=0, le=2**63 - 1, description="Optional device sequence number.")


class StatusV1(Envelope):
    """The device's own state, published **retained** on connect and on every change. The Last Will
    registered at connect is the same payload with `state: "offline"`, so the broker announces a
    device that drops off. Drives presence (online/offline) and `device_presence.status`."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "v": 1,
                    "id": "st-1740792600",
                    "ts": "2026-03-01T08:30:00+07:00",
                    "state": "online",
                    "info": {"firmware": "2.4.1", "power": "mains", "volume": 70},
                },
                {
                    "v": 1,
                    "id": "lwt-1740792600",
                    "ts": "2026-03-01T08:30:00+07:00",
                    "state": "offline",
                    "reason": "last_will",
                },
            ]
        }
    )

    state: Literal["online", "offline"] = Field(description="`online`, or `offline` (the Last Will).")
    reason: ShortText | None = Field(default=None, description="Why, in a few words (`last_will`, `reboot`...).")
    info: JsonObject = Field(
        default_factory=dict,
        description="Device facts kept as the device's current status (firmware, power source, battery, "
        "volume, playing...): at most 64 keys.",
    )


class DeviceEventV1(Envelope):
    """Something that happened on a device (radio playback started/finished, sensor threshold, door
    opened...). Stored in `device_events` with `event_type` = `type`."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "v": 1,
                    "id": "ev-5521",
                    "ts": "2026-03-01T08:30:00+07:00",
                    "type": "playback.finished",
                    "data": {"broadcast_id": 42, "position_s": 180.0},
                }
            ]
        }
    )

    type: DottedName = Field(
        description="Event type, dotted lower case (`playback.started`, `threshold.exceeded`), at most 4 parts."
    )
    data: JsonObject = Field(default_factory=dict, description="Details of the event.")

    @property
    def event_type(self) -> str:
        return self.type


CAMERA_RULES = ("motion", "tamper", "intrusion", "line_crossing", "loitering", "crowd", "congestion", "object",
                "stream_down")  # fmt: skip
OBJECT_CLASSES = ("person", "bicycle", "motorbike", "car", "bus", "truck")


class CameraEventV1(Envelope):
    """A camera's own detection (motion, tamper) or a detector's rule hit on a camera. Stored in
    `camera_events`; the alert engine consumes it."""

    table: ClassVar[str] = "camera_events"
    max_bytes: ClassVar[int] = 64 * 1024
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "v": 1,
                    "id": "cam-evt-20260301-0001",
                    "ts": "2026-03-01T22:14:05+07:00",
                    "rule": "intrusion",
                    "object_class": "person",
                    "score": 0.91,
                    "track_id": 1207,
                    "zone": "school-yard",
                    "bbox": [0.41, 0.22, 0.53, 0.71],
                    "snapshot_ref": "snap/2b/2b1c0e.jpg",
                }
            ]
        }
    )

    rule: Literal[CAMERA_RULES] = Field(  # type: ignore[valid-type]
        description="What fired: " + ", ".join(f"`{r}`" for r in CAMERA_RULES) + "."
    )
    object_class: Literal[OBJECT_CLASSES] | None = Field(  # type: ignore[valid-type]
        default=None, description="Detected class: " + ", ".join(f"`{c}`" for c in OBJECT_CLASSES) + "."
    )
    score: FiniteFloat | None = Field(default=None, ge=0.0, le=1.0, description="Detector confidence 0-1.")
    track_id: int | None = Field(default=None, ge=0, le=2**63 - 1, description="Tracker id of the object.")
    zone: Identifier | None = Field(default=None, description="Zone id from the camera's configuration.")
    bbox: tuple[FiniteFloat, FiniteFloat, FiniteFloat, FiniteFloat] | None = Field(
        default=None,
        description="Box `[x1, y1, x2, y2]` as fractions 0-1 of the frame width and height, x1 < x2, y1 < y2.",
    )
    snapshot_ref: Annotated[str, StringConstraints(max_length=256, pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]*$")] | None = (
        Field(default=None, description="Reference of the evidence snapshot (relative path or id).")
    )
    data: JsonObject = Field(default_factory=dict, description="Other details (counts, direction, dwell time...).")

    @model_validator(mode="after")
    def _check_bbox(self) -> CameraEventV1:
        if self.bbox is not None:
            x1, y1, x2, y2 = self.bbox
            if not all(0.0 <= c <= 1.0 for c in self.bbox):
                raise ValueError("bbox coordinates must be fractions between 0 and 1")
            if not (x1 < x2 and y1 < y2):
                raise ValueError("bbox must satisfy x1 < x2 and y1 < y2")
        return self


DOSSIER_EVENTS = (
    "received",
    "supplement_requested",
    "supplemented",
    "refused",
    "withdrawn",
    "resolved",
    "result_returned",
    "paid_online",
    "digitised",
    "rated",
)


class DossierEventV1(Envelope):
    """A step in an administrative dossier's life, from the one-stop (một cửa) system. Stored in
    `dossier_events`; the same (dossier_id, event, ts) is stored once."""

    table: ClassVar[str] = "dossier_events"
    max_bytes: ClassVar[int] = 64 * 1024
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "v": 1,
                    "id": "H12.34-260301-0001-received",
                    "ts": "2026-03-01T08:30:00+07:00",
                    "dossier_id": "H12.34-260301-0001",
                    "event": "received",
                    "unit_id": "tra-kot",
                    "channel": "online",
                    "procedure_code": "1.001234",
                    "due_at": "2026-03-06T17:00:00+07:00",
                }
            ]
        }
    )

    dossier_id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,63}$")] = Field(
        description="Dossier number in the one-stop system (letters, digits, `.`, `_`, `/`, `-`)."
    )
    event: Literal[DOSSIER_EVENTS] = Field(  # type: ignore[valid-type]
        description="Lifecycle step: " + ", ".join(f"`{e}`" for e in DOSSIER_EVENTS) + "."
    )
    unit_id: Identifier | None = Field(
        default=None,
        description="Unit handling the dossier (a known unit id); default: the unit in the topic.",
    )
    channel: Literal["direct", "online", "postal"] | None = Field(
        default=None, description="How it was received (for `received`)."
    )
    procedure_code: Annotated[str, StringConstraints(max_length=64)] | None = Field(
        default=None, description="Administrative procedure code."
    )
    due_at: AwareDatetime | None = Field(default=None, description="Legal due time, with a UTC offset.")
    satisfied: bool | None = Field(
        default=None,
        description="For `rated` (required there): the citizen's verdict after service, satisfied or not; the "
        "latest rating of a dossier counts (docs/kpi.md, satisfaction_rate).",
    )
    data: JsonObject = Field(default_factory=dict, description="Other fields of the source system.")

    @model_validator(mode="after")
    def _rating_has_a_verdict(self) -> DossierEventV1:
        if (self.event == "rated") != (self.satisfied is not None):
            raise ValueError("`satisfied` is required for a `rated` event and allowed only there")
        return self


class ReportV1(Envelope):
    """A citizen report submitted by an outside app or the hotline system. Stored in `device_events` as
    `report.submitted` and filed as a citizen report, once per message id: a tracking code, the commune
    whose polygon contains `lat`/`lon`, the category's due time and an alert for that commune (the same
    path as the web form and Open311). An unknown category is filed under `khac` (Other)."""

    max_bytes: ClassVar[int] = 64 * 1024
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "v": 1,
                    "id": "hotline-2026-000871",
                    "ts": "2026-03-01T08:30:00+07:00",
                    "category": "road_damage",
                    "description": "Sạt lở taluy dương trên tuyến ĐT616, đoạn qua thôn 2.",
                    "lat": 15.2751,
                    "lon": 108.1432,
                    "consent": True,
                }
            ]
        }
    )

    category: Identifier = Field(description="Report category id from the district configuration.")
    description: Annotated[str, StringConstraints(max_length=4000)] = Field(description="What the citizen wrote.")
    lat: FiniteFloat | None = Field(default=None, ge=-90, le=90, description="Latitude (WGS 84).")
    lon: FiniteFloat | None = Field(default=None, ge=-180, le=180, description="Longitude (WGS 84).")
    address: Annotated[str, StringConstraints(max_length=500)] | None = Field(default=None, description="Address.")
    media_urls: list[Annotated[str, StringConstraints(max_length=1000, pattern=r"^https://")]] = Field(
        default_factory=list, max_length=6, description="Up to 6 https URLs of photos or a video."
    )
    reporter_name: ShortText | None = Field(default=None, description="Optional; never shown publicly.")
    reporter_phone: Annotated[str, StringConstraints(pattern=r"^\+?[0-9 .-]{6,20}$")] | None = Field(
        default=None, description="Optional; never shown publicly."
    )
    consent: bool = Field(default=False, description="The reporter agreed to be contacted.")

    event_type: ClassVar[str] = "report.submitted"


class CommandAckV1(Envelope):
    """The device's answer to a command it received on `cmd` (accepted or rejected, with the reason).
    Stored in `device_events` as `cmd.ack`."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "v": 1,
                    "id": "ack-778",
                    "ts": "2026-03-01T08:30:01+07:00",
                    "correlation_id": "cmd-20260301-0042",
                    "accepted": False,
                    "reason": "busy: urgent broadcast playing",
                }
            ]
        }
    )

    correlation_id: MessageId = Field(description="The `id` of the command being answered.")
    accepted: bool = Field(description="Whether the device will carry the command out.")
    reason: ShortText | None = Field(default=None, description="Why it was rejected.")
    data: JsonObject = Field(default_factory=dict, description="Result details.")

    event_type: ClassVar[str] = "cmd.ack"


# Snapshots are binary: described here for the docs and the size limit.
SNAPSHOT_MAX_BYTES = 2 * 1024 * 1024

#: (kind or "*", channel) -> model. A kind-specific entry wins over the generic one.
REGISTRY: dict[tuple[str, Channel], type[Envelope]] = {
    ("*", Channel.TELEMETRY): TelemetryV1,
    ("*", Channel.STATUS): StatusV1,
    ("*", Channel.EVENT): DeviceEventV1,
    ("*", Channel.CMD_ACK): CommandAckV1,
    ("camera", Channel.EVENT): CameraEventV1,
    ("dossier", Channel.EVENT): DossierEventV1,
    ("report", Channel.EVENT): ReportV1,
}


# The sector feeds (school, clinic, mention) register their payloads here: see ioc/contract/sectors.py.
import ioc.contract.sectors  # noqa: E402, F401


def model_for(kind: str, channel: Channel) -> type[Envelope] | None:
    return REGISTRY.get((kind, channel)) or REGISTRY.get(("*", channel))


def max_bytes_for(kind: str, channel: Channel) -> int:
    if channel is Channel.SNAPSHOT:
        return SNAPSHOT_MAX_BYTES
    model = model_for(kind, channel)
    return model.max_bytes if model is not None else Envelope.max_bytes


def event_type_of(payload: Envelope, channel: Channel) -> str:
    """``device_events.event_type`` for a payload stored there."""
    if channel is Channel.STATUS:
        return "status"
    value = getattr(payload, "event_type", None)
    return value if isinstance(value, str) else "event"


def max_age_days(model: type[Envelope], telemetry_days: int, events_days: int) -> int:
    """How old ``ts`` may be: what the table keeps (older rows would go to dropped partitions)."""
    return telemetry_days if model.table == "telemetry" else events_days


__all__ = [
    "CAMERA_RULES",
    "DOSSIER_EVENTS",
    "OBJECT_CLASSES",
    "REGISTRY",
    "SCHEMA_VERSION",
    "SNAPSHOT_MAX_BYTES",
    "CameraEventV1",
    "CommandAckV1",
    "DeviceEventV1",
    "DossierEventV1",
    "Envelope",
    "ReportV1",
    "StatusV1",
    "TelemetryV1",
    "event_type_of",
    "max_age_days",
    "max_bytes_for",
    "model_for",
]
