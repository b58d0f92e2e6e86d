"""What the running app holds: settings, the database pool, the broker link. Built in the lifespan."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from psycopg_pool import ConnectionPool

from ioc.mqtt import MqttLink
from ioc.settings import Settings


@dataclass
class AppState:
    settings: Settings
    database_url: str
    pool: ConnectionPool
    mqtt: MqttLink | None
    _migrations_checked_at: float = field(default=0.0)
    _migrations_current: bool = field(default=False)
    _pending: list[str] = field(default_factory=list)

    def migrations_pending(self, max_age_s: float = 15.0) -> list[str]:
        """Pending migration ids, re-read at most every ``max_age_s`` (reading them walks the files)."""
        now = time.monotonic()
        if now - self._migrations_checked_at > max_age_s:
            from ioc.storage.migrate import status

            self._pending = status(self.database_url).pending
            self._migrations_checked_at = now
        return self._pending
