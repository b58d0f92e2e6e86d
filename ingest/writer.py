"""Durable, idempotent batch writes.

One batch is one transaction: the accepted rows of each table are sent with **binary COPY** into a
TEMP staging table, then moved with ``INSERT ... SELECT ... ON CONFLICT DO NOTHING`` (the unique
key of every time-series table contains the message id), dead letters and presence changes are
written alongside, and the transaction commits. Only then does the worker acknowledge the batch's
MQTT messages, so a message is acknowledged only once it is stored, and a message redelivered
after a crash (stored, not yet acknowledged) is skipped by the conflict clause: stored once.

A row for a month without a native partition gets one made (TimescaleDB makes a chunk). When
PostgreSQL refuses rows for a data reason (a value it cannot represent), the batch is split in
halves inside savepoints until the offending rows are isolated; they become ``db_rejected`` dead
letters and the rest is stored. Connection loss is not a data error: :class:`DatabaseUnavailable`
tells the worker to keep the batch, reconnect and retry.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

log = logging.getLogger("ingest.writer")


@dataclass(frozen=True)
class TableSpec:
    """A time-series table as the writer sees it: staging columns (name, COPY type) and the SQL
    expression that turns each staged column into the target column."""

    name: str
    columns: tuple[tuple[str, str], ...]
    casts: dict[str, str] = field(default_factory=dict)

    @property
    def stage(self) -> str:
        return f"ingest_stage_{self.name}"

    @property
    def copy_types(self) -> list[str]:
        return [t for _, t in self.columns]

    def create_stage_sql(self) -> str:
        cols = ", ".join(f"{n} {t}" for n, t in self.columns)
        return f"CREATE TEMP TABLE IF NOT EXISTS {self.stage} ({cols}) ON COMMIT DELETE ROWS"

    def copy_sql(self) -> str:
        return f"COPY {self.stage} ({', '.join(n for n, _ in self.columns)}) FROM STDIN (FORMAT BINARY)"

    def insert_sql(self) -> str:
        names = [n for n, _ in self.columns]
        select = ", ".join(self.casts.get(n, n) for n in names)
        return (
            f"INSERT INTO {self.name} ({', '.join(names)}) SELECT {select} FROM {self.stage} "
            f"ON CONFLICT DO NOTHING RETURNING {names[1]}, message_id"
        )


TABLES: dict[str, TableSpec] = {
    spec.name: spec
    for spec in (
        TableSpec(
            "telemetry",
            (
                ("time", "timestamptz"), ("device_id", "text"), ("unit_id", "text"), ("kind", "text"),
                ("message_id", "text"), ("payload", "text"), ("received_at", "timestamptz"),
            ),
            {"payload": "payload::jsonb"},
        ),
        TableSpec(
            "device_events",
            (
                ("time", "timestamptz"), ("device_id", "text"), ("unit_id", "text"), ("kind", "text"),
                ("event_type", "text"), ("message_id", "text"), ("payload", "text"), ("received_at", "timestamptz"),
            ),
            {"payload": "payload::jsonb"},
        ),
        TableSpec(
            "camera_events",
            (
                ("time", "timestamptz"), ("camera_id", "text"), ("unit_id", "text"), ("rule", "text"),
                ("object_class", "text"), ("score", "float4"), ("track_id", "int8"), ("zone", "text"),
                ("bbox", "text"), ("snapshot_ref", "text"), ("message_id", "text"), ("payload", "text"),
                ("received_at", "timestamptz"),
            ),
            {"payload": "payload::jsonb", "bbox": "bbox::jsonb"},
        ),
        TableSpec(
            "dossier_events",
            (
                ("time", "timestamptz"), ("dossier_id", "text"), ("unit_id", "text"), ("event", "text"),
                ("message_id", "text"), ("payload", "text"), ("received_at", "timestamptz"),
            ),
            {"payload": "payload::jsonb"},
        ),
    )
}  # fmt: skip

# SQLSTATE classes that mean "the database or our SQL is in trouble", not "this row is bad": the
# batch is kept and retried after a backoff (connection exceptions, missing tables or privileges,
# resources, shutdown, system errors, transaction conflicts). Anything else PostgreSQL raises while
# storing rows (22 data exception, 23 integrity violation - "no partition of relation found for row"
# is 23514 -, 54 program limits, P0 trigger refusals) is about the rows: they are isolated.
INFRASTRUCTURE_CLASSES = ("08", "0A", "25", "40", "42", "53", "55", "57", "58", "XX")
# "no partition of relation found for row": on native, the writer makes the month's partition.
NO_PARTITION = "23514"


class DatabaseUnavailable(Exception):
    """The database cannot be used right now (connection lost, shutting down, schema missing):
    keep the batch, do not acknowledge, retry after a backoff."""


@dataclass
class DeadLetter:
    received_at: datetime
    topic: str
    payload: bytes
    reason: str
    detail: dict[str, Any]
    retained_key: bytes | None = None  # a refused retained message: recorded once (migration 0014)


@dataclass
class WriteResult:
    inserted: dict[str, int] = field(default_factory=dict)  # table -> rows newly stored
    # table -> (device or dossier id, message id) of the rows newly stored: a redelivered message is
    # not in it, so what follows from a message (an alert) happens once.
    stored: dict[str, set[tuple[str, str]]] = field(default_factory=dict)
    rejected: list[tuple[int, str, dict[str, Any]]] = field(default_factory=list)  # (row key, reason, detail)
    commit_s: float = 0.0


def is_unavailable(exc: BaseException) -> bool:
    """Errors after which retrying the same batch later may succeed."""
    if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
        return True
    sqlstate = getattr(exc, "sqlstate", None) or ""
    return not isinstance(exc, psycopg.Error) or sqlstate[:2] in INFRASTRUCTURE_CLASSES or not sqlstate


def is_row_error(exc: BaseException) -> bool:
    return isinstance(exc, psycopg.Error) and not is_unavailable(exc)


class BatchWriter:
    """Owns one connection; :meth:`write` stores a batch in one transaction."""

    def __init__(self, connect: Callable[[], psycopg.Connection]) -> None:
        self._connect = connect
        self.conn: psycopg.Connection | None = None

    # -- connection ----------------------------------------------------------------------------------
    def ensure_connection(self) -> psycopg.Connection:
        if self.conn is not None and not self.conn.closed and not self.conn.broken:
            return self.conn
        self.close()
        conn = None
        try:
            conn = self._connect()
            for spec in TABLES.values():  # TEMP staging tables live as long as the connection
                conn.execute(spec.create_stage_sql())
            conn.commit()
        except psycopg.Error as exc:
            if conn is not None:
                conn.close()
            raise DatabaseUnavailable(f"{type(exc).__name__}: {exc}") from exc
        self.conn = conn
        return self.conn

    def close(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(Exception):  # closing a broken connection must not raise
                self.conn.close()
        self.conn = None

    def run(self, fn: Callable[[psycopg.Connection], Any]) -> Any:
        """``fn(conn)`` in one transaction; :class:`DatabaseUnavailable` when the database fails."""
        conn = self.ensure_connection()
        try:
            with conn.transaction():
                return fn(conn)
        except psycopg.Error as exc:
            if self.conn is not None and (self.conn.broken or self.conn.closed):
                self.close()
            raise DatabaseUnavailable(f"{type(exc).__name__}: {exc}") from exc

    # -- writing -------------------------------------------------------------------------------------
    def write(
        self,
        rows: dict[str, list[tuple[int, tuple]]],
        dead_letters: Sequence[DeadLetter],
        *,
        refused: Callable[[int, str, dict[str, Any]], DeadLetter],
        extra: Callable[[psycopg.Connection, WriteResult], Any] | None = None,
    ) -> tuple[WriteResult, Any]:
        """Store ``rows`` (table -> [(key, values)]), ``dead_letters`` and whatever ``extra(conn, result)`` writes,
        in one transaction. A row PostgreSQL refuses is dead-lettered through ``refused(key, reason,
        detail)`` and listed in ``result.rejected``. Raises :class:`DatabaseUnavailable`: nothing was
        committed, the caller retries the same batch later."""
        conn = self.ensure_connection()
        result = WriteResult()
        started = time.perf_counter()
        try:
            with conn.transaction():
                for table, table_rows in rows.items():
                    if table_rows:
                        spec = TABLES[table]
                        result.inserted[table] = self._store(conn, spec, table_rows, result)
                extra_result = extra(conn, result) if extra is not None else None
                letters = list(dead_letters)
                letters.extend(refused(key, reason, detail) for key, reason, detail in result.rejected)
                self._dead_letters(conn, letters)
            result.commit_s = time.perf_counter() - started
            return result, extra_result
        except psycopg.Error as exc:
            if self.conn is not None and (self.conn.broken or self.conn.closed):
                self.close()
            raise DatabaseUnavailable(f"{type(exc).__name__}: {exc}") from exc

    def _copy_insert(
        self, conn: psycopg.Connection, spec: TableSpec, rows: Sequence[tuple[int, tuple]], result: WriteResult
    ) -> int:
        with conn.cursor() as cur:
            with cur.copy(spec.copy_sql()) as copy:
                copy.set_types(spec.copy_types)
                write_row = copy.write_row
                for _, values in rows:
                    write_row(values)
            cur.execute(spec.insert_sql())
            keys = cur.fetchall()
        result.stored.setdefault(spec.name, set()).update(keys)
        return len(keys)

    def _store(
        self, conn: psycopg.Connection, spec: TableSpec, rows: list[tuple[int, tuple]], result: WriteResult
    ) -> int:
        try:
            with conn.transaction():  # savepoint
                return self._copy_insert(conn, spec, rows, result)
        except psycopg.Error as exc:
            if not is_row_error(exc):
                raise
            if exc.sqlstate == NO_PARTITION and self._make_partitions(conn, spec, rows):
                return self._store(conn, spec, rows, result)
            log.warning("%s refused %d rows (%s); isolating the bad ones", spec.name, len(rows), exc.sqlstate)
        return self._isolate(conn, spec, rows, result)

    @staticmethod
    def _make_partitions(conn: psycopg.Connection, spec: TableSpec, rows: list[tuple[int, tuple]]) -> bool:
        """Native partitions for the months of ``rows`` that have none; True if any was made.

        The rows passed the validator (``ts`` within retention), so they are stored as TimescaleDB
        stores them by making a chunk: native and TimescaleDB refuse and accept the same rows.
        Usually a no-op: ``maintain`` makes the partitions of the whole retention window."""
        from ioc.storage.timeseries import TABLES_BY_NAME, ensure_months, month_start

        table = TABLES_BY_NAME.get(spec.name)
        if table is None:
            return False
        months = {month_start(values[0]) for _, values in rows if isinstance(values[0], datetime)}
        with conn.transaction():
            made = ensure_months(conn, months, tables=(table,))
        if made:
            log.info("made partitions %s for rows of months that had none", ", ".join(made))
        return bool(made)

    def _isolate(
        self, conn: psycopg.Connection, spec: TableSpec, rows: list[tuple[int, tuple]], result: WriteResult
    ) -> int:
        """Split until every refused row is alone; store the rest."""
        conn.execute(f"TRUNCATE {spec.stage}")
        inserted = 0
        pending = [rows[: len(rows) // 2], rows[len(rows) // 2 :]]
        while pending:
            part = pending.pop()
            if not part:
                continue
            try:
                with conn.transaction():
                    inserted += self._copy_insert(conn, spec, part, result)
                    conn.execute(f"TRUNCATE {spec.stage}")
            except psycopg.Error as exc:
                if not is_row_error(exc):
                    raise
                if len(part) == 1:
                    diag = exc.diag
                    message = (diag.message_primary or str(exc)).replace("\x00", "")
                    reason = f"db_rejected: {spec.name}: {message}"
                    result.rejected.append((part[0][0], reason, {"sqlstate": exc.sqlstate, "table": spec.name}))
                else:
                    pending.extend((part[: len(part) // 2], part[len(part) // 2 :]))
        return inserted

    def _dead_letters(self, conn: psycopg.Connection, dead_letters: Sequence[DeadLetter]) -> None:
        if not dead_letters:
            return
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO dead_letters (received_at, source, topic, payload, reason, detail, retained_key) "
                "VALUES (%s, 'mqtt', %s, %s, %s, %s, %s) "
                "ON CONFLICT (source, retained_key) WHERE retained_key IS NOT NULL DO NOTHING",
                [(d.received_at, d.topic, d.payload, d.reason, Jsonb(d.detail), d.retained_key) for d in dead_letters],
            )
