"""Fan-out of live events to websocket clients, each with its own bounded queue.

A wall screen on a slow link must not slow the others or grow memory without bound: every client
has a queue of ``queue_size`` events; when it is full the client's queue is emptied and it gets one
``resync`` message, telling it to reload its state over HTTP (which is always complete) and carry
on. Filtering by topic and by the client's units happens here, before queueing.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from prometheus_client import Counter, Gauge

from ioc.hub.events import LiveEvent

log = logging.getLogger("ioc.hub")

CLIENTS = Gauge("ioc_hub_clients", "Websocket clients connected to this API process")
DELIVERED = Counter("ioc_hub_events_delivered_total", "Live events queued for clients", ["topic"])
RESYNCS = Counter("ioc_hub_resyncs_total", "Clients told to resync because their queue overflowed")

UnitFilter = Callable[[str | None], bool]


def all_units(unit_id: str | None) -> bool:
    return True


@dataclass(frozen=True, slots=True)
class Frame:
    """An event ready to send: encoded once for every client (1000 walls cost one ``json.dumps``).

    ``seq`` is the alert's sequence number for alert events (what a client replays from), else None.
    """

    event: LiveEvent
    seq: int | None
    text: str
    severity_rank: int | None

    @classmethod
    def of(cls, event: LiveEvent) -> Frame:
        seq = event.data.get("seq") if event.topic == "alert" else None
        body: dict = {"type": "event", "event": event.model_dump(mode="json")}
        if seq is not None:
            body = {"type": "event", "seq": seq, "event": body["event"]}
        severity = event.data.get("severity")
        rank = SEVERITY_RANK.get(severity) if isinstance(severity, str) else None
        return cls(event, seq, json.dumps(body, ensure_ascii=False, separators=(",", ":")), rank)


SEVERITY_RANK = {"info": 0, "minor": 1, "moderate": 2, "severe": 3, "critical": 4}


@dataclass(eq=False)
class Subscription:
    """One client's view of the stream."""

    topics: frozenset[str]
    allows_unit: UnitFilter
    queue: asyncio.Queue[Frame | dict] = field(default_factory=asyncio.Queue)
    dropped: int = 0

    def wants(self, event: LiveEvent) -> bool:
        if self.topics and event.topic not in self.topics:
            return False
        # The platform's own news (hub reconnected, database away or back) concerns every client and
        # holds no commune's data: a commune officer's console must show the banner too.
        if event.topic == "system" and event.unit_id is None:
            return True
        # An incident belongs to its lead commune and to every helping one: each of them hears of it.
        if event.unit_ids:
            return any(self.allows_unit(unit) for unit in event.unit_ids)
        return self.allows_unit(event.unit_id)


class Hub:
    """Fan-out inside one API process; all methods run on the event loop's thread."""

    def __init__(self, queue_size: int = 500) -> None:
        self.queue_size = queue_size
        self._subs: set[Subscription] = set()

    def subscribe(self, topics: frozenset[str] = frozenset(), allows_unit: UnitFilter = all_units) -> Subscription:
        sub = Subscription(topics, allows_unit, asyncio.Queue(maxsize=self.queue_size))
        self._subs.add(sub)
        CLIENTS.set(len(self._subs))
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._subs.discard(sub)
        CLIENTS.set(len(self._subs))

    @property
    def client_count(self) -> int:
        return len(self._subs)

    def publish(self, event: LiveEvent) -> int:
        """Queue ``event`` for every interested client; return how many got it. Never blocks."""
        delivered = 0
        frame: Frame | None = None
        for sub in list(self._subs):
            if not sub.wants(event):
                continue
            frame = frame or Frame.of(event)
            try:
                sub.queue.put_nowait(frame)
            except asyncio.QueueFull:
                self._resync(sub)
                continue
            delivered += 1
        if delivered:
            DELIVERED.labels(event.topic).inc(delivered)
        return delivered

    def _resync(self, sub: Subscription) -> None:
        dropped = sub.queue.qsize() + 1
        while not sub.queue.empty():
            sub.queue.get_nowait()
        sub.dropped += dropped
        RESYNCS.inc()
        log.warning("websocket client too slow: dropped %d queued events, asking it to resync", dropped)
        sub.queue.put_nowait({"type": "resync", "reason": "slow_consumer", "dropped": dropped})
