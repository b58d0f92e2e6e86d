"""One MQTT message in, one verdict out: a row to store, a dead letter with its precise reason, or
"not ours" (downstream channels).

The checks run cheapest first and each failure names what was wrong, where, and the limit it
broke, so that a device maker reading ``dead_letters`` can fix the device without asking anyone:

====================  =====================================================================
reason code           meaning
====================  =====================================================================
bad_topic             the topic is not ``<root>/<unit>/<kind>/<device_id>/<channel>`` with safe segments
unknown_channel       the last segment(s) are not a channel of the contract
payload_too_large     more bytes than the channel allows (docs/mqtt.md, "Sizes")
unknown_device        no device with this id in ``devices``
device_disabled       the device exists but is disabled
kind_mismatch         the topic's kind is not the device's kind
unit_mismatch         the topic's unit is not the device's unit
invalid_utf8          the payload is not UTF-8 (the byte offset is given)
nul_character         a ``\\u0000`` in the payload (PostgreSQL cannot store it)
invalid_json          not parseable JSON (truncated, trailing garbage, nested too deep...)
non_finite_number     NaN, Infinity or a number that overflows to Infinity
unsupported_version   ``v`` is not a schema version this worker knows
schema_violation      valid JSON that does not match the schema (each field error listed)
ts_out_of_range       ``ts`` older than the table's retention or too far in the future
unknown_unit          a dossier event names a unit that does not exist
not_jpeg              a snapshot that is not a JPEG image
db_rejected           PostgreSQL refused the row (the SQLSTATE and message are kept)
====================  =====================================================================
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ioc.contract.schemas import (
    CameraEventV1,
    DossierEventV1,
    Envelope,
    StatusV1,
    event_type_of,
    max_age_days,
    max_bytes_for,
    model_for,
)
from ioc.contract.topics import Channel, DeviceTopic, TopicError, parse_topic

MAX_FUTURE_S = 300.0
DEAD_LETTER_KEEP_BYTES = 256 * 1024  # larger payloads keep their first 64 KiB plus size and sha256
DEAD_LETTER_HEAD_BYTES = 64 * 1024
_NUL_ESCAPE = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")


@dataclass(slots=True)
class Inbound:
    """A message as the network thread hands it over."""

    topic: bytes
    payload: bytes
    mid: int
    qos: int
    retain: bool
    generation: int
    received_at: datetime
    received_mono: float
    user_properties: tuple[tuple[str, str], ...] = ()
    #: An event or a status change: something an operator may be waiting to see (see ``Buffer``).
    urgent: bool = False


@dataclass(slots=True)
class Accepted:
    table: str
    values: tuple
    device_id: str
    unit_id: str
    kind: str
    # presence: "online"/"offline" for a status message, None for any other sign of life
    status_state: str | None = None
    status_reason: str | None = None
    status_info: dict[str, Any] | None = None
    snapshot: tuple[Path, bytes] | None = None
    payload: Any = None  # the validated payload model: what the alert rules read


@dataclass(slots=True)
class Rejected:
    code: str
    message: str
    kind: str = "unknown"
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def reason(self) -> str:
        return f"{self.code}: {self.message}"


@dataclass(slots=True)
class Ignored:
    why: str


Verdict = Accepted | Rejected | Ignored


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    id: str
    kind: str
    unit_id: str
    enabled: bool = True
    expected_interval_s: int = 300


class DeviceDirectory:
    """The devices and units the worker validates against, reloaded every ``refresh_s`` and, when an
    unknown id shows up, at most every ``miss_refresh_s`` (a device just added is found quickly; a
    flood of unknown ids does not hammer the database)."""

    def __init__(
        self,
        loader: Callable[[], tuple[dict[str, DeviceInfo], set[str]]],
        *,
        refresh_s: float = 30.0,
        miss_refresh_s: float = 2.0,
    ) -> None:
        self._loader = loader
        self.refresh_s = refresh_s
        self.miss_refresh_s = miss_refresh_s
        self.devices: dict[str, DeviceInfo] = {}
        self.units: set[str] = set()
        self._loaded_at = float("-inf")

    def reload(self) -> None:
        self.devices, self.units = self._loader()
        self._loaded_at = time.monotonic()

    def _maybe_reload(self, min_age: float) -> None:
        if time.monotonic() - self._loaded_at >= min_age:
            try:
                self.reload()
            except Exception:  # noqa: BLE001 - keep the previous view while the database is away
                self._loaded_at = time.monotonic()

    def get(self, device_id: str) -> DeviceInfo | None:
        self._maybe_reload(self.refresh_s)
        device = self.devices.get(device_id)
        if device is None:
            self._maybe_reload(self.miss_refresh_s)
            device = self.devices.get(device_id)
        return device

    def unit_exists(self, unit_id: str) -> bool:
        if unit_id in self.units:
            return True
        self._maybe_reload(self.miss_refresh_s)
        return unit_id in self.units


def load_devices(conn) -> tuple[dict[str, DeviceInfo], set[str]]:  # noqa: ANN001 - psycopg connection
    """Read ``devices`` and ``units`` (used by the worker through :class:`DeviceDirectory`)."""
    rows = conn.execute("SELECT id, kind, unit_id, enabled, expected_interval_s FROM devices").fetchall()
    units = {r[0] for r in conn.execute("SELECT id FROM units").fetchall()}
    conn.commit()
    return {r[0]: DeviceInfo(*r) for r in rows}, units


def clean_text(value: str, limit: int = 2000) -> str:
    """Text that PostgreSQL accepts in text and jsonb: no NUL, no lone surrogates, bounded length."""
    if len(value) > limit:
        value = value[:limit] + "…"
    return value.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")


def _json_error_message(error: dict[str, Any]) -> str:
    return str(error.get("msg", "")).removeprefix("Invalid JSON: ")


def _loc(error: dict[str, Any]) -> str:
    return ".".join(str(p) for p in error.get("loc", ())) or "(payload)"


class Validator:
    """Turns :class:`Inbound` messages into verdicts. Used from one thread (the writer's)."""

    def __init__(
        self,
        devices: DeviceDirectory,
        *,
        root: str = "ioc/v1",
        now: Callable[[], datetime],
        telemetry_retention_days: int = 90,
        events_retention_days: int = 730,
        media_root: Path | None = None,
    ) -> None:
        self.devices = devices
        self.root = root
        self.now = now
        self.telemetry_days = telemetry_retention_days
        self.events_days = events_retention_days
        self.media_root = media_root  # snapshots go to <media_root>/snapshots/<device>/<sha256>.jpg
        self._topics: dict[bytes, DeviceTopic | TopicError] = {}

    # -- topic -------------------------------------------------------------------------------------
    def _topic(self, raw: bytes) -> DeviceTopic | TopicError:
        cached = self._topics.get(raw)
        if cached is not None:
            return cached
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            result: DeviceTopic | TopicError = TopicError("bad_topic", f"topic is not UTF-8 (byte {exc.start})")
        else:
            try:
                result = parse_topic(text, self.root)
            except TopicError as exc:
                result = exc
        if len(self._topics) > 20_000:
            self._topics.clear()
        self._topics[raw] = result
        return result

    # -- the checks --------------------------------------------------------------------------------
    def validate(self, msg: Inbound) -> Verdict:
        topic = self._topic(msg.topic)
        if isinstance(topic, TopicError):
            return Rejected(topic.code, str(topic))
        if not topic.channel.upstream:
            return Ignored(f"{topic.channel.value} is a downstream channel")
        if msg.retain and topic.channel is not Channel.STATUS:
            # Only a device's status is retained (docs/mqtt.md); anything else would come back at every
            # restart. Refused (and, being retained, dead-lettered once: ingest.worker).
            return Rejected(
                "retained_not_allowed", f"retained message on {topic.channel.value}: only status is retained"
            )
        kind = topic.kind
        limit = max_bytes_for(kind, topic.channel)
        size = len(msg.payload)
        if size > limit:
            return Rejected(
                "payload_too_large",
                f"{size} bytes exceeds the {limit}-byte limit of {topic.channel.value} messages",
                self._kind_label(topic),
                {"bytes": size, "limit": limit},
            )
        device = self.devices.get(topic.device_id)
        if device is None:
            return Rejected("unknown_device", f"device {topic.device_id!r} is not registered", "unknown")
        if not device.enabled:
            return Rejected("device_disabled", f"device {device.id!r} is disabled", device.kind)
        if device.kind != kind:
            return Rejected(
                "kind_mismatch", f"topic kind {kind!r} but device {device.id!r} is a {device.kind!r}", device.kind
            )
        if device.unit_id != topic.unit_id:
            return Rejected(
                "unit_mismatch",
                f"topic unit {topic.unit_id!r} but device {device.id!r} belongs to {device.unit_id!r}",
                device.kind,
            )
        if topic.channel is Channel.SNAPSHOT:
            return self._snapshot(msg, device)
        return self._json(msg, topic, device)

    def _kind_label(self, topic: DeviceTopic) -> str:
        device = self.devices.devices.get(topic.device_id)
        return device.kind if device is not None else "unknown"

    def _json(self, msg: Inbound, topic: DeviceTopic, device: DeviceInfo) -> Verdict:
        raw = msg.payload
        kind = device.kind
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            return Rejected(
                "invalid_utf8", f"payload is not UTF-8: byte 0x{raw[exc.start]:02x} at offset {exc.start}", kind
            )
        if b"\\u0000" in raw and _NUL_ESCAPE.search(raw):
            return Rejected("nul_character", "payload contains \\u0000, which cannot be stored", kind)
        model = model_for(kind, topic.channel)
        if model is None:  # pragma: no cover - every upstream channel has a generic model
            return Rejected("unknown_channel", f"no schema for {kind}/{topic.channel.value}", kind)
        try:
            payload = model.model_validate_json(raw)
        except ValidationError as exc:
            return self._schema_rejection(exc, model, topic, kind)
        now = self.now()
        age_days = max_age_days(model, self.telemetry_days, self.events_days)
        ts = payload.ts
        if ts > now + timedelta(seconds=MAX_FUTURE_S):
            return Rejected(
                "ts_out_of_range",
                f"ts {ts.isoformat()} is {(ts - now).total_seconds():.0f} s ahead of the IOC clock "
                f"(at most {MAX_FUTURE_S:.0f} s)",
                kind,
            )
        if ts < now - timedelta(days=age_days):
            return Rejected(
                "ts_out_of_range",
                f"ts {ts.isoformat()} is older than the {age_days}-day retention of {model.table}",
                kind,
            )
        return self._row(msg, topic, device, payload, text)

    def _schema_rejection(self, exc: ValidationError, model: type[Envelope], topic: DeviceTopic, kind: str) -> Rejected:
        errors = exc.errors(include_url=False, include_input=False, include_context=False)
        schema = f"{model.__name__} ({kind}/{topic.channel.value})"
        first = errors[0] if errors else {}
        if first.get("type") == "json_invalid":
            return Rejected("invalid_json", f"{_json_error_message(first)}", kind)
        listed = [{"loc": _loc(e), "type": e.get("type"), "msg": clean_text(str(e.get("msg")), 300)} for e in errors]
        detail = {"schema": model.__name__, "errors": listed[:20]}
        for e in errors:
            message = str(e.get("msg", ""))
            if e.get("type") == "finite_number" or "non-finite number" in message:
                return Rejected("non_finite_number", f"{_loc(e)}: NaN, Infinity or an overflowing number", kind, detail)
            if "NUL character" in message:
                return Rejected("nul_character", f"{_loc(e)}: {clean_text(message, 300)}", kind, detail)
            if e.get("loc") == ("v",) and e.get("type") == "literal_error":
                return Rejected(
                    "unsupported_version",
                    f"schema version v is not supported by {schema} (supported: 1)",
                    kind,
                    detail,
                )
        if first.get("type") == "model_type":
            return Rejected("schema_violation", f"{schema}: the payload must be a JSON object", kind, detail)
        shown = "; ".join(f"{item['loc']}: {item['msg']}" for item in listed[:3])
        more = f" (+{len(listed) - 3} more)" if len(listed) > 3 else ""
        return Rejected("schema_violation", f"{schema}: {shown}{more}", kind, detail)

    def _row(self, msg: Inbound, topic: DeviceTopic, device: DeviceInfo, payload: Envelope, text: str) -> Verdict:
        table = payload.table
        ts = payload.ts
        if table == "telemetry":
            values: tuple = (ts, device.id, device.unit_id, device.kind, payload.id, text, msg.received_at)
        elif table == "camera_events":
            assert isinstance(payload, CameraEventV1)
            bbox = json.dumps(list(payload.bbox)) if payload.bbox is not None else None
            values = (
                ts, device.id, device.unit_id, payload.rule, payload.object_class, payload.score,
                payload.track_id, payload.zone, bbox, payload.snapshot_ref, payload.id, text, msg.received_at,
            )  # fmt: skip
        elif table == "dossier_events":
            assert isinstance(payload, DossierEventV1)
            unit_id = payload.unit_id or device.unit_id
            if payload.unit_id and not self.devices.unit_exists(payload.unit_id):
                return Rejected("unknown_unit", f"unit_id {payload.unit_id!r} is not a known unit", device.kind)
            values = (ts, payload.dossier_id, unit_id, payload.event, payload.id, text, msg.received_at)
        else:
            event_type = event_type_of(payload, topic.channel)
            values = (ts, device.id, device.unit_id, device.kind, event_type, payload.id, text, msg.received_at)
        accepted = Accepted(table, values, device.id, device.unit_id, device.kind, payload=payload)
        if isinstance(payload, StatusV1):
            accepted.status_state = payload.state
            accepted.status_reason = payload.reason
            accepted.status_info = payload.info
        return accepted

    def _snapshot(self, msg: Inbound, device: DeviceInfo) -> Verdict:
        data = msg.payload
        if not (data.startswith(b"\xff\xd8\xff") and b"\xff\xd9" in data[-32:]):
            return Rejected(
                "not_jpeg", "snapshot payload is not a JPEG image (no FFD8FF start / FFD9 end)", device.kind
            )
        digest = hashlib.sha256(data).hexdigest()
        props = dict(msg.user_properties)
        message_id = props.get("id") or f"sha256-{digest[:40]}"
        when = msg.received_at
        if "ts" in props:
            try:
                parsed = datetime.fromisoformat(props["ts"].replace("Z", "+00:00"))
            except ValueError:
                parsed = None
            if parsed is None or parsed.tzinfo is None:
                return Rejected(
                    "schema_violation", "snapshot user property ts is not RFC 3339 with offset", device.kind
                )
            when = parsed
        relative = Path("snapshots") / device.id / f"{digest}.jpg"
        payload = json.dumps(
            {"sha256": digest, "bytes": len(data), "content_type": "image/jpeg", "ref": relative.as_posix()}
        )
        values = (when, device.id, device.unit_id, device.kind, "snapshot", message_id[:64], payload, msg.received_at)
        accepted = Accepted("device_events", values, device.id, device.unit_id, device.kind)
        if self.media_root is not None:
            accepted.snapshot = (self.media_root / relative, data)
        return accepted


def dead_letter_payload(raw: bytes) -> tuple[bytes, dict[str, Any]]:
    """What ``dead_letters.payload`` keeps: the raw bytes, or for a large payload its head plus the
    size and sha256 of the whole (a flood of 10 MB messages must not fill the database)."""
    if len(raw) <= DEAD_LETTER_KEEP_BYTES:
        return raw, {}
    return raw[:DEAD_LETTER_HEAD_BYTES], {
        "truncated": True,
        "bytes": len(raw),
        "sha256": hashlib.sha256(raw).hexdigest(),
    }
