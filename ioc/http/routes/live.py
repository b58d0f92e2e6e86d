"""``/ws``: the live stream of the operations wall and the commune consoles (websocket).

Protocol (JSON text frames, server to client):

* ``{"type": "hello", "server_time", "topics", "last_seq"}`` first;
* then the **snapshot** (no ``since``): every open alert the client may see, as ``alert.snapshot``
  events, followed by ``{"type": "snapshot_end", "last_seq"}``; or the **replay** (``since=<seq>``):
  every alert changed after ``seq``, in ``seq`` order, as ``alert.replay`` events, then
  ``{"type": "replay_end", "last_seq"}``;
* then live events ``{"type": "event", "seq", "event": {topic, type, unit_id, at, data}}``; for
  alert events ``seq`` is the alert's sequence number: remember the last one and reconnect with
  ``since`` to miss nothing;
* several of these may come in one message, ``{"type": "batch", "items": [...]}``, when they queued
  up while the previous message was being sent;
* ``{"type": "ping"}`` after 5 s of silence (a heartbeat); ``{"type": "resync", "since"}`` when the client
  fell behind (its backlog overflowed) and must reconnect with ``since`` (or reload over HTTP).

The client sends nothing (it may send pings; they are ignored). Filters: ``topics``, ``units``,
``min_severity``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, WebSocket, WebSocketDisconnect
from starlette.websockets import WebSocketState

from ioc.alerts.access import scope_condition
from ioc.alerts.model import Severity
from ioc.auth.deps import STREAM_RECHECK_S, websocket_principal, websocket_still_valid
from ioc.hub.events import TOPICS, LiveEvent
from ioc.hub.hub import Frame, Hub, Item, Subscription

router = APIRouter(tags=["live"])

# Heartbeat: a page that hears nothing for 3 of these knows the API is hung (stopped, overloaded).
PING_INTERVAL_S = 5.0
# Credentials are checked again this often: an expired token, a logout or a disabled account ends the
# stream within this time (issue #15 asks for 5 s). One indexed session lookup per connection.
RECHECK_S = STREAM_RECHECK_S
REPLAY_LIMIT = 5000
_ALERT_FIELDS = "id, seq, kind, severity, status, title, unit_id, assigned_unit_id, count, lat, lon, last_seen"


def _replay_rows(pool: Any, since: int | None, units: frozenset[str] | None) -> list[dict[str, Any]]:
    """Open alerts (snapshot) or alerts changed after ``since`` (replay), in ``seq`` order."""
    where = ["seq > %s"] if since is not None else ["status IN ('new', 'acknowledged', 'in_progress')"]
    params: list[Any] = [since] if since is not None else []
    if units is not None:
        where.append(scope_condition(units, params))
    params.append(REPLAY_LIMIT)
    with pool.connection() as conn:
        cur = conn.execute(
            f"SELECT {_ALERT_FIELDS} FROM alerts WHERE {' AND '.join(where)} ORDER BY seq LIMIT %s", params
        )
        names = [d.name for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def _alert_event(row: dict[str, Any], kind: str) -> dict[str, Any]:
    event = LiveEvent(topic="alert", type=kind, unit_id=row["unit_id"], at=row["last_seen"], data=row)
    return {"type": "event", "seq": row["seq"], "event": event.model_dump(mode="json")}


def unit_filter(units: frozenset[str] | None) -> Callable[[str | None], bool]:
    if units is None:
        return lambda unit: True
    return lambda unit: unit is not None and unit in units


@router.websocket("/ws")
async def live_stream(
    websocket: WebSocket,
    topics: Annotated[str, Query(description=f"Comma-separated subset of {', '.join(TOPICS)}; empty: all")] = "",
    since: Annotated[int | None, Query(ge=0, description="Replay alerts changed after this seq")] = None,
    units: Annotated[str, Query(description="Comma-separated unit ids to narrow to (within the caller's)")] = "",
    min_severity: Annotated[Severity | None, Query(description="Only alerts at least this severe")] = None,
) -> None:
    wanted = frozenset(t for t in topics.split(",") if t)
    unknown = wanted - set(TOPICS)
    allowed = await _allowed_units(websocket)
    if allowed is False:
        return  # refused and closed by _allowed_units
    if unknown:
        await websocket.send_json({"type": "error", "reason": f"unknown topics: {', '.join(sorted(unknown))}"})
        await websocket.close(code=1008)
        return
    scope = allowed if isinstance(allowed, frozenset) else None
    narrowed = frozenset(u for u in units.split(",") if u)
    if narrowed:
        scope = narrowed if scope is None else scope & narrowed
    min_rank = min_severity.rank if min_severity else 0

    hub: Hub = websocket.app.state.hub
    sub = hub.subscribe(wanted, unit_filter(scope))
    receiver = asyncio.create_task(_drain_client(websocket))
    try:
        # Subscribed before reading the database: nothing committed in between is missed; live alert
        # events already covered by the snapshot/replay are dropped by their seq below.
        rows = []
        if not wanted or "alert" in wanted:
            rows = await asyncio.to_thread(_replay_rows, websocket.app.state.ioc.pool, since, scope)
        last_seq = max((r["seq"] for r in rows), default=since or 0)
        await websocket.send_json({"type": "hello", "server_time": datetime.now(UTC).isoformat(),
                                   "topics": sorted(wanted or TOPICS), "last_seq": last_seq})  # fmt: skip
        kind = "alert.replay" if since is not None else "alert.snapshot"
        for row in rows:
            if Severity(row["severity"]).rank >= min_rank:
                await websocket.send_json(_alert_event(row, kind))
        await websocket.send_json({"type": "replay_end" if since is not None else "snapshot_end", "last_seq": last_seq})
        await _stream(websocket, sub, receiver, last_seq, min_rank)
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        hub.unsubscribe(sub)
        receiver.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await receiver


async def _stream(websocket: WebSocket, sub: Subscription, receiver: asyncio.Task, last_seq: int,
                  min_rank: int) -> None:  # fmt: skip
    """Deliver the live events of ``sub`` until the client leaves or its credentials stop being valid.

    The hub writes the events (:meth:`Subscription.flush`, nothing per client per event but the
    write); this task only wakes on one timer per connection (heartbeat, credential recheck), when
    the client leaves, or when a write failed.
    """
    loop = asyncio.get_running_loop()
    wake = asyncio.Event()

    def render(items: list[Item]) -> str | None:
        nonlocal last_seq
        texts: list[str] = []
        for item in items:
            if isinstance(item, Frame):
                if item.seq is not None:
                    if item.seq <= last_seq:
                        continue  # already sent in the snapshot/replay
                    last_seq = item.seq
                if item.severity_rank is not None and item.event.topic == "alert" and item.severity_rank < min_rank:
                    continue
                texts.append(item.text)
            elif item.get("type") == "resync":
                texts.append(json.dumps({**item, "since": last_seq}))  # where to reconnect from
            else:
                texts.append(json.dumps(item))
        if not texts:
            return None
        # Whatever queued up since the last write goes out as one websocket message.
        return texts[0] if len(texts) == 1 else '{"type":"batch","items":[' + ",".join(texts) + "]}"

    receiver.add_done_callback(lambda _: wake.set())
    sub.written_at = loop.time()
    sub.start(render, websocket.send_text, wake.set)
    recheck_at = loop.time() + RECHECK_S
    timer = loop.call_at(min(recheck_at, sub.written_at + PING_INTERVAL_S), wake.set)
    try:
        while True:
            await wake.wait()
            wake.clear()
            if receiver.done() or sub.failed is not None:
                return
            now = loop.time()
            if now >= recheck_at:
                reason = await websocket_still_valid(websocket)
                if reason is not None:
                    sub.stop()
                    with contextlib.suppress(asyncio.CancelledError):
                        await (sub.sending or asyncio.sleep(0))
                    await websocket.send_json({"type": "error", "reason": f"{reason}; reconnect with a fresh token"})
                    await websocket.close(code=1008)
                    return
                recheck_at = loop.time() + RECHECK_S
            if now >= sub.written_at + PING_INTERVAL_S and not sub.backlog:
                sub.backlog.append({"type": "ping", "server_time": datetime.now(UTC).isoformat()})
                sub.flush()
            timer.cancel()
            timer = loop.call_at(min(recheck_at, sub.written_at + PING_INTERVAL_S), wake.set)
    finally:
        timer.cancel()


async def _allowed_units(websocket: WebSocket) -> frozenset[str] | None | bool:
    """The units the caller may see (None: all), or False after refusing the connection.

    Staff accounts only (access token in ``?access_token=``, a header, or a first
    ``{"type": "auth", ...}`` message; see ``ioc.auth.deps.websocket_principal``): commune officers
    get their own units, district staff everything.
    """
    principal = await websocket_principal(websocket)
    if websocket.client_state == WebSocketState.CONNECTING:
        await websocket.accept()
    reason = websocket.state.auth_error if principal is None else None
    if principal is not None and principal.kind != "user":
        reason = "the live stream is for staff accounts, not API keys"
    if reason is not None:
        await websocket.send_json({"type": "error", "reason": reason})
        await websocket.close(code=1008)
        return False
    return principal.visible_units()


async def _drain_client(websocket: WebSocket) -> None:
    """Read (and ignore) what the client sends, so a close is noticed at once."""
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        while True:
            await websocket.receive_text()
