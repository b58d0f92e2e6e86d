"""Time-series storage on both backends: migrations, partitions or chunks, retention by clock to the
hour, rollups equal to raw (late and redelivered rows included), concurrent maintenance.

One suite for both backends: the backend a fresh database gets on the test server is known before
the test runs (:func:`expected_backend`), and every backend-specific expectation names it. The
TimescaleDB-only tests skip, with the reason, only when the extension cannot be used on the server.
"""

from __future__ import annotations

import threading
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


def expected_backend(admin_url: str) -> str:
    """The backend ``auto`` must choose on this server: TimescaleDB exactly when it can be used."""
    with psycopg.connect(admin_url) as conn:
        return "timescale" if timeseries.timescale_unusable_reason(conn) is None else "native"


@pytest.fixture(scope="module")
def backend(pg_admin_url: str, database_url: str) -> str:
    expected = expected_backend(pg_admin_url)
    with psycopg.connect(database_url) as conn:
        assert timeseries.active_backend(conn) == expected
    return expected


@pytest.fixture(scope="module")
def timescale_only(backend: str, pg_admin_url: str) -> None:
    if backend != "timescale":
        with psycopg.connect(pg_admin_url) as conn:
            reason = timeseries.timescale_unusable_reason(conn)
        pytest.skip(f"TimescaleDB-only: {reason}")


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


def _raw_vs_rollup(conn: psycopg.Connection, unit: str) -> tuple[list[tuple], list[tuple]]:
    raw = conn.execute(
        "SELECT date_trunc('hour', time), device_id, count(*) FROM telemetry WHERE unit_id = %s"
        " GROUP BY 1, 2 ORDER BY 1, 2",
        (unit,),
    ).fetchall()
    rolled = conn.execute(
        "SELECT bucket, device_id, n FROM telemetry_hourly WHERE unit_id = %s ORDER BY 1, 2", (unit,)
    ).fetchall()
    return raw, rolled


def test_migrations_twice_are_a_no_op(pg_admin_url: str, database_factory: Callable[..., str]) -> None:
    url = database_factory(migrated=False)
    first = migrate(url)
    assert {"0002_timeseries", "0019_timescale_parity"} <= set(first)
    assert migrate(url) == []
    state = status(url)
    assert state.pending == [] and state.current
    with psycopg.connect(url) as conn:
        assert timeseries.active_backend(conn) == expected_backend(pg_admin_url)
        # Everything either backend needs exists after `ioc db migrate`, before any maintenance.
        kinds = dict(
            conn.execute(
                "SELECT relname, relkind FROM pg_class WHERE relname = ANY(%s)",
                ([t.rollup.name(t.name) for t in timeseries.TABLES],),
            ).fetchall()
        )
        assert kinds == {t.rollup.name(t.name): "r" for t in timeseries.TABLES}
        assert hourly_counts(conn, "telemetry", datetime.now(UTC) - timedelta(days=1), datetime.now(UTC)) == []


def test_partitions_or_chunks_after_migration(backend: str, database_url: str) -> None:
    now = datetime.now(UTC)
    next_month = timeseries.add_months(timeseries.month_start(now), 1)
    for table in timeseries.TABLES:
        have = _partitions(database_url, table.name)
        if backend == "native":
            assert timeseries.partition_name(table.name, next_month) in have
        else:
            assert have == set()  # hypertables: chunks are made on demand


def test_ensure_months_is_backend_aware(backend: str, db: psycopg.Connection) -> None:
    """The KPI importer and `ioc bench kpi` call it whatever the backend (it crashed on hypertables)."""
    made = timeseries.ensure_months(db, {datetime(2001, 3, 1).date()})
    if backend == "native":
        assert "telemetry_p200103" in made
    else:
        assert made == []


def test_maintenance_creates_ahead_and_drops_past_retention(backend: str, database_factory: Callable[..., str]) -> None:
    url = database_factory()
    settings = _settings(telemetry_retention_days=40, events_retention_days=400, partition_premake=2)
    clock = ManualClock(datetime(2030, 1, 10, tzinfo=UTC))
    with psycopg.connect(url) as conn:
        report = timeseries.maintain(conn, clock, settings)
        if backend == "native":
            assert {"telemetry_p202912", "telemetry_p203001", "telemetry_p203002", "telemetry_p203003"} <= set(
                report.created
            )
            # The partitions the migration made for today's months are years past retention in 2030.
            assert all(name[-6:] < "202912" for name in report.dropped)
        else:
            assert report.created == []
        _seed_unit(conn, "xa-a")
        _insert_telemetry(
            conn,
            [
                (datetime(2029, 12, 15, 12, tzinfo=UTC), "d1", "xa-a", "m0"),
                (datetime(2029, 12, 31, 23, tzinfo=UTC), "d1", "xa-a", "m1"),
                (datetime(2030, 1, 1, 0, 59, tzinfo=UTC), "d1", "xa-a", "m2"),
                (datetime(2030, 1, 1, 1, tzinfo=UTC), "d1", "xa-a", "m3"),
            ],
        )
        conn.commit()

        # A second run the same day changes nothing.
        again = timeseries.maintain(conn, clock, settings)
        assert again.created == [] and again.dropped == [] and again.rows_deleted == {}

        # At 2030-02-10 01:30 the cutoff is 2030-01-01 01:00: December and the first hour of January
        # are past retention on both backends, to the hour, raw rows and rollup rows alike.
        clock.set(datetime(2030, 2, 10, 1, 30, tzinfo=UTC))
        later = timeseries.maintain(conn, clock, settings)
        if backend == "native":
            assert [name for name in later.dropped if name.startswith("telemetry_")] == ["telemetry_p202912"]
            assert "telemetry_p203004" in later.created
            assert "camera_events_p202912" in _partitions(url, "camera_events")  # 400-day retention
        else:
            assert later.dropped  # the chunk of mid-December went whole (weekly chunks)
        assert conn.execute("SELECT message_id FROM telemetry").fetchall() == [("m3",)]
        raw, rolled = _raw_vs_rollup(conn, "xa-a")
        assert rolled == raw == [(datetime(2030, 1, 1, 1, tzinfo=UTC), "d1", 1)]

        # Retention follows the settings of the moment (it was fixed at migration on TimescaleDB).
        shorter = timeseries.maintain(conn, clock, _settings(telemetry_retention_days=30, events_retention_days=400))
        assert shorter.rows_deleted == {"telemetry": 1} or shorter.dropped, shorter
        assert conn.execute("SELECT count(*) FROM telemetry").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM telemetry_hourly").fetchone() == (0,)


def test_rows_outside_partitions_by_backend(backend: str, database_url: str) -> None:
    """The database itself: native refuses a row no partition holds; TimescaleDB makes a chunk.
    The ingest validator dead-letters such rows first on both (test_timeseries_parity)."""
    with psycopg.connect(database_url) as conn:
        _seed_unit(conn, "xa-a")
        if backend == "native":
            with pytest.raises(psycopg.errors.CheckViolation):
                _insert_telemetry(conn, [(datetime(1999, 1, 1, tzinfo=UTC), "d1", "xa-a", "m-old")])
        else:
            _insert_telemetry(conn, [(datetime(1999, 1, 1, tzinfo=UTC), "d1", "xa-a", "m-old")])
            assert conn.execute("SELECT count(*) FROM telemetry WHERE message_id = 'm-old'").fetchone() == (1,)
        conn.rollback()


def test_rollup_matches_raw_counts_with_duplicates_and_late_rows(database_url: str) -> None:
    base = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=5)
    with psycopg.connect(database_url) as conn:
        _seed_unit(conn, "xa-rollup")
        rows = [(base + timedelta(minutes=7 * i), f"dev-{i % 3}", "xa-rollup", f"m{i}") for i in range(40)]
        _insert_telemetry(conn, rows[:25])
        _insert_telemetry(conn, rows[10:])  # 15 redelivered rows: stored and counted once
        # Late rows (an outage of 20 days; was counted on TimescaleDB only after 3 days at most).
        late = [(base - timedelta(days=20, minutes=i), "dev-0", "xa-rollup", f"late{i}") for i in range(4)]
        _insert_telemetry(conn, late)
        conn.commit()
        raw, _ = _raw_vs_rollup(conn, "xa-rollup")
        rolled = hourly_counts(
            conn, "telemetry", base - timedelta(days=21), base + timedelta(hours=6),
            group_by=("device_id",), per_hour=True, unit_ids=["xa-rollup"],
        )  # fmt: skip
        assert [(r.key["bucket"], r.key["device_id"], r.n) for r in rolled] == [tuple(r) for r in raw]
        assert sum(r.n for r in rolled) == 44


def test_merged_unit_rolls_up_to_its_successor(database_url: str) -> None:
    when = datetime.now(UTC).replace(minute=30, second=0, microsecond=0) - timedelta(hours=1)
    with psycopg.connect(database_url) as conn:
        _seed_unit(conn, "xa-moi")
        _seed_unit(conn, "xa-cu", successor="xa-moi")
        _seed_unit(conn, "xa-cu-hon", successor="xa-cu")  # merged twice: rolls up two steps
        _insert_telemetry(
            conn, [(when, "d-old", "xa-cu", "a"), (when, "d-new", "xa-moi", "b"), (when, "d-older", "xa-cu-hon", "c")]
        )
        window = (when - timedelta(hours=1), when + timedelta(hours=1))
        merged = hourly_counts(conn, "telemetry", *window, unit_ids=["xa-moi"])
        assert [(r.key["unit_id"], r.n) for r in merged] == [("xa-moi", 3)]
        separate = hourly_counts(
            conn, "telemetry", *window, unit_ids=None, roll_up_units=False, where={"kind": "sensor"}
        )
        assert {(r.key["unit_id"], r.n) for r in separate} >= {("xa-cu", 1), ("xa-moi", 1), ("xa-cu-hon", 1)}
        # The set-based roll-up gives what unit_rollup() gives, unit by unit.
        per_unit = conn.execute(
            "SELECT unit_rollup(unit_id), count(*) FROM telemetry"
            " WHERE date_trunc('hour', time) >= %s AND date_trunc('hour', time) < %s"
            " GROUP BY 1 ORDER BY 1 NULLS FIRST",
            window,
        ).fetchall()
        everything = hourly_counts(conn, "telemetry", *window, unit_ids=None)
        assert sorted(((r.key["unit_id"], r.n) for r in everything), key=lambda x: (x[0] is not None, x[0])) == [
            tuple(r) for r in per_unit
        ]
        # The stored record keeps the unit it had.
        assert conn.execute("SELECT unit_id FROM telemetry WHERE device_id = 'd-old'").fetchone() == ("xa-cu",)
        conn.rollback()


def test_unknown_dimension_is_a_clear_error(db: psycopg.Connection) -> None:
    with pytest.raises(ValueError, match="has no dimension 'colour'"):
        hourly_counts(db, "telemetry", datetime.now(UTC), datetime.now(UTC), group_by=("colour",))


def test_concurrent_maintenance_is_safe(database_factory: Callable[..., str]) -> None:
    """Six runs at once, twice (4 of 15 concurrent runs failed on TimescaleDB before the lock)."""
    url = database_factory()
    errors: list[BaseException] = []
    start = threading.Barrier(6)

    def run() -> None:
        try:
            with psycopg.connect(url) as conn:
                start.wait(10)
                timeseries.maintain(conn, ManualClock(datetime.now(UTC)), _settings())
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    for _ in range(2):
        threads = [threading.Thread(target=run) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    assert errors == []


def test_timescale_unusable_reason_on_this_server(pg_admin_url: str) -> None:
    with psycopg.connect(pg_admin_url) as conn:
        reason = timeseries.timescale_unusable_reason(conn)
        available = timeseries.timescale_available(conn)
        preloaded = timeseries.timescale_preloaded(conn)
    if not available:
        assert reason == "the timescaledb extension is not installed on this PostgreSQL server"
    elif preloaded is False:
        assert reason is not None and "shared_preload_libraries" in reason
    else:
        assert preloaded is True and reason is None


def _mark_failing(conn: psycopg.Connection, job_id: int) -> None:
    """Record a failed run of a job as TimescaleDB 2.28.3 records it on PostgreSQL 15.20 (the
    scheduler may not have run the job yet in a fresh database)."""
    conn.execute(
        "INSERT INTO _timescaledb_internal.bgw_job_stat (job_id, last_start, last_finish, next_start,"
        " last_successful_finish, last_run_success, total_runs, total_duration, total_duration_failures,"
        " total_successes, total_failures, total_crashes, consecutive_failures, consecutive_crashes, flags)"
        " VALUES (%s, now(), now(), now() + interval '1 hour', '-infinity', false, 1, '0', '0', 0, 1, 0, 1, 0, 0)"
        " ON CONFLICT (job_id) DO UPDATE SET last_run_success = false, total_failures = 1,"
        " last_successful_finish = '-infinity'",
        (job_id,),
    )


# --- TimescaleDB only ------------------------------------------------------------------------------


def test_timescale_schema_has_no_continuous_aggregates_nor_fixed_retention(
    timescale_only: None, database_url: str
) -> None:
    with psycopg.connect(database_url) as conn:
        hypertables = {
            r[0] for r in conn.execute("SELECT hypertable_name FROM timescaledb_information.hypertables").fetchall()
        }
        assert {t.name for t in timeseries.TABLES} <= hypertables
        assert conn.execute("SELECT count(*) FROM timescaledb_information.continuous_aggregates").fetchone() == (0,)
        procs = conn.execute(
            "SELECT hypertable_name, proc_name FROM timescaledb_information.jobs WHERE hypertable_name IS NOT NULL"
        ).fetchall()
        assert sorted(procs) == sorted((t.name, "policy_compression") for t in timeseries.TABLES)
        triggers = conn.execute(
            "SELECT tgrelid::regclass::text FROM pg_trigger WHERE tgname LIKE '%%_hourly_add' ORDER BY 1"
        ).fetchall()
        assert [r[0] for r in triggers] == sorted(t.name for t in timeseries.TABLES)


def test_timescale_late_rows_into_compressed_chunks_count_at_once(
    timescale_only: None, database_factory: Callable[..., str]
) -> None:
    url = database_factory()
    old = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=30)
    with psycopg.connect(url) as conn:
        _seed_unit(conn, "xa-late")
        _insert_telemetry(conn, [(old + timedelta(minutes=i), "d1", "xa-late", f"a{i}") for i in range(10)])
        conn.commit()
        compressed = conn.execute(
            "SELECT count(compress_chunk(c, if_not_compressed => true)) FROM show_chunks('telemetry') c"
        ).fetchone()
        conn.commit()
        assert compressed == (1,)
        # Redelivered and late rows into the compressed chunk: each stored and counted once.
        _insert_telemetry(conn, [(old + timedelta(minutes=i), "d1", "xa-late", f"a{i}") for i in range(5, 15)])
        conn.commit()
        raw, rolled = _raw_vs_rollup(conn, "xa-late")
        assert rolled == raw == [(old, "d1", 15)]
        # Retention cutting through the compressed chunk (not dropped whole): the rows of the hours
        # before the cutoff go with their counts, the later ones stay.
        _insert_telemetry(conn, [(old + timedelta(hours=2, minutes=i), "d1", "xa-late", f"b{i}") for i in range(3)])
        conn.commit()
        clock = ManualClock(old + timedelta(days=30, hours=1, minutes=1))  # cutoff: old + 1 h
        report = timeseries.maintain(conn, clock, _settings(telemetry_retention_days=30))
        assert report.dropped == [] and report.rows_deleted == {"telemetry": 15}
        raw, rolled = _raw_vs_rollup(conn, "xa-late")
        assert rolled == raw == [(old + timedelta(hours=2), "d1", 3)]


def test_timescale_jobs_are_checked_and_failing_ones_run_by_maintain(
    timescale_only: None, database_factory: Callable[..., str]
) -> None:
    url = database_factory()
    with psycopg.connect(url) as conn:
        jobs = timeseries.job_states(conn)
        compression = [j for j in jobs if j.proc == "policy_compression"]
        assert sorted(j.hypertable for j in compression) == sorted(t.name for t in timeseries.TABLES)
        # A failing job as TimescaleDB 2.28.3 records it on PostgreSQL 15.20 (the scheduler may not
        # have run it yet in this fresh database): its stats say Failed.
        job = compression[0]
        _mark_failing(conn, job.job_id)
        conn.commit()
        failing = {j.job_id for j in timeseries.job_states(conn) if j.failing}
        assert job.job_id in failing
        report = timeseries.maintain(conn, ManualClock(datetime.now(UTC)), _settings())
        said = [line for line in report.jobs_run if line.startswith(f"job {job.job_id} ")]
        assert said and said[0].endswith("its work ran here"), report.jobs_run
        assert "failing jobs whose work ran here" in report.summary()


def test_timescale_upgrade_replaces_old_aggregates_and_retention(
    timescale_only: None, database_factory: Callable[..., str]
) -> None:
    """A database made by the earlier release (continuous aggregate, retention policy) is brought
    to today's schema by migration 0019's step, counts backfilled from the raw rows."""
    url = database_factory()
    when = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=10)
    with psycopg.connect(url, autocommit=True) as conn:
        _seed_unit(conn, "xa-up")
        _insert_telemetry(conn, [(when + timedelta(minutes=i), f"d{i % 2}", "xa-up", f"u{i}") for i in range(7)])
        conn.execute("DROP TABLE telemetry_hourly CASCADE")
        conn.execute("DROP TRIGGER telemetry_hourly_add ON telemetry")
        conn.execute(
            "CREATE MATERIALIZED VIEW telemetry_hourly WITH (timescaledb.continuous,"
            " timescaledb.materialized_only = false) AS SELECT time_bucket(INTERVAL '1 hour', time) AS bucket,"
            " coalesce(unit_id::text, '') AS unit_id, coalesce(kind::text, '') AS kind,"
            " coalesce(device_id::text, '') AS device_id, count(*) AS n FROM telemetry GROUP BY 1, 2, 3, 4"
            " WITH NO DATA"
        )
        conn.execute("SELECT add_retention_policy('telemetry', INTERVAL '90 days')")
        with conn.transaction():
            changed = timeseries.upgrade_schema(conn)
        assert changed == [
            "dropped continuous aggregate telemetry_hourly",
            "created rollup table telemetry_hourly",
            "removed retention policy of telemetry",
        ]
        raw, rolled = _raw_vs_rollup(conn, "xa-up")
        assert rolled == raw and sum(r[2] for r in raw) == 7
        with conn.transaction():
            assert timeseries.upgrade_schema(conn) == []


def test_extension_installed_but_not_preloaded_falls_back_or_says_why() -> None:
    """Needs a server with the extension installed and *not* preloaded, which the suite's server
    cannot be at the same time as a preloaded one: give its URL in IOC_TEST_TIMESCALE_NOT_PRELOADED_URL."""
    import os
    import secrets

    from psycopg import sql

    from ioc.storage.db import with_database

    admin = os.environ.get("IOC_TEST_TIMESCALE_NOT_PRELOADED_URL")
    if not admin:
        pytest.skip("IOC_TEST_TIMESCALE_NOT_PRELOADED_URL (timescaledb installed, not preloaded) is not set")
    names = [f"ioc_test_{secrets.token_hex(4)}" for _ in range(2)]
    with psycopg.connect(admin, autocommit=True) as conn:
        assert timeseries.timescale_available(conn) and timeseries.timescale_preloaded(conn) is False
        for name in names:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        auto, forced = (with_database(admin, name) for name in names)
        migrate(auto)  # used to end the connection: 0001 applied, the rest pending on every retry
        with psycopg.connect(auto) as conn:
            assert timeseries.active_backend(conn) == "native"
        with psycopg.connect(forced) as conn, pytest.raises(RuntimeError, match="shared_preload_libraries"):
            timeseries.choose_backend(conn, "timescale")
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            for name in names:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def test_role_that_may_not_read_the_preload_setting_gets_a_reason(pg_admin_url: str, database_url: str) -> None:
    import secrets

    from psycopg import sql

    role = f"ioc_test_reader_{secrets.token_hex(3)}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD 'x'").format(sql.Identifier(role)))
    try:
        info = psycopg.conninfo.conninfo_to_dict(database_url)
        info.update(user=role, password="x")
        with psycopg.connect(**info) as conn:
            assert timeseries.timescale_preloaded(conn) is None
            assert conn.execute("SELECT 1").fetchone() == (1,)  # the transaction is still usable
            if (
                timeseries.timescale_available(conn)
                and not conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'").fetchone()
            ):
                assert "pg_read_all_settings" in (timeseries.timescale_unusable_reason(conn) or "")
    finally:
        with psycopg.connect(pg_admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def test_db_check_and_maintain_commands(
    backend: str, database_factory: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from ioc.cli.db_cmd import app
    from ioc.settings import get_settings

    url = database_factory()
    monkeypatch.setenv("IOC_DATABASE_URL", url)
    monkeypatch.setenv("COLUMNS", "400")
    get_settings.cache_clear()
    runner = CliRunner()
    try:
        with psycopg.connect(url) as conn:
            if backend == "timescale":
                _mark_failing(conn, timeseries.job_states(conn)[-1].job_id)
                conn.commit()
            failing = [j for j in timeseries.job_states(conn) if j.failing] if backend == "timescale" else []
            assert bool(failing) == (backend == "timescale")
        check = runner.invoke(app, ["check"])
        assert f"time-series backend: {backend}" in check.output
        assert check.exit_code == (1 if failing else 0), check.output
        for job in failing:
            assert f"job {job.job_id} {job.name}: FAILING" in check.output
        maintain = runner.invoke(app, ["maintain"])
        assert maintain.exit_code == 0, maintain.output
        assert maintain.output.startswith(f"{backend}: ")
        for job in failing:
            assert f"job {job.job_id} ({job.name}) fails in the background" in maintain.output
    finally:
        get_settings.cache_clear()


def test_writer_stores_rows_of_a_month_without_partition(
    database_factory: Callable[..., str],
) -> None:
    """The writer gets rows the validator accepted: native makes the month's partition as TimescaleDB
    makes a chunk, so both backends store the same rows (the validator's rules decide)."""
    import json

    from ingest.writer import BatchWriter, DeadLetter

    url = database_factory()
    now = datetime.now(UTC)
    old = now - timedelta(days=80)  # inside the 90-day retention, months before the premade ones
    values = [(t, "w1", "xa-w", "sensor", f"m{i}", json.dumps({"i": i}), now) for i, t in enumerate((now, old, old))]
    writer = BatchWriter(lambda: psycopg.connect(url))

    def refused(key: int, reason: str, detail: dict) -> DeadLetter:
        return DeadLetter(now, f"t/{key}", b"raw", reason, detail)

    try:
        result, _ = writer.write({"telemetry": list(enumerate(values))}, [], refused=refused)
    finally:
        writer.close()
    assert result.inserted == {"telemetry": 3} and result.rejected == []
    with psycopg.connect(url) as conn:
        raw, rolled = _raw_vs_rollup(conn, "xa-w")
        assert rolled == raw and sum(r[2] for r in raw) == 3


def test_rollup_bench_prints_both_timings_and_equal_answers(pg_admin_url: str) -> None:
    from ioc.storage.bench_rollups import run

    result = run(pg_admin_url, rounds=1, devices=20)  # raises if the set-based answer differs from unit_rollup()'s
    assert result["rollup_rows"] == 14_400
    assert all(result[k] > 0 for k in ("per_row_function_median_ms", "set_based_median_ms"))
    assert isinstance(result["ratio_to_per_row_function"], float)
