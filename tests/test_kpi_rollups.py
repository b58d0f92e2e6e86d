"""The daily KPI rollup equals the raw recomputation, whatever the events and their arrival order.

Random dossiers (some moved to another unit by a late ``received``, some finished before they were
received, resolved exactly at their due time, rated twice, received at local midnight...) have their
events delivered shuffled, in random batches, through the path ingest uses (store the events, then
``ioc.kpi.dossiers.refresh``); after every batch the rollup's figures equal those counted from the
``dossiers`` rows, for random periods of local dates.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg.types.json import Jsonb

from ioc.clock import LOCAL_TZ
from ioc.kpi.dossiers import refresh, stale_dossiers
from ioc.kpi.rollups import differences, rebuild, tile_figures

UNITS = ("roll-a", "roll-b", "roll-c")
BASE = datetime(2026, 10, 1, tzinfo=LOCAL_TZ)  # local midnight
DAYS = 45


@pytest.fixture(scope="module")
def url(database_factory: Callable[..., str]) -> str:
    from ioc.storage.timeseries import ensure_months

    url = database_factory(migrated=True)
    with psycopg.connect(url) as conn:
        ensure_months(conn, {date(2026, m, 1) for m in (9, 10, 11, 12)})
        for unit in UNITS:
            conn.execute("INSERT INTO units (id, name, name_search, level) VALUES (%s, %s, %s, 'commune')",
                         (unit, unit, unit))  # fmt: skip
    return url


# A time in the window: any minute, or exactly a local midnight (the periods' edges).
instants = st.one_of(
    st.integers(-3 * 1440, DAYS * 1440).map(lambda m: BASE + timedelta(minutes=m)),
    st.integers(-3, DAYS).map(lambda d: BASE + timedelta(days=d)),
)


@st.composite
def dossier(draw: st.DrawFn) -> list[tuple[datetime, str, str, dict]]:
    """The events of one dossier: (time, event, unit, payload)."""
    unit = draw(st.sampled_from(UNITS))
    events: list[tuple[datetime, str, str, dict]] = []
    received = draw(instants)
    due = draw(st.one_of(st.none(), instants, st.just(received + timedelta(days=3))))
    if draw(st.integers(0, 14)) != 0:  # rarely, the `received` event never comes
        payload: dict = {"channel": draw(st.sampled_from(["direct", "online", "postal"]))}
        if due is not None:
            payload["due_at"] = due.isoformat()
        events.append((received, "received", unit, payload))
    if draw(st.integers(0, 9)) == 0:  # a correction from another unit, later: the dossier moves
        events.append((received + timedelta(hours=draw(st.integers(1, 72))), "received",
                       draw(st.sampled_from(UNITS)), {"channel": "online"}))  # fmt: skip
    if draw(st.booleans()):
        events.append((received + timedelta(hours=1), "supplement_requested", unit, {}))
        events.append((received + timedelta(hours=5), "supplemented", unit, {}))
    for final in draw(st.lists(st.sampled_from(["resolved", "refused", "withdrawn"]), max_size=2)):
        at = draw(st.one_of(instants, st.just(due) if due is not None else instants))
        events.append((at, final, unit, {}))
    if draw(st.booleans()):
        events.append((draw(instants), "paid_online", unit, {}))
    if draw(st.booleans()):
        events.append((draw(instants), "digitised", unit, {}))
    for _ in range(draw(st.integers(0, 2))):
        events.append((draw(instants), "rated", unit, {"satisfied": draw(st.booleans())}))
    return events


@st.composite
def scenario(draw: st.DrawFn) -> tuple[list[tuple[str, tuple]], list[int], list[tuple[date, date]]]:
    count = draw(st.integers(1, 12))
    events = [(f"R{i}", e) for i in range(count) for e in draw(dossier())]
    events = draw(st.permutations(events))
    cuts = sorted(draw(st.lists(st.integers(0, len(events)), max_size=4)))
    periods = []
    for _ in range(3):
        first = BASE.date() + timedelta(days=draw(st.integers(-2, DAYS)))
        periods.append((first, first + timedelta(days=draw(st.integers(0, 40)))))
    return events, cuts, periods


def _store(conn: psycopg.Connection, batch: list[tuple[str, tuple]]) -> None:
    """What the ingest worker does with a batch: insert the events once, then refresh their dossiers."""
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO dossier_events (time, dossier_id, unit_id, event, message_id, payload)"
            " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            [(at, d, unit, event, f"{d}-{event}-{at.timestamp()}", Jsonb({"event": event, **payload}))
             for d, (at, event, unit, payload) in batch],
        )  # fmt: skip
    refresh(conn, {d for d, _ in batch})


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(scenario())
def test_rollup_equals_raw_after_shuffled_batches(url: str, case: tuple) -> None:
    events, cuts, periods = case
    with psycopg.connect(url) as conn:
        bounds = [0, *cuts, len(events)]
        for lo, hi in zip(bounds, bounds[1:], strict=False):
            if lo == hi:
                continue
            _store(conn, events[lo:hi])
            first, last = periods[0]
            assert differences(conn, first, last) == []
        for first, last in periods:
            assert differences(conn, first, last) == [], (first, last)
        before = tile_figures(conn, *periods[1])
        rebuild(conn)  # recomputed from scratch: the incrementally kept rows were already exact
        assert tile_figures(conn, *periods[1]) == before
        conn.rollback()


def test_check_reports_a_rollup_that_drifted(url: str) -> None:
    """The check is not vacuous: a rollup row changed behind the triggers' back is found."""
    with psycopg.connect(url) as conn:
        _store(conn, [("D1", (BASE + timedelta(days=2), "received", "roll-a", {"channel": "online"}))])
        day = BASE.date() + timedelta(days=2)
        assert differences(conn, day, day) == []
        conn.execute("UPDATE dossier_kpi_daily SET received = received + 1 WHERE unit_id = 'roll-a' AND day = %s",
                     (day,))  # fmt: skip
        found = differences(conn, day, day)
        assert ("roll-a", "received", 2, 1) in found
        conn.rollback()


def test_kpi_check_command_finds_and_repairs_drift(
    database_factory: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from ioc.cli.kpi_cmd import app
    from ioc.settings import get_settings
    from ioc.storage.timeseries import ensure_months

    db = database_factory(migrated=True)
    with psycopg.connect(db) as conn:
        ensure_months(conn, {date(2026, 10, 1), date(2026, 9, 1)})
        conn.execute("INSERT INTO units (id, name, name_search, level) VALUES ('roll-k', 'K', 'k', 'commune')")
        _store(conn, [("K1", (BASE + timedelta(days=1), "received", "roll-k", {"channel": "postal"})),
                      ("K2", (BASE + timedelta(days=2), "received", "roll-k", {"channel": "online"})),
                      ("K2", (BASE + timedelta(days=3), "resolved", "roll-k", {}))])  # fmt: skip
    monkeypatch.setenv("IOC_DATABASE_URL", db)
    get_settings.cache_clear()
    runner = CliRunner()
    period = ["check", "--from", "2026-10-01", "--to", "2026-10-31"]
    try:
        clean = runner.invoke(app, [*period, "--refold"])
        assert clean.exit_code == 0, clean.output
        with psycopg.connect(db) as conn:  # drift behind the triggers' back
            conn.execute("UPDATE dossier_kpi_daily SET received_postal = 0 WHERE unit_id = 'roll-k'")
        drift = runner.invoke(app, period)
        assert drift.exit_code == 1 and "roll-k received_postal: rollup 0, raw 1" in drift.output
        assert runner.invoke(app, [*period, "--repair"]).exit_code == 1
        assert runner.invoke(app, period).exit_code == 0
        with psycopg.connect(db) as conn:  # a dossier row that is not the fold of its events
            conn.execute("UPDATE dossiers SET status = 'withdrawn', finished_at = resolved_at, resolved_at = NULL"
                         " WHERE id = 'K2'")  # fmt: skip
        assert runner.invoke(app, period).exit_code == 0  # the rollup followed the row...
        with psycopg.connect(db) as conn:  # events older than the retention horizon may be gone: not checked
            assert stale_dossiers(conn, BASE - timedelta(days=30)) == ["K2"]
            assert stale_dossiers(conn, BASE + timedelta(days=2, hours=1)) == []
        stale = runner.invoke(app, [*period, "--refold"])
        assert stale.exit_code == 1 and "dossier K2" in stale.output  # ...but the events say otherwise
        assert runner.invoke(app, [*period, "--refold", "--repair"]).exit_code == 1
        assert runner.invoke(app, [*period, "--refold"]).exit_code == 0
        assert runner.invoke(app, ["check", "--from", "2026-10-31", "--to", "2026-10-01"]).exit_code == 2
    finally:
        get_settings.cache_clear()


def test_the_wall_hears_which_units_figures_moved(url: str) -> None:
    """A dossier moved to another unit by a late `received` announces both units, on commit only."""
    import json

    with psycopg.connect(url, autocommit=True) as listener, psycopg.connect(url) as conn:
        listener.execute("LISTEN ioc_events")
        _store(conn, [("M1", (BASE + timedelta(days=1), "resolved", "roll-b", {}))])
        conn.commit()
        _store(conn, [("M1", (BASE, "received", "roll-c", {"channel": "direct"}))])
        _store(conn, [("M2", (BASE, "result_returned", "roll-a", {}))])
        conn.rollback()  # nothing committed: nothing announced
        _store(conn, [("M1", (BASE, "received", "roll-c", {"channel": "direct"}))])
        conn.commit()
        heard = [json.loads(n.payload) for n in listener.notifies(timeout=10.0, stop_after=3)]
    kpi = [(e["type"], e["unit_id"]) for e in heard if e["topic"] == "kpi"]
    assert kpi == [("dossier.figures", "roll-b"), ("dossier.figures", "roll-b"), ("dossier.figures", "roll-c")]
    with psycopg.connect(url) as conn:  # leave the module's database as it was
        conn.execute("DELETE FROM dossiers WHERE id = 'M1'")
        conn.execute("DELETE FROM dossier_events WHERE dossier_id = 'M1'")


def test_migration_counts_the_dossiers_stored_before_it(database_factory: Callable[..., str]) -> None:
    from yoyo import get_backend, read_migrations

    from ioc.storage.migrate import MIGRATIONS_DIR, migrate, yoyo_url

    db = database_factory(migrated=False)
    backend = get_backend(yoyo_url(db))
    migrations = read_migrations(str(MIGRATIONS_DIR))
    with backend.lock():
        backend.apply_migrations(backend.to_apply(migrations.filter(lambda m: m.id < "0012")))
    with psycopg.connect(db) as conn:
        conn.execute("INSERT INTO units (id, name, name_search, level) VALUES ('roll-m', 'M', 'm', 'commune')")
        conn.execute(
            "INSERT INTO dossiers (id, unit_id, channel, received_at, due_at, status, resolved_at, finished_at)"
            " VALUES ('OLD-1', 'roll-m', 'online', %s, %s, 'resolved', %s, %s)",
            (BASE, BASE + timedelta(days=2), BASE + timedelta(days=1), BASE + timedelta(days=1)),
        )
        assert conn.execute("SELECT to_regclass('dossier_kpi_daily')").fetchone() == (None,)  # no trigger yet
    migrate(db)
    with psycopg.connect(db) as conn:
        figures = tile_figures(conn, BASE.date(), BASE.date() + timedelta(days=30))["roll-m"]
        assert (figures["received_online"], figures["resolved_early"], figures["open_at_end"]) == (1, 1, 0)
        assert differences(conn, BASE.date(), BASE.date() + timedelta(days=30)) == []
