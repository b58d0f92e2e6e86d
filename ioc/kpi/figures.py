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

_RECEIVED = "received_at >= %(start)s AND received_at < %(end)s"
_RESOLVED = "status = 'resolved' AND resolved_at >= %(start)s AND resolved_at < %(end)s"
_OPEN_AT_END = "received_at < %(end)s AND (finished_at IS NULL OR finished_at >= %(end)s)"
_AWAITING_AT_END = ("status = 'awaiting_supplement' AND finished_at IS NULL AND awaiting_since IS NOT NULL"
                    " AND received_at < %(end)s AND awaiting_since < %(end)s")  # fmt: skip
_LOCAL_DAY = "({col} AT TIME ZONE %(tz)s)::date"

#: Every counted figure as the condition a dossier meets to be counted (docs/kpi.md): the same
#: condition gives the count and the list behind it (drill-down).
FIGURES: dict[str, str] = {
    "received": _RECEIVED,
    "received_direct": f"{_RECEIVED} AND channel = 'direct'",
    "received_online": f"{_RECEIVED} AND channel = 'online'",
    "received_postal": f"{_RECEIVED} AND channel = 'postal'",
    "carried_over": "received_at < %(start)s AND (finished_at IS NULL OR finished_at >= %(start)s)",
    "resolved": _RESOLVED,
    "resolved_early": f"{_RESOLVED} AND {_LOCAL_DAY.format(col='resolved_at')} < {_LOCAL_DAY.format(col='due_at')}",
    "resolved_on_time": f"{_RESOLVED} AND {_LOCAL_DAY.format(col='resolved_at')} = {_LOCAL_DAY.format(col='due_at')}"
    " AND resolved_at <= due_at",
    "resolved_late": f"{_RESOLVED} AND resolved_at > due_at",
    "refused": "status = 'refused' AND finished_at >= %(start)s AND finished_at < %(end)s",
    "withdrawn": "status = 'withdrawn' AND finished_at >= %(start)s AND finished_at < %(end)s",
    "open_at_end": _OPEN_AT_END,
    "awaiting_supplement_at_end": _AWAITING_AT_END,
    "in_progress_at_end": f"{_OPEN_AT_END} AND NOT ({_AWAITING_AT_END})",
    "open_overdue_at_end": f"{_OPEN_AT_END} AND due_at < %(end)s",
    "paid_online": f"{_RECEIVED} AND paid_online",
    "paid_online_known": f"{_RECEIVED} AND paid_online IS NOT NULL",
    "digitised": f"{_RESOLVED} AND digitised",
    "digitised_known": f"{_RESOLVED} AND digitised IS NOT NULL",
    "rated": "rated_at >= %(start)s AND rated_at < %(end)s AND satisfied IS NOT NULL",
    "rated_satisfied": "rated_at >= %(start)s AND rated_at < %(end)s AND satisfied",
}
COUNTS = tuple(FIGURES)
_UNITS = "(%(all_units)s OR unit_id = ANY(%(units)s))"
# One pass over the units' dossiers; every figure is a FILTERed count.
_SQL = (
    "SELECT unit_id, "
    + ", ".join(f"count(*) FILTER (WHERE {condition})" for condition in FIGURES.values())
    + f" FROM dossiers WHERE {_UNITS} GROUP BY unit_id ORDER BY unit_id"
)


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


def _params(start: datetime, end: datetime, unit_ids: list[str] | None) -> dict[str, Any]:
    return {"start": start, "end": end, "tz": str(LOCAL_TZ), "all_units": unit_ids is None, "units": unit_ids or []}


def dossiers_behind(
    conn: psycopg.Connection,
    figure: str,
    start: datetime,
    end: datetime,
    unit_ids: list[str] | None = None,
    limit: int = 1000,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """The dossiers a figure counts (drill-down), oldest received first; one page of them."""
    return drill_down(conn, figure, start, end, unit_ids, limit, offset)["items"]


def drill_down(
    conn: psycopg.Connection,
    figure: str,
    start: datetime,
    end: datetime,
    unit_ids: list[str] | None = None,
    limit: int = 100,
    offset: int = 0,
) -> dict[str, Any]:
    """A page of the dossiers behind a figure and their ``total``, which equals the figure: a list
    never stops silently at its page size. Times are local (+07:00)."""
    if figure not in FIGURES:
        raise ValueError(f"unknown figure {figure!r}; one of: {', '.join(FIGURES)}")
    params = {**_params(start, end, unit_ids), "limit": limit, "offset": offset}
    total = conn.execute(f"SELECT count(*) FROM dossiers WHERE {_UNITS} AND {FIGURES[figure]}", params).fetchone()[0]
    cur = conn.execute(
        "SELECT id, unit_id, procedure_code, channel, received_at, due_at, status, resolved_at, finished_at,"
        " awaiting_since, paid_online, digitised, date_assumed, rated_at, satisfied"
        f" FROM dossiers WHERE {_UNITS} AND {FIGURES[figure]}"
        " ORDER BY received_at, id LIMIT %(limit)s OFFSET %(offset)s",
        params,
    )
    names = [d.name for d in cur.description]
    items = [{k: local(v) for k, v in zip(names, row, strict=True)} for row in cur.fetchall()]
    return {"figure": figure, "total": int(total), "limit": limit, "offset": offset, "items": items}


def local(value: Any) -> Any:
    """A datetime in Asia/Ho_Chi_Minh (+07:00), anything else as it is: the API speaks local time."""
    return value.astimezone(LOCAL_TZ) if isinstance(value, datetime) else value


def due_soon(conn: psycopg.Connection, now: datetime, days: int, unit_ids: list[str] | None = None) -> list[dict]:
    """Open dossiers whose due time falls within the next ``days`` days (the leaders' weekly list)."""
    cur = conn.execute(
        "SELECT id, unit_id, procedure_code, received_at, due_at, status FROM dossiers"
        f" WHERE {_UNITS} AND finished_at IS NULL AND due_at >= %(now)s AND due_at < %(until)s"
        " ORDER BY due_at, id",
        {**_params(now, now, unit_ids), "now": now, "until": now + timedelta(days=days)},
    )
    names = [d.name for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def dossier_kpis(
    conn: psycopg.Connection, start: datetime, end: datetime, unit_ids: list[str] | None = None
) -> dict[str, dict[str, Any]]:
    """unit_id -> counts and rates for ``[start, end)``."""
    rows = conn.execute(_SQL, _params(start, end, unit_ids)).fetchall()
    return {row[0]: with_rates(dict(zip(COUNTS, row[1:], strict=True))) for row in rows}


RATES = ("on_time_rate", "online_rate", "paid_online_rate", "digitised_rate", "satisfaction_rate")


def with_rates(figures: dict[str, Any]) -> dict[str, Any]:
    """Add the rates of docs/kpi.md to a unit's counts (the same for raw counts and rollup counts)."""
    received = figures["received"]
    figures["on_time_rate"] = rate(figures["resolved_early"] + figures["resolved_on_time"], figures["resolved"])
    figures["online_rate"] = rate(figures["received_online"], received)
    # Over the dossiers whose payment / digitisation is known: a sheet without the column is "no data".
    figures["paid_online_rate"] = rate(figures["paid_online"], figures["paid_online_known"])
    figures["digitised_rate"] = rate(figures["digitised"], figures["digitised_known"])
    figures["satisfaction_rate"] = rate(figures["rated_satisfied"], figures["rated"])
    return figures


RANKED_BY = "on_time_rate"


def compare(
    current: dict[str, dict[str, Any]], previous: dict[str, dict[str, Any]], groups: dict[str, str] | None = None
) -> dict[str, dict[str, Any]]:
    """Add each unit's rank and the change of every rate against the previous period, in percentage
    points (``None`` when either is missing).

    Ranks are by on-time rate, best first, within the unit's ranking group (``groups``: unit ->
    ``office`` or ``commune``, :func:`ranking_group`; one group when not given), so the district's
    own office is not ranked among the communes. Equal rates share a rank and the next rank skips
    ("1, 1, 3", standard competition ranking); a unit with no data has no rank."""
    out: dict[str, dict[str, Any]] = {}
    for unit, unit_figures in current.items():
        figures = dict(unit_figures)
        before = previous.get(unit, {})
        value = figures[RANKED_BY]
        group = (groups or {}).get(unit, "all")
        peers = [current[u][RANKED_BY] for u in current if (groups or {}).get(u, "all") == group]
        figures["rank"] = None if value is None else 1 + sum(1 for v in peers if v is not None and v > value)
        figures["rank_group"] = group
        figures["change_pp"] = {
            name: (round(figures[name] - before[name], 1) if figures.get(name) is not None
                   and before.get(name) is not None else None)
            for name in RATES
        }  # fmt: skip
        out[unit] = figures
    return out


#: Levels ranked as communes; any other level (the district's or a department's one-stop office) is
#: ranked as an office.
COMMUNE_LEVELS = {"commune", "town", "ward"}


def ranking_group(level: str | None) -> str:
    return "commune" if (level or "") in COMMUNE_LEVELS else "office"


def unit_levels(conn: psycopg.Connection) -> dict[str, tuple[str, str]]:
    """unit id -> (name, level) of every unit."""
    return {r[0]: (r[1], r[2]) for r in conn.execute("SELECT id, name, level FROM units").fetchall()}


LEVEL_TOTALS = {"office": "Văn phòng / Bộ phận một cửa cấp huyện", "communes": "Cấp xã (cộng)",
                "district": "Toàn huyện"}  # fmt: skip


def level_totals(figures: dict[str, dict[str, Any]], levels: dict[str, tuple[str, str]]) -> dict[str, dict[str, Any]]:
    """Counts summed per level, with their rates: ``office`` (the district's own one-stop office and
    any non-commune unit), ``communes`` (all communes, towns and wards together) and ``district``
    (everything). A rate of a total is computed from the summed counts, never averaged."""
    out: dict[str, dict[str, Any]] = {}
    for key in LEVEL_TOTALS:
        chosen = [
            f
            for u, f in figures.items()
            if key == "district" or (ranking_group(levels.get(u, ("", ""))[1]) == "commune") == (key == "communes")
        ]
        out[key] = with_rates({name: sum(f[name] for f in chosen) for name in COUNTS})
        out[key]["units"] = len(chosen)
    return out


def procedure_details(
    conn: psycopg.Connection, start: datetime, end: datetime, unit_ids: list[str] | None = None
) -> dict[str, dict[str, str | None]]:
    """procedure code -> its name and online level ("Mức độ": toàn trình, một phần...) as the source
    gave them on the ``received`` events of ``[start, end)``; empty when the source has none."""
    rows = conn.execute(
        "SELECT payload->>'procedure_code', max(payload->>'procedure_name'), max(payload->>'online_level')"
        f" FROM dossier_events WHERE event = 'received' AND time >= %(start)s AND time < %(end)s AND {_UNITS}"
        " AND (payload ? 'procedure_name' OR payload ? 'online_level') GROUP BY 1",
        _params(start, end, unit_ids),
    ).fetchall()
    return {code or "": {"name": name, "online_level": level} for code, name, level in rows}


def online_level_kind(level: str | None) -> str | None:
    """``full`` (toàn trình, level 4), ``partial`` (một phần, level 3), ``none`` or None (not given)."""
    from ioc.text import fold

    text = fold(level or "")
    if not text:
        return None
    if "toan trinh" in text or text in ("4", "muc do 4"):
        return "full"
    if "mot phan" in text or text in ("3", "muc do 3"):
        return "partial"
    return "none"


def procedure_figures(
    conn: psycopg.Connection, start: datetime, end: datetime, unit_ids: list[str] | None = None
) -> dict[str, dict[str, Any]]:
    """procedure code -> counts and rates for ``[start, end)`` (from the dossiers; ``""``: no code).

    Raw rather than rolled up: procedures are many and reports ask for them once a period."""
    sql = (
        "SELECT coalesce(procedure_code, ''), "
        + ", ".join(f"count(*) FILTER (WHERE {condition})" for condition in FIGURES.values())
        + f" FROM dossiers WHERE {_UNITS} GROUP BY 1 ORDER BY 1"
    )
    rows = conn.execute(sql, _params(start, end, unit_ids)).fetchall()
    return {row[0]: with_rates(dict(zip(COUNTS, row[1:], strict=True))) for row in rows if any(row[1:])}


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
