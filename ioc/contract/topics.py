"""The topic tree: ``<root>/<unit>/<kind>/<device_id>/<channel>`` (root ``ioc/v1`` by default).

Parsing is strict because the topic is attacker-controlled input: every segment must match
:data:`SEGMENT_RE` (ASCII letters, digits, ``_`` and ``-``, 1-64 characters), so nothing a device
puts in a topic can smuggle path separators, quotes, whitespace, wildcards or control characters
into logs, file names or SQL. A topic that does not parse is dead-lettered with the reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

SEGMENT_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
MAX_TOPIC_BYTES = 512


class Channel(StrEnum):
    """What a message on a device's topic is. Upstream: device -> IOC; downstream: IOC -> device."""

    TELEMETRY = "telemetry"  # upstream, periodic measurements
    EVENT = "event"  # upstream, something happened (camera rule hit, dossier step, radio playback...)
    STATUS = "status"  # upstream, retained; the device's Last Will publishes state=offline here
    SNAPSHOT = "snapshot"  # upstream, a binary JPEG
    CMD_ACK = "cmd/ack"  # upstream, the device's answer to a command
    CMD = "cmd"  # downstream, a command to the device (published by the IOC)
    PRESENCE = "presence"  # downstream/derived, published by the ingest workers on every presence change

    @property
    def upstream(self) -> bool:
        return self not in (Channel.CMD, Channel.PRESENCE)


CHANNELS = {c.value: c for c in Channel}


class TopicError(ValueError):
    """The topic does not belong to the contract; ``code`` is the dead-letter reason code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class DeviceTopic:
    unit_id: str
    kind: str
    device_id: str
    channel: Channel


def root_parts(root: str) -> tuple[str, ...]:
    parts = tuple(root.strip("/").split("/"))
    if not parts or any(not p or p in ("+", "#") for p in parts):
        raise ValueError(f"invalid topic root {root!r}")
    return parts


def _describe(segment: str) -> str:
    shown = segment if len(segment) <= 40 else segment[:40] + "…"
    return repr(shown)


def parse_topic(topic: str, root: str = "ioc/v1") -> DeviceTopic:
    """Split ``topic`` into its parts or raise :class:`TopicError` saying exactly what is wrong."""
    if len(topic.encode("utf-8", "surrogatepass")) > MAX_TOPIC_BYTES:
        raise TopicError("bad_topic", f"topic longer than {MAX_TOPIC_BYTES} bytes")
    prefix = root_parts(root)
    parts = topic.split("/")
    if tuple(parts[: len(prefix)]) != prefix:
        raise TopicError("bad_topic", f"topic does not start with {'/'.join(prefix)}/")
    rest = parts[len(prefix) :]
    if len(rest) < 4:
        raise TopicError(
            "bad_topic", f"expected {'/'.join(prefix)}/<unit>/<kind>/<device_id>/<channel>, got {len(rest)} segments"
        )
    unit_id, kind, device_id = rest[:3]
    channel_name = "/".join(rest[3:])
    for name, segment in (("unit", unit_id), ("kind", kind), ("device_id", device_id)):
        if not SEGMENT_RE.fullmatch(segment):
            raise TopicError(
                "bad_topic",
                f"{name} segment {_describe(segment)} is not 1-64 characters of A-Z a-z 0-9 _ - (starting with a "
                "letter or digit)",
            )
    channel = CHANNELS.get(channel_name)
    if channel is None:
        raise TopicError(
            "unknown_channel",
            f"channel {_describe(channel_name)} is not one of {', '.join(sorted(CHANNELS))}",
        )
    return DeviceTopic(unit_id, kind, device_id, channel)


def build_topic(unit_id: str, kind: str, device_id: str, channel: Channel | str, root: str = "ioc/v1") -> str:
    """The topic of a device's channel; raises ValueError for a segment the contract forbids."""
    channel = Channel(channel)
    for segment in (unit_id, kind, device_id):
        if not SEGMENT_RE.fullmatch(segment):
            raise ValueError(f"invalid topic segment {segment!r}")
    return "/".join((*root_parts(root), unit_id, kind, device_id, channel.value))


def subscription(root: str = "ioc/v1", share_group: str | None = "ioc-ingest") -> str:
    """The ingest workers' subscription: shared (``$share/<group>/<root>/#``) so that N workers split
    the load, or exclusive (``<root>/#``) when ``share_group`` is empty."""
    filter_ = "/".join((*root_parts(root), "#"))
    if share_group:
        if not SEGMENT_RE.fullmatch(share_group):
            raise ValueError(f"invalid share group {share_group!r}")
        return f"$share/{share_group}/{filter_}"
    return filter_
