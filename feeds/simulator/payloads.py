"""Payloads in the MQTT contract's shape (docs/mqtt.md), built the way a device would build them.

The simulator is an outside source like any device: it speaks the published contract (topic tree
and JSON envelope ``{"v", "id", "ts", ...}``) and nothing else, so what it sends goes through the
same validation as real traffic. Its tests check every payload against the contract's models.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from feeds.simulator.core import SimMessage
from ioc.contract.topics import build_topic


def envelope(message_id: str, at: datetime, **fields: Any) -> bytes:
    body = {"v": 1, "id": message_id, "ts": at.isoformat(timespec="milliseconds"), **fields}
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def message(
    root: str,
    unit_id: str,
    kind: str,
    device_id: str,
    channel: str,
    at: datetime,
    message_id: str,
    /,
    *,
    retain: bool = False,
    **fields: Any,
) -> SimMessage:
    return SimMessage(
        at=at,
        topic=build_topic(unit_id, kind, device_id, channel, root),
        payload=envelope(message_id, at, **fields),
        qos=1,
        retain=retain,
    )
