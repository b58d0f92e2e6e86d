"""Feed the hub from PostgreSQL notifications (LISTEN), reconnecting with backoff."""

from __future__ import annotations

import asyncio
import logging

import psycopg

from ioc.hub.events import CHANNEL, LiveEvent, decode
from ioc.hub.hub import Hub

log = logging.getLogger("ioc.hub.listener")

#: Longest wait between reconnection attempts: short, so the walls follow a failover within seconds.
MAX_RETRY_S = 5.0


async def listen_forever(database_url: str, hub: Hub, *, ready: asyncio.Event | None = None) -> None:
    """Relay every notification on :data:`CHANNEL` to ``hub`` until cancelled.

    After a reconnect the hub publishes a ``system`` event ``hub.reconnected``: notifications sent
    while the listener was away are lost (PostgreSQL does not queue them), so clients resync.
    """
    delay = 1.0
    first = True
    while True:
        try:
            async with await psycopg.AsyncConnection.connect(
                database_url, autocommit=True, application_name="ioc-hub"
            ) as conn:
                await conn.execute(f"LISTEN {CHANNEL}")
                delay = 1.0
                if ready is not None:
                    ready.set()
                if not first:
                    hub.publish(LiveEvent(topic="system", type="hub.reconnected"))
                first = False
                log.info("listening for live events on %s", CHANNEL)
                async for note in conn.notifies():
                    try:
                        hub.publish(decode(note.payload))
                    except Exception:  # noqa: BLE001 - one bad notification must not stop the stream
                        log.exception("ignoring a malformed live event: %.200s", note.payload)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - reconnect whatever went wrong
            log.warning("live-event listener lost the database (%s); retrying in %.0f s", exc, delay)
            await asyncio.sleep(delay)
            delay = min(MAX_RETRY_S, delay * 2)
