"""The same messages to both backends, every figure compared: native partitions and TimescaleDB
hypertables must store, refuse, count and expire exactly the same rows.

The messages go through the ingest worker's own validation and batch writer (``Worker._write``: the
path a message from the broker takes after the network thread, without the broker): fresh, late by
weeks (into compressed chunks on TimescaleDB), redelivered, ahead of the clock, from 1999, just
inside and just past retention, from a merged commune. Then maintenance runs at a later clock and
the figures are compared again. Both backends are also compared with the figures expected from the
messages themselves, so the test means something on a server without TimescaleDB (CI), where only
the native database is made.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from ingest.testing import seed_devices
from ingest.validate import Inbound
from ingest.worker import Worker, WorkerConfig
from ioc.clock import ManualClock
from ioc.settings import Settings, get_settings
from ioc.storage import timeseries
from ioc.storage.migrate import migrate
from ioc.storage.repositories.series import hourly_counts

UNIT, OLD_UNIT = "xa-par", "xa-par-cu"  # OLD_UNIT merged into UNIT: its counts roll up to UNIT


def _migrated(database_factory: Callable[..., str], monkeypatch: pytest.MonkeyPatch, backend: str) -> str:
    url = database_factory(migrated=False)
    monkeypatch.setenv("IOC_TIMESERIES_BACKEND", backend)
    get_settings.cache_clear()
    try:
        migrate(url)
    finally:
        monkeypatch.delenv("IOC_TIMESERIES_BACKEND")
        get_settings.cache_clear()
    with psycopg.connect(url) as conn:
        assert timeseries.active_backend(conn) == backend
        conn.execute(
            "INSERT INTO units (id, name, name_search, level) VALUES (%s, %s, %s, 'commune')", (UNIT, UNIT, UNIT)
        )
        conn.execute(
            "INSERT INTO units (id, name, name_search, level, successor_id) VALUES (%s, %s, %s, 'commune', %s)",
            (OLD_UNIT, OLD_UNIT, OLD_UNIT, UNIT),
        )
    seed_devices(url, UNIT, [("s1", "sensor"), ("c1", "camera")])
    seed_devices(url, OLD_UNIT, [("s2", "sensor")])
    return url


@pytest.fixture()
def databases(
    pg_admin_url: str, database_factory: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, str]]:
    made = {"native": _migrated(database_factory, monkeypatch, "native")}
    with psycopg.connect(pg_admin_url) as conn:
        usable = timeseries.timescale_unusable_reason(conn) is None
    if usable:
        made["timescale"] = _migrated(database_factory, monkeypatch, "timescale")
    yield made


def _msg(unit: str, kind: str, device: str, channel: str, body: dict[str, Any], now: datetime) -> Inbound:
    topic = f"ioc/v1/{unit}/{kind}/{device}/{channel}".encode()
    return Inbound(topic, json.dumps(body).encode(), 1, 1, False, 1, now, time.monotonic())


def _messages(now: datetime) -> tuple[list[list[Inbound]], dict[str, Any]]:
    """Batches of messages and what must come of them (stored rows per table, dead-letter codes)."""

    def tele(device: str, unit: str, mid: str, ts: datetime) -> Inbound:
        body = {"v": 1, "id": mid, "ts": ts.isoformat(), "metrics": {"x": 1}}
        return _msg(unit, "sensor", device, "telemetry", body, now)

    def event(mid: str, ts: datetime, kind: str) -> Inbound:
        return _msg(UNIT, "sensor", "s1", "event", {"v": 1, "id": mid, "ts": ts.isoformat(), "type": kind}, now)

    def camera(mid: str, ts: datetime, rule: str) -> Inbound:
        body = {"v": 1, "id": mid, "ts": ts.isoformat(), "rule": rule, "object_class": "person", "score": 0.9}
        return _msg(UNIT, "camera", "c1", "event", body, now)

    fresh = [tele("s1", UNIT, f"f{i}", now - timedelta(minutes=17 * i)) for i in range(12)]
    fresh += [tele("s2", OLD_UNIT, f"o{i}", now - timedelta(minutes=29 * i)) for i in range(5)]
    events = [event(f"e{i}", now - timedelta(hours=i), "door.open" if i % 2 else "power.lost") for i in range(4)]
    cameras = [camera(f"k{i}", now - timedelta(minutes=3 * i), "intrusion") for i in range(3)]
    late = [tele("s1", UNIT, f"l{i}", now - timedelta(days=20, minutes=7 * i)) for i in range(6)]
    late += [camera("k-late", now - timedelta(days=30), "loitering")]
    edge = [
        tele("s1", UNIT, "in89", now - timedelta(days=89)),  # inside the 90-day retention
        tele("s1", UNIT, "past91", now - timedelta(days=91)),  # past it: dead letter
        tele("s1", UNIT, "future", now + timedelta(days=1)),  # ahead of the clock: dead letter
        tele("s1", UNIT, "y1999", datetime(1999, 1, 1, tzinfo=UTC)),  # dead letter on both backends
    ]
    redelivered = fresh[:5] + events[:1] + late[:2]
    batches = [fresh + events + cameras, late + edge, redelivered]
    expected = {
        # device_events: 4 events and one presence change (online) for each of the 3 devices
        "stored": {"telemetry": 12 + 5 + 6 + 1, "device_events": 4 + 3, "camera_events": 4, "dossier_events": 0},
        "dead": {"ts_out_of_range": 3},
    }
    return batches, expected


def _figures(url: str, now: datetime) -> dict[str, Any]:
    """Every figure the storage gives: raw counts, hourly counts (rolled up and not), dead letters."""
    start, end = now - timedelta(days=400), now + timedelta(days=2)
    figures: dict[str, Any] = {}
    with psycopg.connect(url) as conn:
        for table in timeseries.TABLES:
            dims = table.rollup.dimensions
            figures[f"{table.name}.stored"] = conn.execute(f"SELECT count(*) FROM {table.name}").fetchone()[0]
            for roll_up in (True, False):
                rows = hourly_counts(
                    conn, table.name, start, end, group_by=dims, per_hour=True, unit_ids=None, roll_up_units=roll_up
                )
                figures[f"{table.name}.hourly.rollup={roll_up}"] = [(sorted(r.key.items()), r.n) for r in rows]
            raw = conn.execute(
                f"SELECT date_trunc('hour', time), {', '.join(dims)}, count(*) FROM {table.name}"
                f" GROUP BY 1, {', '.join(str(i + 2) for i in range(len(dims)))} ORDER BY 1"
            ).fetchall()
            rollup = conn.execute(
                f"SELECT bucket, {', '.join(dims)}, n FROM {table.rollup.name(table.name)} WHERE n > 0 ORDER BY 1"
            ).fetchall()
            # The rollup is exactly the raw rows counted by hour (NULL dimensions stored as '').
            assert sorted(tuple("" if v is None else v for v in r) for r in raw) == sorted(rollup), table.name
        figures["dead_letters"] = dict(
            Counter(r[0] for r in conn.execute("SELECT detail->>'code' FROM dead_letters").fetchall())
        )
        figures["merged_unit_total"] = sum(
            r.n for r in hourly_counts(conn, "telemetry", start, end, unit_ids=[UNIT], group_by=())
        )
    return figures


def _compress_old_chunks(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "SELECT compress_chunk(c, if_not_compressed => true)"
            " FROM show_chunks('telemetry', older_than => now() - INTERVAL '7 days') c"
        )


def test_same_messages_same_figures_on_both_backends(databases: dict[str, str]) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    batches, expected = _messages(now)
    clock = ManualClock(now)
    results: dict[str, dict[str, Any]] = {}
    later_results: dict[str, dict[str, Any]] = {}
    for backend, url in databases.items():
        worker = Worker(WorkerConfig(database_url=url, mqtt_url="mqtt://127.0.0.1:1"), clock=clock)
        try:
            for i, batch in enumerate(batches):
                worker._write(batch)
                if i == 0 and backend == "timescale":
                    _compress_old_chunks(url)  # late rows then land in compressed chunks
            if backend == "timescale":
                _compress_old_chunks(url)
            worker._write(batches[1][:4])  # late rows redelivered into compressed chunks
        finally:
            worker.writer.close()
        results[backend] = _figures(url, now)
        # Ten days on, the 89-day-old row is past the 90-day retention; the rest stays.
        with psycopg.connect(url) as conn:
            settings = Settings(_env_file=None)  # type: ignore[call-arg]
            timeseries.maintain(conn, ManualClock(now + timedelta(days=10)), settings)
        later_results[backend] = _figures(url, now)

    for backend, figures in results.items():
        for table, n in expected["stored"].items():
            assert figures[f"{table}.stored"] == n, (backend, table)
        assert figures["dead_letters"] == expected["dead"], backend
        assert figures["merged_unit_total"] == expected["stored"]["telemetry"], backend
        later = later_results[backend]
        assert later["telemetry.stored"] == expected["stored"]["telemetry"] - 1, backend
        assert later["merged_unit_total"] == expected["stored"]["telemetry"] - 1, backend
        assert later["camera_events.stored"] == expected["stored"]["camera_events"], backend
    if "timescale" in results:
        assert results["timescale"] == results["native"]
        assert later_results["timescale"] == later_results["native"]
