"""A sensor's readings over time: what the wall draws beside a sensor alert or incident.

The hourly rollups count rows; they hold no values, so the chart reads the raw telemetry of one
device over a day (a water-level station at one reading every 5 minutes is 288 rows, found through
the ``(device_id, time)`` index), bucketed in SQL. Identical on native partitions and TimescaleDB.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg


@dataclass(frozen=True)
class Bucket:
    start: datetime
    avg: float
    min: float
    max: float
    n: int


@dataclass(frozen=True)
class Series:
    device_id: str
    metric: str
    latest_at: datetime | None
    latest: float | None
    buckets: list[Bucket]


def metric_series(conn: psycopg.Connection, device_id: str, metric: str, start: datetime, end: datetime,
                  *, bucket_minutes: int = 60) -> Series:  # fmt: skip
    """Readings of ``metric`` (a key of the telemetry ``metrics``) from ``start`` to ``end``."""
    value = "(payload->'metrics'->>%(metric)s)::double precision"
    numeric = "jsonb_typeof(payload->'metrics'->%(metric)s) = 'number'"
    params: dict[str, Any] = {"device": device_id, "metric": metric, "start": start, "end": end,
                              "width": f"{bucket_minutes} minutes"}  # fmt: skip
    rows = conn.execute(
        f"""SELECT date_bin(%(width)s::interval, time, %(start)s) AS b, avg({value}), min({value}), max({value}),
                   count(*)
            FROM telemetry
            WHERE device_id = %(device)s AND time >= %(start)s AND time < %(end)s AND {numeric}
            GROUP BY b ORDER BY b""",
        params,
    ).fetchall()
    latest = conn.execute(
        f"""SELECT time, {value} FROM telemetry
            WHERE device_id = %(device)s AND time < %(end)s AND {numeric}
            ORDER BY time DESC LIMIT 1""",
        params,
    ).fetchone()
    return Series(device_id, metric, latest[0] if latest else None, latest[1] if latest else None,
                  [Bucket(r[0], r[1], r[2], r[3], r[4]) for r in rows])  # fmt: skip
