"""Time-series tables on TimescaleDB or on plain PostgreSQL, behind one description.

Four append-mostly tables hold what devices report: ``telemetry``, ``device_events``,
``camera_events`` and ``dossier_events``. Each has an hourly rollup table ``<table>_hourly``
(``bucket``, the grouping columns, ``n``) kept by the **same statement trigger on both backends**,
so that the repository layer (:mod:`ioc.storage.repositories.series`) runs the same queries and
gets the same figures wherever it runs: a row counts the moment it is committed, however late it
arrives; ``INSERT ... ON CONFLICT DO NOTHING`` puts only the rows really inserted into the
trigger's transition table, so a redelivered message is not counted twice.

* **TimescaleDB** (the extension is available *and* preloaded): hypertables with weekly chunks and
  native compression after a week. Hypertables take statement triggers with transition tables
  since TimescaleDB 2.18 (checked on 2.28.3), including rows landing in compressed chunks.
  Continuous aggregates are not used: a real-time aggregate counts rows older than its watermark
  only after the next refresh, and its refresh policy never looks further back than its start
  offset, so late rows (device outages, imports) were missed; they also kept counts whose raw rows
  retention had dropped. Migration ``0019_timescale_parity`` replaces them in databases made before.
* **Native** (no extension): monthly range partitions ``<table>_pYYYYMM`` (UTC months) covering
  the retention window and ``partition_premake`` months ahead, created by :func:`maintain` (and by
  the ingest writer for a month it meets first, as TimescaleDB makes chunks on demand), and BRIN
  indexes on ``time`` (rows arrive in time order, so a BRIN index is tiny and good enough).

Retention is applied by :func:`maintain` on both backends, from the settings of the moment, to the
hour: rows with ``time`` before ``date_trunc('hour', now - retention)`` and the rollup rows of the
same hours go in one transaction (whole partitions or chunks are dropped, the rest of the boundary
one is deleted), so both backends keep exactly the same rows and rollups always equal the raw rows.
TimescaleDB's own retention policy is not used for the same reason (it drops whole chunks without
the rollup rows); its compression policy is, and when its background job fails (every TimescaleDB
2.28.3 job failed on PostgreSQL 15.20 with "cannot drop portal"), :func:`maintain` runs the job's
work itself and says so.

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

# TimescaleDB compresses chunks once they are this old (its compression policy).
COMPRESS_AFTER = "7 days"


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
        """Days of rows kept, or ``None`` to keep them all. One place per table: a separate
        retention for the dossier tables is one more ``retention`` value and one more branch."""
        if self.retention == "telemetry":
            return settings.telemetry_retention_days
        if self.retention == "dossiers":
            return getattr(settings, "dossier_retention_days", None)
        return settings.events_retention_days

    def retention_cutoff(self, now: datetime, settings: _Settings) -> datetime | None:
        """Rows with ``time`` before this (a whole UTC hour) are past retention; ``None``: keep all.

        Whole hours, so that the raw rows and the hourly rollup rows go at the same instant."""
        days = self.retention_days(settings)
        if days is None:
            return None
        return (now.astimezone(UTC) - timedelta(days=days)).replace(minute=0, second=0, microsecond=0)


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


def timescale_preloaded(conn: Any) -> bool | None:
    """True when ``timescaledb`` is in ``shared_preload_libraries``; ``None`` when this role may not
    read the setting (it needs ``pg_read_all_settings``).

    Checked before ``CREATE EXTENSION``: with the extension installed but not preloaded, TimescaleDB
    2.28.3 on PostgreSQL 15.20 ends the server connection instead of raising an error, which left
    ``ioc db migrate`` failing on every retry with 0001 applied and the rest pending."""
    savepoint = not getattr(conn, "autocommit", False)  # an autocommit error aborts nothing
    if savepoint:
        _execute(conn, "SAVEPOINT ioc_preload")
    try:
        rows = _execute(conn, "SELECT current_setting('shared_preload_libraries')")
    except Exception:  # noqa: BLE001 - insufficient privilege: unknown, the caller says so
        if savepoint:
            _execute(conn, "ROLLBACK TO SAVEPOINT ioc_preload")
        return None
    if savepoint:
        _execute(conn, "RELEASE SAVEPOINT ioc_preload")
    libraries = [part.strip().strip('"').rsplit("/", 1)[-1] for part in str(rows[0][0]).split(",")]
    return "timescaledb" in libraries


def timescale_unusable_reason(conn: Any) -> str | None:
    """Why the ``timescaledb`` extension cannot be used on this server, or ``None`` when it can."""
    if _execute(conn, "SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'"):
        return None
    if not timescale_available(conn):
        return "the timescaledb extension is not installed on this PostgreSQL server"
    preloaded = timescale_preloaded(conn)
    if preloaded is None:
        return (
            "this role may not read shared_preload_libraries (grant it pg_read_all_settings, or have a "
            "superuser run CREATE EXTENSION timescaledb in this database first)"
        )
    if not preloaded:
        return (
            "the timescaledb extension is installed but not in shared_preload_libraries "
            "(add shared_preload_libraries = 'timescaledb' to postgresql.conf and restart the server)"
        )
    return None


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
    reason = timescale_unusable_reason(conn)
    if reason is None and _try_create_timescale(conn):
        return "timescale"
    if requested == "timescale":
        raise RuntimeError(
            f"IOC_TIMESERIES_BACKEND=timescale but {reason or 'CREATE EXTENSION timescaledb failed (see the log)'}"
        )
    if reason is not None and timescale_available(conn):
        log.warning("%s; using native partitions", reason)
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
            _create_hypertable(conn, table)
        else:
            _create_partitioned(conn, table)
        _create_rollup_table(conn, table)
    if backend == "native":
        # Partitions for last month to the months ahead, so the system can ingest at once. The rest
        # of the retention window comes with the first `maintain` (`ioc up` and the API run it at
        # start) and, for a row that arrives before, from the ingest writer on demand: migrating
        # stays quick (about 90 more partitions cost seconds, in every test database too).
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


def _create_rollup_table(conn: Any, table: SeriesTable) -> None:
    """The rollup table and its statement trigger; the same DDL on both backends."""
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
        f"""CREATE OR REPLACE FUNCTION {rollup}_add() RETURNS trigger LANGUAGE plpgsql AS $$
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
        f"""CREATE OR REPLACE TRIGGER {rollup}_add AFTER INSERT ON {table.name}
        REFERENCING NEW TABLE AS inserted_rows FOR EACH STATEMENT EXECUTE FUNCTION {rollup}_add()""",
    )


def _backfill_rollup(conn: Any, table: SeriesTable) -> None:
    """Count the rows already stored into a new rollup table (one pass over the raw table)."""
    dims = table.rollup.dimensions
    selected = ", ".join(f"coalesce({d}::text, '')" for d in dims)
    positions = ", ".join(str(i) for i in range(1, len(dims) + 2))
    key = ", ".join(("bucket", *dims))
    _execute(
        conn,
        f"INSERT INTO {table.rollup.name(table.name)} ({key}, n) "
        f"SELECT date_trunc('hour', time), {selected}, count(*) FROM {table.name} GROUP BY {positions}",
    )


def _create_hypertable(conn: Any, table: SeriesTable) -> None:
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
    _execute(
        conn, "SELECT add_compression_policy(%s, %s::interval, if_not_exists => TRUE)", (table.name, COMPRESS_AFTER)
    )
    # No retention policy: `maintain` applies retention to the hour with the rollup rows (module doc).


def upgrade_schema(conn: Any) -> list[str]:
    """Bring a schema made by an earlier release to what :func:`create_schema` makes now (migration
    0019); idempotent, a no-op on a schema made by this release. Returns what it changed.

    TimescaleDB: continuous aggregates (made by an earlier ``maintain``) and retention policies
    (fixed at migration, blind to later settings) are replaced by rollup tables counted from the raw
    rows and by ``maintain``'s retention. Native: nothing to change.
    """
    changed: list[str] = []
    backend = active_backend(conn)
    if backend == "timescale":
        for table in TABLES:
            rollup = table.rollup.name(table.name)
            kind = _execute(
                conn, "SELECT relkind FROM pg_class WHERE relname = %s AND relkind IN ('v', 'r')", (rollup,)
            )
            if kind and kind[0][0] == "v":
                _execute(conn, f"DROP MATERIALIZED VIEW {rollup} CASCADE")
                changed.append(f"dropped continuous aggregate {rollup}")
                kind = []
            if not kind:
                _create_rollup_table(conn, table)
                _backfill_rollup(conn, table)
                changed.append(f"created rollup table {rollup}")
            policy = _execute(
                conn,
                "SELECT 1 FROM timescaledb_information.jobs"
                " WHERE proc_name = 'policy_retention' AND hypertable_name = %s",
                (table.name,),
            )
            if policy:
                _execute(conn, "SELECT remove_retention_policy(%s)", (table.name,))
                changed.append(f"removed retention policy of {table.name}")
    return changed


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


def ensure_partitions(conn: Any, now: datetime, premake: int, settings: _Settings | None = None) -> list[str]:
    """Create the partitions from last month (or, given ``settings``, from the first month of each
    table's retention window) to ``premake`` months ahead; return those created.

    Last month is kept ready for devices that send buffered data after a month changes; the whole
    retention window, so that native stores every row the ingest validator accepts, as TimescaleDB
    does. A no-op on TimescaleDB (chunks are made on demand)."""
    current = month_start(now)
    created: list[str] = []
    for table in TABLES:
        first = add_months(current, -1)
        cutoff = table.retention_cutoff(now, settings) if settings is not None else None
        if cutoff is not None:
            first = min(first, month_start(cutoff))
        months: set[date] = set()
        month = first
        while month <= add_months(current, premake):
            months.add(month)
            month = add_months(month, 1)
        created += ensure_months(conn, months, tables=(table,))
    return created


def ensure_months(conn: Any, months: set[date], *, tables: tuple[SeriesTable, ...] = TABLES) -> list[str]:
    """Partitions for the given months (first days), e.g. before importing historical rows.

    Backend-aware: on TimescaleDB (or before the schema exists) there is nothing to make, so
    callers such as the KPI importer and ``ioc bench kpi`` call it whatever the backend."""
    if active_backend(conn) != "native":
        return []
    created: list[str] = []
    for table in tables:
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
    """Drop partitions whose whole month lies before the retention cutoff; return those dropped."""
    dropped: list[str] = []
    for table in TABLES:
        cutoff = table.retention_cutoff(now, settings)
        if cutoff is None:
            continue
        for name, month in sorted(existing_partitions(conn, table.name).items()):
            upper = datetime.combine(add_months(month, 1), datetime.min.time(), tzinfo=UTC)
            if upper <= cutoff:
                _execute(conn, f"DROP TABLE {name}")
                dropped.append(name)
    return dropped


def drop_expired_chunks(conn: Any, now: datetime, settings: _Settings) -> list[str]:
    """TimescaleDB: drop the chunks wholly before the retention cutoff; return those dropped."""
    dropped: list[str] = []
    for table in TABLES:
        cutoff = table.retention_cutoff(now, settings)
        if cutoff is None:
            continue
        rows = _execute(conn, "SELECT drop_chunks(%s, older_than => %s::timestamptz)", (table.name, cutoff))
        dropped += [str(r[0]) for r in rows]
    return dropped


def delete_expired_rows(conn: Any, now: datetime, settings: _Settings) -> dict[str, int]:
    """Delete the rows before the cutoff left in the boundary partition or chunk (an hour's worth
    when maintenance runs hourly); return the count per table."""
    deleted: dict[str, int] = {}
    for table in TABLES:
        cutoff = table.retention_cutoff(now, settings)
        if cutoff is None:
            continue
        rows = _execute(
            conn,
            f"WITH gone AS (DELETE FROM {table.name} WHERE time < %s RETURNING 1) SELECT count(*) FROM gone",
            (cutoff,),
        )
        if int(rows[0][0]):
            deleted[table.name] = int(rows[0][0])
    return deleted


def prune_rollups(conn: Any, now: datetime, settings: _Settings) -> int:
    """Delete rollup rows of the hours past retention (the same cutoff as the raw rows); return how many."""
    deleted = 0
    for table in TABLES:
        cutoff = table.retention_cutoff(now, settings)
        if cutoff is None:
            continue
        rows = _execute(
            conn,
            f"WITH gone AS (DELETE FROM {table.rollup.name(table.name)} WHERE bucket < %s RETURNING 1) "
            "SELECT count(*) FROM gone",
            (cutoff,),
        )
        deleted += int(rows[0][0])
    return deleted


# --- TimescaleDB background jobs -------------------------------------------------------------------


@dataclass(frozen=True)
class JobState:
    """One TimescaleDB background job and its record (``timescaledb_information.jobs``/``job_stats``)."""

    job_id: int
    name: str
    proc: str
    hypertable: str | None
    last_run_status: str | None
    last_success: datetime | None
    total_runs: int
    total_failures: int
    next_start: datetime | None
    last_error: str | None

    @property
    def failing(self) -> bool:
        """Its last run failed (or it has failed and never succeeded)."""
        never = self.last_success is None or self.last_success.year < 1000  # job_stats shows -infinity
        return self.last_run_status == "Failed" or (self.total_failures > 0 and never)


def job_states(conn: Any) -> list[JobState]:
    """The TimescaleDB jobs of this database with their last success, failures and last error."""
    rows = _execute(
        conn,
        """SELECT j.job_id, j.application_name, j.proc_name, j.hypertable_name, s.last_run_status,
                  CASE WHEN s.last_successful_finish = '-infinity' THEN NULL ELSE s.last_successful_finish END,
                  coalesce(s.total_runs, 0), coalesce(s.total_failures, 0), j.next_start,
                  (SELECT e.err_message FROM timescaledb_information.job_errors e
                   WHERE e.job_id = j.job_id ORDER BY e.finish_time DESC NULLS LAST LIMIT 1)
           FROM timescaledb_information.jobs j
           LEFT JOIN timescaledb_information.job_stats s ON s.job_id = j.job_id
           ORDER BY j.job_id""",
    )
    return [JobState(int(r[0]), r[1], r[2], r[3], r[4], r[5], int(r[6]), int(r[7]), r[8], r[9]) for r in rows]


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
    rows_deleted: dict[str, int] = field(default_factory=dict)
    rollup_rows_deleted: int = 0
    # TimescaleDB jobs whose work this run did itself because the job is failing, and what it did.
    jobs_run: list[str] = field(default_factory=list)

    def summary(self) -> str:
        created = ", ".join(self.created) or "none"
        dropped = ", ".join(self.dropped) or "none"
        deleted = ", ".join(f"{t} {n}" for t, n in sorted(self.rows_deleted.items())) or "none"
        unit = "chunks" if self.backend == "timescale" else "partitions"
        text = (
            f"{self.backend}: {unit} dropped past retention: {dropped}; rows deleted past retention: {deleted}; "
            f"rollup rows pruned: {self.rollup_rows_deleted}"
        )
        if self.backend == "native":
            text = f"{self.backend}: partitions created: {created}; " + text.removeprefix(f"{self.backend}: ")
        if self.jobs_run:
            text += "; failing jobs whose work ran here: " + "; ".join(self.jobs_run)
        return text


def maintain(conn: Any, clock: Any, settings: _Settings) -> MaintenanceReport:
    """Keep the time-series tables in shape; idempotent, safe to run from several processes at once
    (one advisory lock serialises them on both backends; without it, two runs on TimescaleDB raced).

    Both: retention to the hour from the current settings, raw rows and rollup rows together.
    Native: partitions for the retention window and ahead. TimescaleDB: the work of each failing
    background job (compression) runs here, and the report says so.
    """
    now = clock.now()
    backend = active_backend(conn)
    report = MaintenanceReport(backend=backend)
    if backend not in ("native", "timescale"):
        return report
    if not conn.autocommit:
        conn.commit()  # so that the block below is the outer transaction and commits on exit
    with conn.transaction():
        _execute(conn, "SELECT pg_advisory_xact_lock(%s)", (_MAINTENANCE_LOCK,))
        if backend == "native":
            report.created = ensure_partitions(conn, now, settings.partition_premake, settings)
            report.dropped = drop_expired_partitions(conn, now, settings)
        else:
            report.dropped = drop_expired_chunks(conn, now, settings)
        report.rows_deleted = delete_expired_rows(conn, now, settings)
        report.rollup_rows_deleted = prune_rollups(conn, now, settings)
    if backend == "timescale":
        report.jobs_run = run_failing_jobs(conn)
    if report.created or report.dropped or report.rows_deleted or report.jobs_run:
        log.info("time-series maintenance: %s", report.summary())
    return report


def run_failing_jobs(conn: Any) -> list[str]:
    """Run the work of every failing TimescaleDB job of this database here, in the foreground
    (``CALL run_job``: the job's own procedure and configuration, e.g. the compression policy);
    return one line per job saying so. On PostgreSQL 15.20 every TimescaleDB 2.28.3 background job
    failed with "cannot drop portal" while the same work run in the foreground succeeded.

    A foreground run is not recorded in ``job_stats``, so the job stays failing there and the next
    maintenance runs its work again: what the scheduler would have done. ``run_job`` refuses to
    run inside a transaction block, so this uses autocommit and a session advisory lock."""
    if not conn.autocommit:
        conn.commit()
    failing = [job for job in job_states(conn) if job.failing]
    if not conn.autocommit:
        conn.commit()
    if not failing:
        return []
    done: list[str] = []
    previous = conn.autocommit
    conn.autocommit = True
    try:
        _execute(conn, "SELECT pg_advisory_lock(%s)", (_MAINTENANCE_LOCK,))
        try:
            for job in failing:
                said = (
                    f"job {job.job_id} ({job.name}) fails in the background ({job.last_error or 'no error recorded'})"
                )
                try:
                    _execute(conn, "CALL run_job(%s)", (job.job_id,))
                except Exception as exc:  # noqa: BLE001 - reported, the other jobs still run
                    done.append(f"{said}; its work ran here and failed: {exc}")
                    log.error("TimescaleDB job %s failed in the foreground too: %s", job.job_id, exc)
                else:
                    done.append(f"{said}; its work ran here")
                    log.warning("TimescaleDB job %s is failing in the background; ran its work here", job.job_id)
        finally:
            _execute(conn, "SELECT pg_advisory_unlock(%s)", (_MAINTENANCE_LOCK,))
    finally:
        conn.autocommit = previous
    return done
