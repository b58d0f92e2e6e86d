"""Knowing, within a second, that PostgreSQL is away, so the API says so at once.

Without this every request waits for the connection pool (30 s by default) and then fails with a
500 or a timeout; the wall shows stale data with no sign of trouble. A watcher pings the database
on its own connection every :data:`INTERVAL_S` with a hard :data:`TIMEOUT_S` (a cut network hangs
rather than fails, so the timeout is ours, not libpq's); one failed ping marks it down. While down,
:mod:`ioc.http.guards` answers 503 problem+json for every route that needs it and refuses ``/ws``;
connected websocket clients get a ``system`` event ``database.unavailable`` (and
``database.available`` when it is back) so the pages show their banner. A route that meets a
connection error calls :meth:`DatabaseWatch.suspect` to ping again at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import psycopg

from ioc.hub.events import LiveEvent
from ioc.hub.hub import Hub

log = logging.getLogger("ioc.http.dbwatch")

INTERVAL_S = 0.5
TIMEOUT_S = 1.0


class DatabaseWatch:
    def __init__(self, database_url: str, hub: Hub | None = None) -> None:
        self.database_url = database_url
        self.hub = hub
        self.down = False
        self.changed_at = time.monotonic()
        self._conn: psycopg.AsyncConnection | None = None
        self._wake = asyncio.Event()

    def suspect(self) -> None:
        """Ping now (a request just met a connection error)."""
        self._wake.set()

    async def check(self) -> bool:
        """One ping; updates :attr:`down` and tells the hub on a change. True when reachable."""
        try:
            await asyncio.wait_for(self._ping(), TIMEOUT_S)
            self._set(False, None)
            return True
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure means unreachable for our purpose
            await self._drop()
            self._set(True, exc)
            return False

    async def _ping(self) -> None:
        if self._conn is None or self._conn.closed:
            self._conn = await psycopg.AsyncConnection.connect(
                self.database_url, autocommit=True, application_name="ioc-api-watch", connect_timeout=2
            )
        await self._conn.execute("SELECT 1")

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                # close() on a hung socket could wait: it is not awaited beyond a moment
                await asyncio.wait_for(conn.close(), 0.2)

    def _set(self, down: bool, exc: Exception | None) -> None:
        if down == self.down:
            return
        self.down = down
        self.changed_at = time.monotonic()
        if down:
            log.warning("database unreachable (%s): answering 503 until it is back", exc or "timeout")
        else:
            log.info("database reachable again")
        if self.hub is not None:
            self.hub.publish(LiveEvent(topic="system", type="database.unavailable" if down else "database.available"))

    async def run_forever(self) -> None:
        try:
            while True:
                await self.check()
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), INTERVAL_S)
        finally:
            await self._drop()
