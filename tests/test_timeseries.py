"""Time-series storage: migrations, partitions ahead, retention by clock, rollups equal to raw."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from ioc.clock import ManualClock
from ioc.settings import Settings
from ioc.storage import timeseries
from ioc.storage.migrate import migrate, status
from ioc.storage.repositories.series import hourly_counts


def _settings(**overrides: object) -> Settings:
    return Settings(_env_file=None, **overrides)  # type: ignore[call-arg]


def _partitions(url: str, table: str = "telemetry") -> set[str]:
    with psycopg.connect(url) as conn:
        return set(timeseries.existing_partitions(conn, table))


def _seed_unit(conn: psycopg.Connection, unit: str, successor: str | None = None) -> None:
    conn.execute(
        "INSERT INTO units (id, name, name_search, level, successor_id) VALUES (%s, %s, %s, 'commune', %s)"
        " ON CONFLICT (id) DO NOTHING",
        (unit, unit, unit, successor),
    )


def _insert_telemetry(conn: psycopg.Connection, rows: list[tuple[datetime, str, str, str]]) -> None:
    """rows: (time, device, unit, message_id); one INSERT statement, duplicates ignored."""
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO telemetry (time, device_id, unit_id, kind, message_id, payload)"
            " VALUES (%s, %s, %s, 'sensor', %s, '{}') ON CONFLICT DO NOTHING",
            rows,
        )


def test_migrations_twice_are_a_no_op(database_factory: Callable[..., str]) -> None:
    url = database_factory(migrated=False)
    first = migrate(url)
    assert "0002_timeseries" in first
    assert migrate(url) == []
    state = status(url)
    assert state.pending == [] and state.current
    with psycopg.connect(url) as conn:
        assert timeseries.active_backend(conn) == "native"


def test_next_month_partition_exists_after_migration(database_url: str) -> None:
    next_month = timeseries.add_months(timeseries.month_start(datetime.now(UTC)), 1)
    for table in timeseries.TABLES:
        assert timeseries.partition_name(table.name, next_month) in _partitions(database_url, table.name)


def test_maintenance_creates_ahead_and_drops_past_retention(database_factory: Callable[..., str]) -> None:
    url = database_factory()
    settings = _settings(telemetry_retention_days=40, events_retention_days=400, partition_premake=2)
    clock = ManualClock(datetime(2030, 1, 10, tzinfo=UTC))
    with psycopg.connect(url) as conn:
        report = timeseries.maintain(conn, clock, settings)
        assert {"telemetry_p202912", "telemetry_p203001", "telemetry_p203002", "telemetry_p203003"} <= set(
            report.created
        )
        # The partitions the migration made for today's months are years past retention in 2030.
        assert all(name[-6:] < "202912" for name in report.dropped)
        _seed_unit(conn, "xa-a")
        _insert_telemetry(conn, [(datetime(2029, 12, 31, 23, tzinfo=UTC), "d1", "xa-a", "m1")])
        conn.commit()

        # A second run the same day changes nothing.
        again = timeseries.maintain(conn, clock, settings)
        assert again.created == [] and again.dropped == []

        # 40 days after the end of December 2029, December is past retention; January is not.
        clock.set(datetime(2030, 2, 10, 1, tzinfo=UTC))
        later = timeseries.maintain(conn, clock, settings)
        assert later.dropped == ["telemetry_p202912"]
        assert "telemetry_p203004" in later.created
        assert conn.execute("SELECT count(*) FROM telemetry").fetchone() == (0,)
        # Rollup rows older than retention go too; events tables (400 days) keep December.
        assert conn.execute("SELECT count(*) FROM telemetry_hourly").fetchone() == (0,)
        assert "camera_events_p202912" in _partitions(url, "camera_events")


def test_row_without_partition_is_refused_with_check_violation(database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        _seed_unit(conn, "xa-a")
        with pytest.raises(psycopg.errors.CheckViolation):
            _insert_telemetry(conn, [(datetime(1999, 1, 1, tzinfo=UTC), "d1", "xa-a", "m-old")])
        conn.rollback()


def test_rollup_matches_raw_counts_with_duplicates(database_url: str) -> None:
    base = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=5)
    with psycopg.connect(database_url) as conn:
        _seed_unit(conn, "xa-rollup")
        rows = [(base + timedelta(minutes=7 * i), f"dev-{i % 3}", "xa-rollup", f"m{i}") for i in range(40)]
        _insert_telemetry(conn, rows[:25])
        _insert_telemetry(conn, rows[10:])  # 15 redelivered rows: stored and counted once
        raw = conn.execute(
            "SELECT date_trunc('hour', time), device_id, count(*) FROM telemetry WHERE unit_id = 'xa-rollup'"
            " GROUP BY 1, 2 ORDER BY 1, 2"
        ).fetchall()
        rolled = hourly_counts(
            conn, "telemetry", base, base + timedelta(hours=6),
            group_by=("device_id",), per_hour=True, unit_ids=["xa-rollup"],
        )  # fmt: skip
        assert [(r.key["bucket"], r.key["device_id"], r.n) for r in rolled] == [tuple(r) for r in raw]
        assert sum(r.n for r in rolled) == 40
        conn.rollback()


def test_merged_unit_rolls_up_to_its_successor(database_url: str) -> None:
    when = datetime.now(UTC).replace(minute=30, second=0, microsecond=0) - timedelta(hours=1)
    with psycopg.connect(database_url) as conn:
        _seed_unit(conn, "xa-moi")
        _seed_unit(conn, "xa-cu", successor="xa-moi")
        _insert_telemetry(conn, [(when, "d-old", "xa-cu", "a"), (when, "d-new", "xa-moi", "b")])
        window = (when - timedelta(hours=1), when + timedelta(hours=1))
        merged = hourly_counts(conn, "telemetry", *window, unit_ids=["xa-moi"])
        assert [(r.key["unit_id"], r.n) for r in merged] == [("xa-moi", 2)]
        separate = hourly_counts(
            conn, "telemetry", *window, unit_ids=None, roll_up_units=False, where={"kind": "sensor"}
        )
        assert {(r.key["unit_id"], r.n) for r in separate} >= {("xa-cu", 1), ("xa-moi", 1)}
        # The stored record keeps the unit it had.
        assert conn.execute("SELECT unit_id FROM telemetry WHERE device_id = 'd-old'").fetchone() == ("xa-cu",)
        conn.rollback()


def test_unknown_dimension_is_a_clear_error(db: psycopg.Connection) -> None:
    with pytest.raises(ValueError, match="has no dimension 'colour'"):
        hourly_counts(db, "telemetry", datetime.now(UTC), datetime.now(UTC), group_by=("colour",))


def test_timescale_backend(pg_admin_url: str, database_factory: Callable[..., str]) -> None:
    with psycopg.connect(pg_admin_url) as conn:
        if not timeseries.timescale_available(conn):
            pytest.skip("the timescaledb extension is not installed on this PostgreSQL server")
    url = database_factory(migrated=False)
    try:
        migrate(url)
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"migration on a TimescaleDB server failed: {exc}")
    with psycopg.connect(url) as conn:
        backend = timeseries.active_backend(conn)
        if backend != "timescale":
            pytest.skip("timescaledb is installed but not preloaded (shared_preload_libraries)")
        report = timeseries.maintain(conn, ManualClock(datetime.now(UTC)), _settings())
        assert "telemetry_hourly" in report.aggregates_created
