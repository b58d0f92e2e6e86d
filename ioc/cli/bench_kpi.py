"""``ioc bench kpi``: the wall's dossier tiles from the daily rollup against the raw count, same run.

A fresh database with the sample district gets N dossiers spread over its leaf units and five
months (skewed volumes per unit, office hours, 45 % online, due times 1-15 days ahead at 17:00,
resolved early, on time, exactly at the due time or late, refusals, withdrawals, open ones waiting
for a supplement, online payments, digitisation, ratings), generated set-based in SQL in chunks, and
the lifecycle events those states come from (``dossier_events``). Inserting the ``dossiers`` rows
fires the same rollup triggers as ingest. A sample of dossiers is re-folded from its events to
show that the generated rows are what ingest would have computed.

Then the tile query of ``GET /api/kpi/dossiers`` (all units, the five months and the previous
period of the same length, for the ranking's change) is timed from the rollup
(:func:`ioc.kpi.rollups.tile_figures`) and, in the same run, from the raw ``dossiers`` rows
(:func:`ioc.kpi.figures.dossier_kpis`, what the API computed before rollups and what ``ioc kpi
check`` compares with). Reported: both p50/p99, ``ratio_to_raw_*`` (rollup time / raw time),
``times_faster_than_raw`` and ``equal`` (every figure of every unit the same).
"""

from __future__ import annotations

import logging
import os
import random
import statistics
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import psycopg

FIRST_DAY = date(2026, 6, 1)
LAST_DAY = date(2026, 10, 31)  # five months
CHUNK = 250_000
log = logging.getLogger("ioc.bench.kpi")

# One chunk of dossiers, ids lo..hi. Volumes per unit are skewed (random()^1.6), received in office
# hours on any of the 153 days; times are local (Asia/Ho_Chi_Minh) and stored as instants.
_DOSSIERS = """
WITH draw AS (
    SELECT g, random() AS r_unit, random() AS r_day, random() AS r_hour, random() AS r_channel,
           1 + floor(random() * 15)::int AS due_days, random() AS r_outcome, random() AS r_speed,
           random() AS r_pay, random() AS r_digit, random() AS r_rate, random() AS r_verdict
    FROM generate_series(%(lo)s::bigint, %(hi)s::bigint) AS g
), base AS (
    SELECT g, (%(units)s::text[])[1 + floor(%(n_units)s * r_unit ^ 1.6)::int] AS unit_id,
           ((%(first)s::date + floor(r_day * %(days)s)::int) + interval '7 hours 30 minutes'
             + r_hour * interval '9 hours 30 minutes') AT TIME ZONE 'Asia/Ho_Chi_Minh' AS received_at,
           CASE WHEN r_channel < 0.45 THEN 'online' WHEN r_channel < 0.92 THEN 'direct' ELSE 'postal' END AS channel,
           due_days, r_outcome, r_speed, r_pay, r_digit, r_rate, r_verdict
    FROM draw
), timed AS (
    SELECT *, ((received_at AT TIME ZONE 'Asia/Ho_Chi_Minh')::date + due_days + interval '17 hours')
                AT TIME ZONE 'Asia/Ho_Chi_Minh' AS due_at
    FROM base
), outcome AS (
    SELECT *,
        CASE WHEN r_outcome < 0.04 THEN 'refused' WHEN r_outcome < 0.06 THEN 'withdrawn'
             WHEN r_outcome < 0.93 THEN 'resolved' WHEN r_outcome < 0.97 THEN 'in_progress'
             ELSE 'awaiting_supplement' END AS status,
        CASE WHEN r_speed < 0.03 THEN due_at  -- exactly at the due time
             ELSE received_at + (due_at - received_at) * (0.15 + r_speed) END AS resolution
    FROM timed
)
INSERT INTO dossiers (id, unit_id, procedure_code, channel, received_at, due_at, status, resolved_at, finished_at,
                      paid_online, digitised, rated_at, satisfied, awaiting_since)
SELECT 'B' || g, unit_id, '1.00' || (1000 + g %% 400), channel, received_at, due_at, status,
       CASE WHEN status = 'resolved' THEN resolution END,
       CASE WHEN status = 'resolved' THEN resolution
            WHEN status IN ('refused', 'withdrawn') THEN received_at + r_speed * interval '5 days' END,
       channel = 'online' AND r_pay < 0.6, r_digit < 0.7,
       CASE WHEN status = 'resolved' AND r_rate < 0.4 THEN resolution + interval '1 hour' END,
       CASE WHEN status = 'resolved' AND r_rate < 0.4 THEN r_verdict < 0.85 END,
       CASE WHEN status = 'awaiting_supplement' THEN received_at + interval '1 hour' END  -- as its events say
FROM outcome
"""

# The events each generated dossier comes from (what the one-stop system would have sent).
_EVENTS = """
INSERT INTO dossier_events (time, dossier_id, unit_id, event, message_id, payload)
SELECT e.time, d.id, d.unit_id, e.event, d.id || '-' || e.event, e.payload
FROM dossiers AS d CROSS JOIN LATERAL (
    SELECT d.received_at AS time, 'received' AS event,
           jsonb_build_object('event', 'received', 'channel', d.channel, 'due_at', d.due_at,
                              'procedure_code', d.procedure_code) AS payload
    UNION ALL SELECT d.received_at + interval '1 hour', 'supplement_requested', '{"event": "supplement_requested"}'
        WHERE d.status IN ('awaiting_supplement', 'in_progress')
    UNION ALL SELECT d.received_at + interval '1 day', 'supplemented', '{"event": "supplemented"}'
        WHERE d.status = 'in_progress'
    UNION ALL SELECT d.finished_at, d.status, jsonb_build_object('event', d.status)
        WHERE d.status IN ('resolved', 'refused', 'withdrawn')
    UNION ALL SELECT d.received_at + interval '2 minutes', 'paid_online', '{"event": "paid_online"}' WHERE d.paid_online
    UNION ALL SELECT d.received_at + interval '3 minutes', 'digitised', '{"event": "digitised"}' WHERE d.digitised
    UNION ALL SELECT d.rated_at, 'rated', jsonb_build_object('event', 'rated', 'satisfied', d.satisfied)
        WHERE d.rated_at IS NOT NULL
) AS e
WHERE d.id IN (SELECT 'B' || g FROM generate_series(%(lo)s::bigint, %(hi)s::bigint) AS g)
"""


def _percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))]


def _timed(fn: Any, runs: int) -> tuple[list[float], Any]:
    fn()  # warm-up (plans, caches)
    times: list[float] = []
    result = None
    for _ in range(runs):
        started = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - started) * 1000)
    return times, result


def _leaf_units(conn: psycopg.Connection) -> list[str]:
    rows = conn.execute(
        "SELECT id FROM units u WHERE parent_id IS NOT NULL AND valid_to IS NULL"
        " AND NOT EXISTS (SELECT 1 FROM units c WHERE c.parent_id = u.id) ORDER BY id"
    ).fetchall()
    return [r[0] for r in rows]


def generate(conn: psycopg.Connection, n: int, units: list[str], seed: float = 0.42) -> dict[str, float]:
    """Insert ``n`` dossiers (rollup triggers on) and their events; seconds spent on each."""
    from ioc.storage.timeseries import ensure_months

    ensure_months(conn, {date(2026, m, 1) for m in range(5, 13)})
    conn.execute("SELECT setseed(%s)", (seed,))
    params = {"units": units, "n_units": len(units), "first": FIRST_DAY, "days": (LAST_DAY - FIRST_DAY).days + 1}
    dossiers_s = events_s = 0.0
    for lo in range(1, n + 1, CHUNK):
        bounds = {"lo": lo, "hi": min(n, lo + CHUNK - 1)}
        started = time.perf_counter()
        conn.execute(_DOSSIERS, {**params, **bounds})
        conn.commit()
        dossiers_s += time.perf_counter() - started
        started = time.perf_counter()
        conn.execute(_EVENTS, bounds)
        conn.commit()
        events_s += time.perf_counter() - started
        log.info("generated %d of %d dossiers with their events (%.0f s)", bounds["hi"], n, dossiers_s + events_s)
    conn.execute("ANALYZE dossiers")
    conn.execute("ANALYZE dossier_kpi_daily")
    conn.commit()
    return {"dossiers_s": dossiers_s, "events_s": events_s}


def _same(rolled: dict[str, dict], raw: dict[str, dict]) -> bool:
    from ioc.kpi.figures import COUNTS, with_rates

    zeros = with_rates(dict.fromkeys(COUNTS, 0))
    return all(rolled.get(u, zeros) == raw.get(u, zeros) for u in set(rolled) | set(raw))


def run_bench(settings: Any, *, dossiers: int, tile_runs: int, raw_runs: int) -> dict[str, Any]:
    from ingest.bench import _fresh_database, _server, _Stack
    from ioc.district.bootstrap import load_district_into
    from ioc.kpi.dossiers import stale_among
    from ioc.kpi.figures import dossier_kpis, local_period
    from ioc.kpi.rollups import tile_figures

    with tempfile.TemporaryDirectory(prefix="ioc-bench-kpi-") as tmpdir, _Stack() as stack:
        admin_url, db_kind = _server(settings, stack, Path(tmpdir))
        db = _fresh_database(admin_url, stack)
        load_district_into(db, settings.model_copy(update={"database_url": db}), environ={})
        with psycopg.connect(db) as conn:
            conn.execute("SET TIME ZONE 'UTC'")
            units = _leaf_units(conn)
            spent = generate(conn, dossiers, units)
            events = conn.execute("SELECT count(*) FROM dossier_events").fetchone()[0]
            rollup_rows = conn.execute("SELECT count(*) FROM dossier_kpi_daily").fetchone()[0]
            sample = random.Random(7).sample(range(1, dossiers + 1), min(1000, dossiers))
            mismatches = len(stale_among(conn, [f"B{i}" for i in sample]))
            server = conn.execute("SHOW server_version").fetchone()[0]
            length = LAST_DAY - FIRST_DAY
            before_last = FIRST_DAY - timedelta(days=1)
            previous = (before_last - length, before_last)

            def tiles() -> tuple[dict, dict]:
                return tile_figures(conn, FIRST_DAY, LAST_DAY), tile_figures(conn, *previous)

            def raw() -> tuple[dict, dict]:
                return (dossier_kpis(conn, *local_period(FIRST_DAY, LAST_DAY)),
                        dossier_kpis(conn, *local_period(*previous)))  # fmt: skip

            tile_ms, tile_result = _timed(tiles, tile_runs)
            raw_ms, raw_result = _timed(raw, raw_runs)
            conn.rollback()
    equal = _same(tile_result[0], raw_result[0]) and _same(tile_result[1], raw_result[1])
    tiles_p50, tiles_p99 = statistics.median(tile_ms), _percentile(tile_ms, 99)
    raw_p50, raw_p99 = statistics.median(raw_ms), _percentile(raw_ms, 99)
    return {
        "bench": "kpi",
        "dossiers": dossiers,
        "events": events,
        "units": len(units),
        "period_from": FIRST_DAY.isoformat(),
        "period_to": LAST_DAY.isoformat(),
        "database": f"postgresql {server.split()[0]} ({db_kind})",
        "cpu_count": os.cpu_count(),
        "load_dossiers_s": round(spent["dossiers_s"], 1),
        "load_events_s": round(spent["events_s"], 1),
        "rollup_rows": rollup_rows,
        "sample_refold_mismatches": mismatches,
        "tiles_runs": tile_runs,
        "tiles_p50_ms": round(tiles_p50, 2),
        "tiles_p99_ms": round(tiles_p99, 2),
        "raw_runs": raw_runs,
        "raw_p50_ms": round(raw_p50, 2),
        "raw_p99_ms": round(raw_p99, 2),
        "ratio_to_raw_p50": round(tiles_p50 / raw_p50, 5) if raw_p50 else None,
        "ratio_to_raw_p99": round(tiles_p99 / raw_p99, 5) if raw_p99 else None,
        "times_faster_than_raw": round(raw_p50 / tiles_p50, 1) if tiles_p50 else None,
        "equal": equal,
    }
