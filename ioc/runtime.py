"""Resolve where the database and the broker are, starting the embedded ones when none is configured.

Used by ``ioc up`` (which keeps them for its children) and by one-shot commands such as
``ioc db migrate`` (which stop what they started when they finish).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from ioc.settings import Settings

log = logging.getLogger(__name__)

EMBEDDED_DATABASE = "ioc"


@contextmanager
def database_url(settings: Settings) -> Iterator[str]:
    """The configured database URL, or an embedded PostgreSQL's (data under ``var_dir/pg``)."""
    if settings.database_url:
        yield settings.database_url
        return
    from ioc.embedded.postgres import EmbeddedPostgres

    server = EmbeddedPostgres(settings.var_dir / "pg")
    already_running = server.pid() is not None
    server.start()
    try:
        yield server.ensure_database(EMBEDDED_DATABASE)
    finally:
        if not already_running:
            server.stop()


@contextmanager
def mqtt_url(settings: Settings) -> Iterator[str]:
    """The configured broker URL, or an embedded rumqttd on free local ports."""
    if settings.mqtt_url:
        yield settings.mqtt_url
        return
    from ioc.embedded.broker import EmbeddedBroker

    broker = EmbeddedBroker(settings.var_dir / "broker").start()
    try:
        yield broker.url
    finally:
        broker.stop()
