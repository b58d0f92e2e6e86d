"""Time-series tables on TimescaleDB or on plain PostgreSQL, behind one description.

Four append-mostly tables hold what devices report: ``telemetry``, ``device_events``,
``camera_events`` and ``dossier_events``. Each has an hourly rollup named ``<table>_hourly`` with
the same columns on both backends (``bucket``, the grouping columns, ``n``), so that the
repository layer (:mod:`ioc.storage.repositories.series`) runs the same queries and gets the same
results wherever it runs.

* **TimescaleDB** (the extension is available and preloaded): hypertables with weekly chunks,
  native compression after a week, retention policies, and continuous aggregates for the rollups
  (real-time, so that fresh rows count at once, as they do natively).
* **Native** (no extension): monthly range partitions ``<table>_pYYYYMM`` (UTC months) created
  ahead of time by :func:`maintain`, BRIN indexes on ``time`` (rows arrive in time order, so a BRIN
  index is tiny and good enough for range scans), and rollup tables kept up to date by statement
  triggers over the inserted rows' transition table. ``INSERT ... ON CONFLICT DO NOTHING`` puts
  only the rows really inserted into the transition table, so a redelivered message is not
  counted twice.

Why not pg_partman for the native path: it is another extension to install on the server, which is
exactly what the native path exists to avoid; creating and dropping monthly partitions is a few
lines of SQL here.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal, Protocol

log = logging.getLogger("ioc.storage.timeseries")

Backend = Literal["timescale", "native"]

# Serialises maintenance runs of several processes (API replicas, `ioc up`, cron).
_MAINTENANCE_LOCK = 0x10C_7153


class _Settings(Protocol):
    timeseries_backend: str
    partition_premake: int
    telemetry_retention_days: int
    events_retention_days: int
    dossier_retention_days: int | None


@dataclass(frozen=True)
class Rollup:
    """An hourly count of rows grouped by ``dimensions`` (column names of the source table)."""

    dimensions: tuple[str, ...]

    def name(self, table: str) -> str:
        return f"{table}_hourly"


@dataclass(frozen=True)
class SeriesTable:
    """One time-series table: its columns (after ``time``), unique key, retention and rollup."""

    name: str
    columns: str
    unique: tuple[str, ...]
    retention: Literal["telemetry", "events", "dossiers"]
    rollup: Rollup
    lookup_index: tuple[str, ...]
    segment_by: str

    def retention_days(self, settings: _Settings) -> int | None:
        """Days kept; None: kept for ever (dossier events by default: figures of past years depend on them)."""
        if self.retention == "telemetry":
            return settings.telemetry_retention_days
        if self.retention == "dossiers":
            return getattr(settings, "dossier_retention_days", None)
        return settings.events_retention_days


TABLES: tuple[SeriesTable, ...] = (
    SeriesTable(
        name="telemetry",
        columns="""
            device_id    text NOT NULL,
            unit_id      text NOT NULL,
            kind         text NOT NULL,
            message_id   text NOT NULL,
            payload      jsonb NOT NULL,
            received_at  timestamptz NOT NULL DEFAULT now()""",
        unique=("device_id", "message_id", "time"),
        retention="telemetry",
        rollup=Rollup(("unit_id", "kind", "device_id")),
        lookup_index=("device_id", "time"),
        segment_by="device_id",
    ),
    SeriesTable(
        name="device_events",
        columns="""
            device_id    text NOT NULL,
            unit_id      text NOT NULL,
            kind         text NOT NULL,
            event_type   text NOT NULL,
            message_id   text NOT NULL,
            payload      jsonb NOT NULL,
            received_at  timestamptz NOT NULL DEFAULT now()""",
        unique=("device_id", "message_id", "time"),
        retention="events",
        rollup=Rollup(("unit_id", "kind", "event_type")),
        lookup_index=("device_id", "time"),
        segment_by="device_id",
    ),
    SeriesTable(
        name="camera_events",
        columns="""
            camera_id     text NOT NULL,
            unit_id       text NOT NULL,
            rule          text NOT NULL,
            object_class  text,
            score         real,
            track_id      bigint,
            zone          text,
            bbox          jsonb,
            snapshot_ref  text,
            message_id    text NOT NULL,
            payload       jsonb NOT NULL,
            received_at   timestamptz NOT NULL DEFAULT now()""",
        unique=("camera_id", "message_id", "time"),
        retention="events",
        rollup=Rollup(("unit_id", "camera_id", "rule", "object_class")),
        lookup_index=("camera_id", "time"),
        segment_by="camera_id",
    ),
    SeriesTable(
        name="dossier_events",
        columns="""
            dossier_id   text NOT NULL,
            unit_id      text NOT NULL,
            event        text NOT NULL,
            message_id   text NOT NULL,
            payload      jsonb NOT NULL,
            received_at  timestamptz NOT NULL DEFAULT now()""",
        unique=("dossier_id", "event", "time"),
        retention="dossiers",
        rollup=Rollup(("unit_id", "event")),
        lookup_index=("dossier_id", "time"),
        segment_by="dossier_id",
    ),
)

TABLES_BY_NAME = {t.name: t for t in TABLES}

_PARTITION_NAME = re.compile(r"^(?P<table>[a-z_]+)_p(?P<year>\d{4})(?P<month>\d{2})$")


# --- months ------------------------------------------------------------------------------------


def month_start(when: datetime | date) -> date:
    if isinstance(when, datetime):
        when = when.astimezone(UTC).date()
    return when.replace(day=1)


def add_months(month: date, n: int) -> date:
    index = month.year * 12 + (month.month - 1) + n
    return date(index // 12, index % 12 + 1, 1)


def partition_name(table: str, month: date) -> str:
    return f"{table}_p{month:%Y%m}"


def _utc(month: date) -> str:
    return f"{month.isoformat()} 00:00:00+00"


# --- schema --------------------------------------------------------------------------------------


def _execute(conn: Any, statement: str, params: tuple[Any, ...] | None = None) -> list[tuple[Any, ...]]:
    """Run one statement on a psycopg connection or a DB-API connection (yoyo hands us the latter
    inside its transaction) and return its rows, if any."""
    cur = conn.cursor()
    try:
        cur.execute(statement, params)
        return list(cur.fetchall()) if cur.description else []
    finally:
        cur.close()


def timescale_available(conn: Any) -> bool:
    """True when the server offers the ``timescaledb`` extension (it may still not be preloaded)."""
    return bool(_execute(conn, "SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'"))


def _try_create_timescale(conn: Any) -> bool:
    _execute(conn, "SAVEPOINT ioc_timescale")
    try:
        _execute(conn, "CREATE EXTENSION IF NOT EXISTS timescaledb")
    except Exception as exc:  # noqa: BLE001 - any failure means "not usable here"; say why and fall back
        _execute(conn, "ROLLBACK TO SAVEPOINT ioc_timescale")
        log.warning("timescaledb is available but cannot be created (%s); using native partitions", exc)
        return False
    _execute(conn, "RELEASE SAVEPOINT ioc_timescale")
    return True


def choose_backend(conn: Any, requested: str) -> Backend:
    """The backend for a new schema: ``requested`` is ``auto``, ``timescale`` or ``native``."""
    if requested == "native":
        return "native"
    if timescale_available(conn) and _try_create_timescale(conn):
        return "timescale"
    if requested == "timescale":
        raise RuntimeError(
            "IOC_TIMESERIES_BACKEND=timescale but the timescaledb extension cannot be created "
            "(install it and add it to shared_preload_libraries)"
        )
    return "native"


def create_schema(conn: Any, settings: _Settings | None = None, *, now: datetime | None = None) -> Backend:
    """Create the time-series tables and their rollups (called by migration 0002)."""
    if settings is None:
        from ioc.settings import get_settings

        settings = get_settings()
    backend = choose_backend(conn, settings.timeseries_backend)
    log.info("creating time-series tables on the %s backend", backend)
    for table in TABLES:
        if backend == "timescale":
            _create_hypertable(conn, table, settings)
        else:
            _create_partitioned(conn, table)
    if backend == "native":
        # Partitions for the current month and the months ahead, so the system can ingest at once.
        ensure_partitions(conn, now or datetime.now(UTC), settings.partition_premake)
    return backend


def _table_ddl(table: SeriesTable, suffix: str = "") -> str:
    unique = ", ".join(table.unique)
    return (
        f"CREATE TABLE {table.name} (\n            time timestamptz NOT NULL,{table.columns},\n"
        f"            UNIQUE ({unique})\n        ){suffix}"
    )


def _create_partitioned(conn: Any, table: SeriesTable) -> None:
    _execute(conn, _table_ddl(table, " PARTITION BY RANGE (time)"))
    _execute(conn, f"CREATE INDEX {table.name}_time_brin ON {table.name} USING brin (time)")
    lookup = ", ".join(f"{c} DESC" if c == "time" else c for c in table.lookup_index)
    _execute(conn, f"CREATE INDEX {table.name}_lookup_idx ON {table.name} ({lookup})")
    _create_rollup_table(conn, table)


def _create_rollup_table(conn: Any, table: SeriesTable) -> None:
    rollup = table.rollup.name(table.name)
    dims = table.rollup.dimensions
    # Grouping columns are NOT NULL in the rollup (primary key): a NULL dimension is stored as ''.
    dim_columns = ",\n".join(f"            {d} text NOT NULL" for d in dims)
    key = ", ".join(("bucket", *dims))
    _execute(
        conn,
        f"""CREATE TABLE {rollup} (
            bucket timestamptz NOT NULL,
{dim_columns},
            n bigint NOT NULL,
            PRIMARY KEY ({key})
        )""",
    )
    selected = ", ".join(f"coalesce({d}::text, '')" for d in dims)
    positions = ", ".join(str(i) for i in range(1, len(dims) + 2))
    # ORDER BY: concurrent writers then lock rollup rows in the same order and cannot deadlock.
    _execute(
        conn,
        f"""CREATE FUNCTION {rollup}_add() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO {rollup} AS r ({key}, n)
            SELECT date_trunc('hour', time), {selected}, count(*)
            FROM inserted_rows GROUP BY {positions} ORDER BY {positions}
            ON CONFLICT ({key}) DO UPDATE SET n = r.n + EXCLUDED.n;
            RETURN NULL;
        END $$""",
    )
    _execute(
        conn,
        f"""CREATE TRIGGER {rollup}_add AFTER INSERT ON {table.name}
        REFERENCING NEW TABLE AS inserted_rows FOR EACH STATEMENT EXECUTE FUNCTION {rollup}_add()""",
    )


def _create_hypertable(conn: Any, table: SeriesTable, settings: _Settings) -> None:
    _execute(conn, _table_ddl(table))
    _execute(
        conn,
        "SELECT create_hypertable(%s, 'time', chunk_time_interval => INTERVAL '7 days', if_not_exists => TRUE)",
        (table.name,),
    )
    lookup = ", ".join(f"{c} DESC" if c == "time" else c for c in table.lookup_index)
    _execute(conn, f"CREATE INDEX {table.name}_lookup_idx ON {table.name} ({lookup})")
    _execute(
        conn,
        f"ALTER TABLE {table.name} SET (timescaledb.compress, "
        f"timescaledb.compress_segmentby = '{table.segment_by}', timescaledb.compress_orderby = 'time DESC')",
    )
    _execute(conn, "SELECT add_compression_policy(%s, INTERVAL '7 days', if_not_exists => TRUE)", (table.name,))
    if table.retention_days(settings) is not None:
        _execute(
            conn,
            "SELECT add_retention_policy(%s, make_interval(days => %s), if_not_exists => TRUE)",
            (table.name, table.retention_days(settings)),
        )
    # Continuous aggregates cannot be created inside a transaction block (the migration's), so
    # `maintain` creates them on an autocommit connection; `ioc up` runs it right after migrating.


def _cagg_sql(table: SeriesTable) -> str:
    dims = table.rollup.dimensions
    selected = ", ".join(f"coalesce({d}::text, '') AS {d}" for d in dims)
    positions = ", ".join(str(i) for i in range(1, len(dims) + 2))
    return (
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS {table.rollup.name(table.name)} "
        "WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS "
        f"SELECT time_bucket(INTERVAL '1 hour', time) AS bucket, {selected}, count(*) AS n "
        f"FROM {table.name} GROUP BY {positions} WITH NO DATA"
    )


def _ensure_continuous_aggregates(conn: Any) -> list[str]:
    made: list[str] = []
    for table in TABLES:
        view = table.rollup.name(table.name)
        exists = _execute(conn, "SELECT 1 FROM pg_class WHERE relname = %s", (view,))
        if exists:
            continue
        _execute(conn, _cagg_sql(table))
        _execute(
            conn,
            "SELECT add_continuous_aggregate_policy(%s, start_offset => INTERVAL '3 days', "
            "end_offset => INTERVAL '1 hour', schedule_interval => INTERVAL '5 minutes', if_not_exists => TRUE)",
            (view,),
        )
        made.append(view)
    return made


# --- partitions ----------------------------------------------------------------------------------


def existing_partitions(conn: Any, table: str) -> dict[str, date]:
    """Partitions of ``table`` that follow our naming, with the month each holds."""
    rows = _execute(
        conn,
        """SELECT c.relname FROM pg_inherits i
           JOIN pg_class c ON c.oid = i.inhrelid
           JOIN pg_class p ON p.oid = i.inhparent
           WHERE p.relname = %s""",
        (table,),
    )
    found: dict[str, date] = {}
    for (name,) in rows:
        match = _PARTITION_NAME.match(name)
        if match and match["table"] == table:
            found[name] = date(int(match["year"]), int(match["month"]), 1)
    return found


def ensure_partitions(conn: Any, now: datetime, premake: int) -> list[str]:
    """Create the partitions from last month to ``premake`` months ahead; return those created.

    Last month is kept ready for devices that send buffered data after a month changes.
    """
    current = month_start(now)
    return ensure_months(conn, {add_months(current, offset) for offset in range(-1, premake + 1)})


def ensure_months(conn: Any, months: set[date]) -> list[str]:
    """Partitions for the given months (first days), e.g. before importing historical rows."""
    created: list[str] = []
    for table in TABLES:
        have = existing_partitions(conn, table.name)
        for month in sorted(months):
            name = partition_name(table.name, month)
            if name not in have:
                _execute(
                    conn,
                    f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF {table.name} "
                    f"FOR VALUES FROM ('{_utc(month)}') TO ('{_utc(add_months(month, 1))}')",
                )
                created.append(name)
    return created


def drop_expired_partitions(conn: Any, now: datetime, settings: _Settings) -> list[str]:
    """Drop partitions whose whole month lies before ``now - retention``; return those dropped."""
    dropped: list[str] = []
    for table in TABLES:
        days = table.retention_days(settings)
        if days is None:
            continue  # kept for ever
        cutoff = now - timedelta(days=days)
        for name, month in sorted(existing_partitions(conn, table.name).items()):
            upper = datetime.combine(add_months(month, 1), datetime.min.time(), tzinfo=UTC)
            if upper <= cutoff:
                _execute(conn, f"DROP TABLE {name}")
                dropped.append(name)
    return dropped


def prune_rollups(conn: Any, now: datetime, settings: _Settings) -> int:
    """Delete native rollup rows older than their table's retention; return how many."""
    deleted = 0
    for table in TABLES:
        days = table.retention_days(settings)
        if days is None:
            continue
        cutoff = now - timedelta(days=days)
        rows = _execute(
            conn,
            f"WITH gone AS (DELETE FROM {table.rollup.name(table.name)} WHERE bucket < %s RETURNING 1) "
            "SELECT count(*) FROM gone",
            (cutoff,),
        )
        deleted += int(rows[0][0])
    return deleted


# --- backend in use and maintenance --------------------------------------------------------------


def active_backend(conn: Any) -> str:
    """``timescale``, ``native``, or ``none`` (schema not created yet) for this database."""
    partitioned = _execute(
        conn,
        "SELECT 1 FROM pg_partitioned_table pt JOIN pg_class c ON c.oid = pt.partrelid WHERE c.relname = 'telemetry'",
    )
    if partitioned:
        return "native"
    has_extension = _execute(conn, "SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'")
    if has_extension:
        hyper = _execute(conn, "SELECT 1 FROM timescaledb_information.hypertables WHERE hypertable_name = 'telemetry'")
        if hyper:
            return "timescale"
    return "none"


@dataclass
class MaintenanceReport:
    """What one maintenance run did."""

    backend: str
    created: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    rollup_rows_deleted: int = 0
    aggregates_created: list[str] = field(default_factory=list)

    def summary(self) -> str:
        if self.backend == "timescale":
            made = ", ".join(self.aggregates_created) or "none"
            return f"timescale: policies run in the server; continuous aggregates created: {made}"
        created = ", ".join(self.created) or "none"
        dropped = ", ".join(self.dropped) or "none"
        return (
            f"{self.backend}: partitions created: {created}; dropped past retention: {dropped}; "
            f"rollup rows pruned: {self.rollup_rows_deleted}"
        )


def maintain(conn: Any, clock: Any, settings: _Settings) -> MaintenanceReport:
    """Keep the time-series tables in shape; idempotent, safe to run from several processes.

    Native: create partitions ahead, drop those past retention, prune old rollup rows.
    TimescaleDB: its background jobs run the policies; here we only create the continuous
    aggregates that a migration cannot create (they refuse to be made inside a transaction).
    """
    now = clock.now()
    backend = active_backend(conn)
    report = MaintenanceReport(backend=backend)
    if backend == "timescale":
        conn.commit()
        previous = conn.autocommit
        conn.autocommit = True
        try:
            report.aggregates_created = _ensure_continuous_aggregates(conn)
            for table in TABLES:  # a table kept for ever (dossier events by default) has no retention policy
                if table.retention_days(settings) is None:
                    _execute(conn, "SELECT remove_retention_policy(%s, if_exists => TRUE)", (table.name,))
        finally:
            conn.autocommit = previous
        return report
    if backend != "native":
        return report
    if not conn.autocommit:
        conn.commit()  # so that the block below is the outer transaction and commits on exit
    with conn.transaction():
        _execute(conn, "SELECT pg_advisory_xact_lock(%s)", (_MAINTENANCE_LOCK,))
        report.created = ensure_partitions(conn, now, settings.partition_premake)
        report.dropped = drop_expired_partitions(conn, now, settings)
        report.rollup_rows_deleted = prune_rollups(conn, now, settings)
    if report.created or report.dropped:
        log.info("time-series maintenance: %s", report.summary())
    return report
