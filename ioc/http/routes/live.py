"""``/ws``: the live stream of the operations wall (websocket).

Protocol (JSON text frames, server to client): ``hello`` first (server time, topics), then
``{"type": "event", "seq": n, "event": {topic, type, unit_id, at, data}}`` messages, ``ping`` every 20 s of silence, and
``resync`` when the client fell behind and must reload its state over HTTP. The client sends
nothing; it may close at any time.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime

from fastapi import APIRouter, Query, WebSocket, WebSocketDisconnect

from ioc.hub.events import TOPICS
from ioc.hub.hub import Hub

router = APIRouter(tags=["live"])

PING_INTERVAL_S = 20.0


@router.websocket("/ws")
async def live_stream(
    websocket: WebSocket,
    topics: str = Query("", description=f"Comma-separated subset of {', '.join(TOPICS)}; empty: all"),
) -> None:
    wanted = frozenset(t for t in topics.split(",") if t)
    unknown = wanted - set(TOPICS)
    await websocket.accept()
    if unknown:
        await websocket.send_json({"type": "error", "reason": f"unknown topics: {', '.join(sorted(unknown))}"})
        await websocket.close(code=1008)
        return
    hub: Hub = websocket.app.state.hub
    sub = hub.subscribe(wanted)
    receiver = asyncio.create_task(_drain_client(websocket))
    try:
        await websocket.send_json(
            {"type": "hello", "server_time": datetime.now(UTC).isoformat(), "topics": sorted(wanted or TOPICS)}
        )
        while not receiver.done():
            try:
                message = await asyncio.wait_for(sub.queue.get(), timeout=PING_INTERVAL_S)
            except TimeoutError:
                message = {"type": "ping", "server_time": datetime.now(UTC).isoformat()}
            await websocket.send_json(message)
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        hub.unsubscribe(sub)
        receiver.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await receiver


async def _drain_client(websocket: WebSocket) -> None:
    """Read (and ignore) what the client sends, so a close is noticed at once."""
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        while True:
            await websocket.receive_text()
