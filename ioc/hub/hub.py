"""Fan-out of live events to websocket clients, each with its own bounded backlog.

The cost that grows with the number of walls is what happens per client per event, so it is kept to
one list append: an event is filtered and encoded once (:class:`Frame`) and appended to each
interested client's backlog; once the events that arrived together are queued, one pass
(:meth:`Hub.flush`) writes each client's backlog as one websocket message (a ``batch`` when there
are several), synchronously when the socket takes it, which it does unless the client is slow: no
task, wake-up or timer per client per event.

A wall screen on a slow link must not slow the others or grow memory without bound: its pending write
waits alone, and a client whose backlog reaches ``queue_size`` events loses it and gets one
``resync`` message instead (with the last ``seq`` it was sent, to reconnect from with ``since``).
Filtering by topic and by the client's units happens here, before queueing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

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

#: What a client's backlog holds: encoded events, and the hub's own messages (``resync``, ``ping``).
Item = Frame | dict
#: Turns a client's backlog into the text of one websocket message (None: nothing to send to it).
Render = Callable[[list[Item]], str | None]
#: Sends one text message to the client (``WebSocket.send_text``).
Write = Callable[[str], Coroutine[Any, Any, None]]


@dataclass(eq=False)
class Subscription:
    """One client's view of the stream: its filters, its backlog, and how to write to it.

    Until :meth:`start` (the client is still receiving its snapshot), events only pile up.
    """

    topics: frozenset[str]
    allows_unit: UnitFilter
    limit: int = 500
    backlog: list[Item] = field(default_factory=list)
    dropped: int = 0
    #: Loop time of the last message written to the client (the route's heartbeat looks at it).
    written_at: float = 0.0
    #: Why writing failed (the client left, the socket broke): the route ends the connection.
    failed: BaseException | None = None
    _render: Render | None = None
    _write: Write | None = None
    _sending: asyncio.Task[None] | None = None
    _on_fail: Callable[[], None] | None = None

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

    def take(self) -> list[Item]:
        """Everything queued since the last call, oldest first (the backlog is emptied)."""
        items, self.backlog = self.backlog, []
        return items

    def start(self, render: Render, write: Write, on_fail: Callable[[], None]) -> None:
        """Begin live delivery: from now on :meth:`flush` writes the backlog to the client."""
        self._render, self._write, self._on_fail = render, write, on_fail
        self.flush()

    @property
    def sending(self) -> asyncio.Task[None] | None:
        """The write that had to wait (the client's socket buffer was full), if one is under way."""
        return self._sending

    def flush(self) -> None:
        """Write the backlog as one message, synchronously when the socket takes it at once.

        A write to a websocket whose buffer has room never suspends, so the send coroutine is run
        here, step by step, with no task, no wake-up and no scheduling per client. Only a client
        whose socket is full (slow, stalled) gets a task that waits for it; meanwhile its backlog
        grows (bounded: :meth:`Hub.publish` replaces it with a ``resync``) and the others go on.
        """
        if self._write is None or self._sending is not None or self.failed is not None or not self.backlog:
            return
        text = self._render(self.take()) if self._render else None
        if text is None:
            return
        self.written_at = asyncio.get_running_loop().time()
        send = self._write(text)
        try:
            blocker = send.send(None)
        except StopIteration:
            return
        except Exception as exc:  # noqa: BLE001 - the client went away: its route ends the stream
            self._fail(exc)
            return
        self._sending = asyncio.ensure_future(self._finish(send, blocker))

    async def _finish(self, send: Coroutine[Any, Any, None], blocker: Any) -> None:
        """Drive a suspended send to its end (what a task would do), then write what queued meanwhile."""
        try:
            while True:
                if blocker is not None:
                    # What a task does with the future a coroutine yields: clear the flag the
                    # coroutine's ``await`` set (asyncio's protocol), then wait for it here.
                    blocker._asyncio_future_blocking = False
                try:
                    await (blocker if blocker is not None else asyncio.sleep(0))
                except asyncio.CancelledError:
                    send.close()
                    raise
                except Exception:  # noqa: BLE001, S110 - the send sees it when resumed
                    pass
                blocker = send.send(None)
        except StopIteration:
            pass
        except Exception as exc:  # noqa: BLE001 - as in flush
            self._fail(exc)
        finally:
            self._sending = None
        self.flush()

    def _fail(self, exc: BaseException) -> None:
        self.failed = exc
        if self._on_fail is not None:
            self._on_fail()

    def stop(self) -> None:
        """No more writes (the route is closing the connection)."""
        self._write = None
        if self._sending is not None:
            self._sending.cancel()


class Hub:
    """Fan-out inside one API process; all methods run on the event loop's thread."""

    def __init__(self, queue_size: int = 500) -> None:
        self.queue_size = queue_size
        self._subs: set[Subscription] = set()
        self._dirty: list[Subscription] = []
        self._flush_soon: asyncio.Handle | None = None

    def subscribe(self, topics: frozenset[str] = frozenset(), allows_unit: UnitFilter = all_units) -> Subscription:
        sub = Subscription(topics, allows_unit, self.queue_size)
        self._subs.add(sub)
        CLIENTS.set(len(self._subs))
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._subs.discard(sub)
        sub.stop()
        CLIENTS.set(len(self._subs))

    @property
    def client_count(self) -> int:
        return len(self._subs)

    def publish(self, event: LiveEvent) -> int:
        """Queue ``event`` for every interested client; return how many got it. Never blocks.

        The writes happen a moment later, in one pass over the clients (:meth:`flush`): the events
        that arrive together (one read of the LISTEN socket holds every event of a commit, and often
        of several) reach each client as one message.
        """
        delivered = 0
        frame: Frame | None = None
        dirty = self._dirty
        for sub in self._subs:
            if not sub.wants(event):
                continue
            frame = frame or Frame.of(event)
            if not sub.backlog:
                dirty.append(sub)
            if len(sub.backlog) >= sub.limit:
                self._resync(sub)
            else:
                sub.backlog.append(frame)
                delivered += 1
        if delivered:
            DELIVERED.labels(event.topic).inc(delivered)
        if dirty and self._flush_soon is None:
            with contextlib.suppress(RuntimeError):  # no loop: a test reads the backlogs itself
                self._flush_soon = asyncio.get_running_loop().call_soon(self.flush)
        return delivered

    def flush(self) -> None:
        """Write every client's backlog (see :meth:`Subscription.flush`)."""
        self._flush_soon = None
        dirty, self._dirty = self._dirty, []
        for sub in dirty:
            sub.flush()

    def _resync(self, sub: Subscription) -> None:
        dropped = len(sub.backlog) + 1
        sub.dropped += dropped
        RESYNCS.inc()
        log.warning("websocket client too slow: dropped %d queued events, asking it to resync", dropped)
        sub.backlog = [{"type": "resync", "reason": "slow_consumer", "dropped": dropped}]
