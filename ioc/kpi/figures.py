"""Dossier KPIs per unit and period, exactly as docs/kpi.md defines them.

Periods are half-open ``[start, end)`` instants; callers build them from local dates in
Asia/Ho_Chi_Minh (:func:`local_period`), so a dossier received at 23:59 on the last day of a month
counts in that month. Rates are percentages rounded half up to one decimal; a rate with a zero
denominator is ``None`` ("no data"), never 0 or 100.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import psycopg

from ioc.clock import LOCAL_TZ

COUNTS = ("received", "received_direct", "received_online", "received_postal", "carried_over", "resolved",
          "resolved_early", "resolved_on_time", "resolved_late", "refused", "withdrawn", "open_at_end",
          "open_overdue_at_end", "paid_online", "digitised")  # fmt: skip

# One pass over the unit's dossiers; every figure is a FILTERed count (see docs/kpi.md).
_SQL = """
SELECT unit_id,
  count(*) FILTER (WHERE received_at >= %(start)s AND received_at < %(end)s),
  count(*) FILTER (WHERE received_at >= %(start)s AND received_at < %(end)s AND channel = 'direct'),
  count(*) FILTER (WHERE received_at >= %(start)s AND received_at < %(end)s AND channel = 'online'),
  count(*) FILTER (WHERE received_at >= %(start)s AND received_at < %(end)s AND channel = 'postal'),
  count(*) FILTER (WHERE received_at < %(start)s AND (finished_at IS NULL OR finished_at >= %(start)s)),
  count(*) FILTER (WHERE status = 'resolved' AND resolved_at >= %(start)s AND resolved_at < %(end)s),
  count(*) FILTER (WHERE status = 'resolved' AND resolved_at >= %(start)s AND resolved_at < %(end)s
                   AND (resolved_at AT TIME ZONE %(tz)s)::date < (due_at AT TIME ZONE %(tz)s)::date),
  count(*) FILTER (WHERE status = 'resolved' AND resolved_at >= %(start)s AND resolved_at < %(end)s
                   AND (resolved_at AT TIME ZONE %(tz)s)::date = (due_at AT TIME ZONE %(tz)s)::date
                   AND resolved_at <= due_at),
  count(*) FILTER (WHERE status = 'resolved' AND resolved_at >= %(start)s AND resolved_at < %(end)s
                   AND resolved_at > due_at),
  count(*) FILTER (WHERE status = 'refused' AND finished_at >= %(start)s AND finished_at < %(end)s),
  count(*) FILTER (WHERE status = 'withdrawn' AND finished_at >= %(start)s AND finished_at < %(end)s),
  count(*) FILTER (WHERE received_at < %(end)s AND (finished_at IS NULL OR finished_at >= %(end)s)),
  count(*) FILTER (WHERE received_at < %(end)s AND (finished_at IS NULL OR finished_at >= %(end)s)
                   AND due_at < %(end)s),
  count(*) FILTER (WHERE received_at >= %(start)s AND received_at < %(end)s AND paid_online),
  count(*) FILTER (WHERE received_at >= %(start)s AND received_at < %(end)s AND digitised)
FROM dossiers
WHERE %(all_units)s OR unit_id = ANY(%(units)s)
GROUP BY unit_id ORDER BY unit_id
"""


def local_period(first_day: date, last_day: date) -> tuple[datetime, datetime]:
    """``[first_day 00:00, last_day + 1 00:00)`` in Asia/Ho_Chi_Minh, as instants."""
    start = datetime.combine(first_day, time.min, tzinfo=LOCAL_TZ)
    end = datetime.combine(last_day + timedelta(days=1), time.min, tzinfo=LOCAL_TZ)
    return start, end


def rate(numerator: int, denominator: int) -> float | None:
    if denominator == 0:
        return None
    value = Decimal(numerator * 100) / Decimal(denominator)
    return float(value.quantize(Decimal("0.1"), rounding=ROUND_HALF_UP))


def dossier_kpis(
    conn: psycopg.Connection, start: datetime, end: datetime, unit_ids: list[str] | None = None
) -> dict[str, dict[str, Any]]:
    """unit_id -> counts and rates for ``[start, end)``."""
    rows = conn.execute(
        _SQL, {"start": start, "end": end, "tz": str(LOCAL_TZ), "all_units": unit_ids is None, "units": unit_ids or []}
    ).fetchall()
    out: dict[str, dict[str, Any]] = {}
    for row in rows:
        figures: dict[str, Any] = dict(zip(COUNTS, row[1:], strict=True))
        finished = figures["resolved"]
        figures["on_time_rate"] = rate(figures["resolved_early"] + figures["resolved_on_time"], finished)
        figures["online_rate"] = rate(figures["received_online"], figures["received"])
        figures["paid_online_rate"] = rate(figures["paid_online"], figures["received"])
        figures["digitised_rate"] = rate(figures["digitised"], figures["received"])
        out[row[0]] = figures
    return out


RANKED_BY = "on_time_rate"


def compare(current: dict[str, dict[str, Any]], previous: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Add each unit's rank (by on-time rate, best first; units with no data last) and the change of
    every rate against the previous period, in percentage points (``None`` when either is missing)."""
    ranked = sorted(current, key=lambda u: (current[u][RANKED_BY] is None, -(current[u][RANKED_BY] or 0.0), u))
    out: dict[str, dict[str, Any]] = {}
    for position, unit in enumerate(ranked, start=1):
        figures = dict(current[unit])
        before = previous.get(unit, {})
        figures["rank"] = position if figures[RANKED_BY] is not None else None
        figures["change_pp"] = {
            name: (round(figures[name] - before[name], 1) if figures.get(name) is not None
                   and before.get(name) is not None else None)
            for name in ("on_time_rate", "online_rate", "paid_online_rate", "digitised_rate")
        }  # fmt: skip
        out[unit] = figures
    return out


def freshness(conn: psycopg.Connection, now: datetime) -> dict[str, Any]:
    """When the newest dossier event arrived, per unit (from the hourly rollup, so it stays cheap over
    years of events), and whether the source is stale: no event for longer than the dossier system's
    expected interval. A stale tile shows "no recent data", not a good or bad figure."""
    newest = dict(conn.execute("SELECT unit_id, max(bucket) FROM dossier_events_hourly GROUP BY 1").fetchall())
    interval = conn.execute(
        "SELECT max(expected_interval_s) FROM devices WHERE kind = 'dossier' AND enabled"
    ).fetchone()[0]
    last = max(newest.values(), default=None)
    # Buckets are hours: an event at 10:59 is in the 10:00 bucket, so allow the bucket's hour too.
    stale = interval is not None and (last is None or now - last > timedelta(seconds=interval) + timedelta(hours=1))
    return {"source_newest_event_hour": last, "source_stale": stale, "units_newest_event_hour": newest}
