"""Versioned schema migrations, applied with yoyo-migrations.

Migrations live in ``ioc/storage/migrations``: plain ``.sql`` files for ordinary DDL, and ``.py``
files where the DDL depends on the server (TimescaleDB hypertables vs native partitions). yoyo
records what was applied and takes a lock, so two processes starting at once cannot both migrate,
and running ``ioc db migrate`` again is a no-op.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from yoyo import get_backend, read_migrations

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def yoyo_url(database_url: str) -> str:
    """yoyo names its psycopg 3 driver in the URL scheme.

    yoyo cannot parse a multi-host URL (``db1:5432,db2:5432``, for failover): the hosts and ports
    move into the query (``?host=db1,db2&port=5432,5432``), which yoyo hands to libpq as they are.
    """
    parts = urlsplit(database_url)
    userinfo, _, hosts = parts.netloc.rpartition("@")
    if "," not in hosts:
        return urlunsplit(("postgresql+psycopg", *parts[1:]))
    names, ports = [], []
    for item in hosts.split(","):
        host, _, port = item.rpartition(":") if not item.endswith("]") and ":" in item else (item, "", "")
        names.append(host)
        ports.append(port or "5432")
    query = "&".join(q for q in (parts.query, f"host={','.join(names)}&port={','.join(ports)}") if q)
    netloc = f"{userinfo}@" if userinfo else ""
    return urlunsplit(("postgresql+psycopg", netloc, parts.path, query, parts.fragment))


@dataclass(frozen=True)
class MigrationStatus:
    applied: list[str]
    pending: list[str]

    @property
    def current(self) -> bool:
        return not self.pending


def _backend_and_migrations(database_url: str):
    backend = get_backend(yoyo_url(database_url))
    migrations = read_migrations(str(MIGRATIONS_DIR))
    return backend, migrations


def migrate(database_url: str) -> list[str]:
    """Apply pending migrations; return the ids applied (empty when already current)."""
    backend, migrations = _backend_and_migrations(database_url)
    with backend.lock():
        pending = backend.to_apply(migrations)
        ids = [m.id for m in pending]
        if ids:
            log.info("applying migrations: %s", ", ".join(ids))
            backend.apply_migrations(pending)
    return ids


def status(database_url: str) -> MigrationStatus:
    backend, migrations = _backend_and_migrations(database_url)
    pending = {m.id for m in backend.to_apply(migrations)}
    return MigrationStatus(
        applied=[m.id for m in migrations if m.id not in pending],
        pending=[m.id for m in migrations if m.id in pending],
    )
