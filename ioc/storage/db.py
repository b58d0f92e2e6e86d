"""Connections to PostgreSQL.

One place turns the configured URL into psycopg connections and pools, so every process (API,
ingest, detectors, CLI) connects the same way: UTC session time zone (times are converted to
Asia/Ho_Chi_Minh only for display), an application name that shows in ``pg_stat_activity``.

Failover: the URL may name several hosts, ``postgresql://ioc@db1,db2/ioc?target_session_attrs=read-write``
(libpq tries them in order and keeps the one that accepts writes). After the primary dies, pooled
connections to it are broken: the pool checks each connection before lending it and replaces a dead
one, so the API recovers on the promoted standby by itself, without a restart (tests/deploy).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
from psycopg_pool import ConnectionPool


def _configure(conn: psycopg.Connection) -> None:
    conn.execute("SET TIME ZONE 'UTC'")
    conn.commit()


def connect(url: str, *, autocommit: bool = False, application_name: str = "ioc") -> psycopg.Connection:
    conn = psycopg.connect(url, autocommit=autocommit, application_name=application_name)
    conn.execute("SET TIME ZONE 'UTC'")
    if not autocommit:
        conn.commit()
    return conn


def make_pool(url: str, *, min_size: int = 1, max_size: int = 8, application_name: str = "ioc",
              timeout: float = 30.0) -> ConnectionPool:  # fmt: skip
    """A connection pool; call ``.open(wait=...)`` or use as a context manager. ``timeout``: how
    long ``connection()`` waits for a free or new connection before ``PoolTimeout``."""
    return ConnectionPool(
        url,
        min_size=min_size,
        max_size=max_size,
        timeout=timeout,
        # A cut network hangs rather than fails: unacknowledged data gives up after 5 s.
        kwargs={
            "application_name": application_name,
            "connect_timeout": 3,
            "keepalives": 1,
            "keepalives_idle": 5,
            "keepalives_interval": 2,
            "keepalives_count": 2,
            "tcp_user_timeout": 5000,
        },
        configure=_configure,
        # A connection to a primary that has gone away is found out here, not in a request.
        check=ConnectionPool.check_connection,
        # Keep trying while the standby is being promoted (never give up: the pool is the API's only path).
        reconnect_timeout=float("inf"),
        open=False,
    )


@contextmanager
def transaction(url: str) -> Iterator[psycopg.Connection]:
    """A short-lived connection with one transaction: for CLI commands and tests."""
    with connect(url) as conn, conn.transaction():
        yield conn


def ping(url: str, timeout_s: float = 2.0) -> None:
    """Raise if the database cannot be reached within ``timeout_s``."""
    with psycopg.connect(url, connect_timeout=max(1, int(timeout_s)), autocommit=True) as conn:
        conn.execute("SELECT 1")


def with_database(url: str, database: str) -> str:
    """``url`` pointing at another database on the same server, keeping its form (URL or key=value)."""
    if "://" not in url:
        return psycopg.conninfo.make_conninfo(url, dbname=database)
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + quote(database), parts.query, parts.fragment))
