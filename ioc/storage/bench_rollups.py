"""``python -m ioc.storage.bench_rollups [ADMIN_URL]``: unit roll-ups in hourly counts, measured.

Fills a fresh database's ``telemetry_hourly`` with 30 days x 200 devices (144,000 rollup rows, 20
units of which 10 were merged into the others) and times, interleaved, the per-row baseline
(``unit_rollup(unit_id)`` called for every rollup row, as ``hourly_counts`` did) and the set-based
query ``hourly_counts`` runs now; the two answers must be equal. Prints one flat JSON line.
``ADMIN_URL`` (default ``IOC_DATABASE_URL``) must be allowed to create databases; the database made is
dropped at the end.
"""

from __future__ import annotations

import json
import secrets
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta

import psycopg
from psycopg import sql

from ioc.storage.db import with_database
from ioc.storage.migrate import migrate
from ioc.storage.repositories.series import hourly_counts
from ioc.storage.timeseries import active_backend

_PER_ROW = (
    "SELECT unit_rollup(unit_id) AS unit_id, sum(n)::bigint FROM telemetry_hourly"
    " WHERE bucket >= %s AND bucket < %s GROUP BY 1 ORDER BY 1"
)


def run(admin_url: str, rounds: int = 5, devices: int = 200) -> dict[str, object]:
    """``devices`` x 720 hours of rollup rows (the figures in docs/performance.md use 200; tests fewer)."""
    name = f"ioc_bench_rollups_{secrets.token_hex(3)}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = with_database(admin_url, name)
    try:
        migrate(url)
        end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
        start = end - timedelta(days=30)
        with psycopg.connect(url) as conn:
            for u in range(20):
                successor = None if u < 10 else f"u{u - 10}"
                conn.execute(
                    "INSERT INTO units (id, name, name_search, level, successor_id) VALUES (%s, %s, %s, 'commune', %s)",
                    (f"u{u}", f"u{u}", f"u{u}", successor),
                )
            conn.execute(
                "INSERT INTO telemetry_hourly (bucket, unit_id, kind, device_id, n)"
                " SELECT %s + h * INTERVAL '1 hour', 'u' || (d %% 20), 'sensor', 'd' || d, 12"
                " FROM generate_series(0, 719) h, generate_series(0, %s - 1) d",
                (start, devices),
            )
            conn.commit()
            per_row: list[float] = []
            set_based: list[float] = []
            for _ in range(rounds):
                began = time.perf_counter()
                old = conn.execute(_PER_ROW, (start, end)).fetchall()
                per_row.append(time.perf_counter() - began)
                began = time.perf_counter()
                new = hourly_counts(conn, "telemetry", start, end, unit_ids=None)
                set_based.append(time.perf_counter() - began)
            if [tuple(r) for r in old] != [(r.key["unit_id"], r.n) for r in new]:
                raise AssertionError("the set-based roll-up differs from unit_rollup()")
            rows = conn.execute("SELECT count(*) FROM telemetry_hourly").fetchone()[0]
            version = conn.execute("SHOW server_version").fetchone()[0]
            backend = active_backend(conn)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    old_ms, new_ms = statistics.median(per_row) * 1000, statistics.median(set_based) * 1000
    return {
        "bench": "rollup_units",
        "database": f"postgresql {version} ({backend})",
        "rollup_rows": rows,
        "rounds": rounds,
        "per_row_function_median_ms": round(old_ms, 1),
        "set_based_median_ms": round(new_ms, 1),
        "ratio_to_per_row_function": round(new_ms / old_ms, 4),
    }


def main() -> None:  # pragma: no cover - a command
    from ioc.settings import get_settings

    url = sys.argv[1] if len(sys.argv) > 1 else get_settings().database_url
    if not url:
        raise SystemExit("give an admin URL or set IOC_DATABASE_URL")
    print(json.dumps(run(url)))


if __name__ == "__main__":  # pragma: no cover
    main()
