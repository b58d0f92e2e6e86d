"""Sector figures per unit and local day, with freshness and drill-down (definitions: docs/kpi.md).

Every figure carries ``newest_event_at``: the ``ts`` of the newest source message behind it. Each
source (a school, a clinic, a mention monitor) is **stale** when its newest event is older than its
expected interval (``devices.expected_interval_s``: the configured interval times the offline grace
factor) at the reference time, which is now, or the end of the period when the period is over (a
source that reported up to the end of last month is not stale for last month). A unit's tile whose
sources include a stale one has ``status: "no_recent_data"`` and its headline value is ``null``, so
the wall never shows an old or partial figure as good or bad; the per-day and per-source rows are
still listed for drill-down.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, timedelta
from typing import Any

import psycopg

from ioc.kpi.figures import local_period, rate


def _reference(now: datetime, last_day: date) -> datetime:
    return min(now, local_period(last_day, last_day)[1])


def sources(
    conn: psycopg.Connection, kind: str, newest_sql: str, now: datetime, last_day: date, units: list[str] | None
) -> dict[str, list[dict[str, Any]]]:
    """unit_id -> the enabled sources of ``kind`` there, with their newest event and stale flag.
    ``newest_sql`` selects (source id, newest event time)."""
    newest = dict(conn.execute(newest_sql).fetchall())
    reference = _reference(now, last_day)
    rows = conn.execute(
        "SELECT id, name, unit_id, expected_interval_s FROM devices WHERE kind = %s AND enabled"
        " AND (%s OR unit_id = ANY(%s)) ORDER BY unit_id, id",
        (kind, units is None, units or []),
    ).fetchall()
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for source_id, name, unit_id, interval in rows:
        last = newest.get(source_id)
        stale = last is None or reference - last > timedelta(seconds=interval)
        out[unit_id].append(
            {"id": source_id, "name": name, "newest_event_at": last, "expected_interval_s": interval, "stale": stale}
        )
    return out


def _tile(unit_sources: list[dict[str, Any]], newest: datetime | None) -> dict[str, Any]:
    stale = [s["id"] for s in unit_sources if s["stale"]]
    return {
        "status": "no_recent_data" if stale or not unit_sources else "ok",
        "stale_sources": stale,
        "newest_event_at": newest,
    }


def _params(first_day: date, last_day: date, units: list[str] | None) -> dict[str, Any]:
    return {"first": first_day, "last": last_day, "all_units": units is None, "units": units or []}


_IN_UNITS = "(%(all_units)s OR unit_id = ANY(%(units)s))"


# -- education ----------------------------------------------------------------------------------------
def education(
    conn: psycopg.Connection, first_day: date, last_day: date, units: list[str] | None, now: datetime,
    min_pct: float,
) -> dict[str, dict[str, Any]]:  # fmt: skip
    """unit_id -> attendance over the period, per day and per school."""
    by_unit = sources(conn, "school", "SELECT school_id, max(reported_at) FROM school_attendance GROUP BY 1", now,
                      last_day, units)  # fmt: skip
    rows = conn.execute(
        "SELECT unit_id, school_id, day, pupils_present, pupils_enrolled, reported_at FROM school_attendance"
        f" WHERE {_IN_UNITS} AND day BETWEEN %(first)s AND %(last)s ORDER BY unit_id, day, school_id",
        _params(first_day, last_day, units),
    ).fetchall()
    data: dict[str, list[tuple]] = defaultdict(list)
    for row in rows:
        data[row[0]].append(row[1:])
    out: dict[str, dict[str, Any]] = {}
    for unit_id in sorted(set(by_unit) | set(data)):
        records = data.get(unit_id, [])
        present = sum(r[2] for r in records)
        enrolled = sum(r[3] for r in records)
        newest = max((r[4] for r in records), default=None)
        tile = _tile(by_unit.get(unit_id, []), newest)
        days: dict[date, list[tuple]] = defaultdict(list)
        per_school: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for school_id, day, p, e, reported in records:
            days[day].append((p, e, reported))
            per_school[school_id].append({"day": day, "pupils_present": p, "pupils_enrolled": e,
                                          "attendance_pct": rate(p, e), "below_threshold": _below(p, e, min_pct),
                                          "reported_at": reported})  # fmt: skip
        out[unit_id] = {
            **tile,
            "attendance_pct": rate(present, enrolled) if tile["status"] == "ok" else None,
            "pupils_present": present,
            "pupils_enrolled": enrolled,
            "school_days": len(records),
            "school_days_below_threshold": sum(1 for r in records if _below(r[2], r[3], min_pct)),
            "days": [
                {
                    "day": day,
                    "pupils_present": sum(x[0] for x in items),
                    "pupils_enrolled": sum(x[1] for x in items),
                    "attendance_pct": rate(sum(x[0] for x in items), sum(x[1] for x in items)),
                    "newest_event_at": max(x[2] for x in items),
                }
                for day, items in sorted(days.items())
            ],  # fmt: skip
            "sources": [{**s, "days": per_school.get(s["id"], [])} for s in by_unit.get(unit_id, [])],
        }
    return out


def _below(present: int, enrolled: int, min_pct: float) -> bool:
    share = rate(present, enrolled)
    return share is not None and share < min_pct


# -- health -------------------------------------------------------------------------------------------
def health(
    conn: psycopg.Connection, first_day: date, last_day: date, units: list[str] | None, now: datetime,
    disease_names: dict[str, dict[str, str]],
) -> dict[str, dict[str, Any]]:  # fmt: skip
    """unit_id -> visits, vaccinations, cases by disease and the clusters of the period."""
    by_unit = sources(conn, "clinic", "SELECT clinic_id, max(reported_at) FROM clinic_daily GROUP BY 1", now,
                      last_day, units)  # fmt: skip
    params = _params(first_day, last_day, units)
    daily = conn.execute(
        "SELECT unit_id, clinic_id, day, visits, vaccinations, reported_at FROM clinic_daily"
        f" WHERE {_IN_UNITS} AND day BETWEEN %(first)s AND %(last)s ORDER BY unit_id, day, clinic_id",
        params,
    ).fetchall()
    cases = conn.execute(
        "SELECT unit_id, clinic_id, day, disease, cases FROM disease_cases"
        f" WHERE {_IN_UNITS} AND day BETWEEN %(first)s AND %(last)s ORDER BY unit_id, day, disease",
        params,
    ).fetchall()
    start, end = local_period(first_day, last_day)
    clusters = conn.execute(
        "SELECT e.unit_id, split_part(e.scope, ':', 2), e.started_at, e.last_at, e.evidence, e.alert_id, a.status"
        " FROM sector_episodes e LEFT JOIN alerts a ON a.id = e.alert_id WHERE e.rule = 'disease_cluster'"
        f" AND {_IN_UNITS.replace('unit_id', 'e.unit_id')} AND e.started_at < %(end)s AND e.last_at >= %(start)s"
        " ORDER BY e.started_at",
        {**params, "start": start, "end": end},
    ).fetchall()
    by_day: dict[str, list[tuple]] = defaultdict(list)
    for row in daily:
        by_day[row[0]].append(row[1:])
    by_case: dict[str, list[tuple]] = defaultdict(list)
    for row in cases:
        by_case[row[0]].append(row[1:])
    by_cluster: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for unit_id, disease, started, last, n, alert_id, status in clusters:
        by_cluster[unit_id].append({"disease": disease, **disease_names.get(disease, {"name": disease}),
                                    "first_case_at": started, "last_case_at": last, "cases": n,
                                    "alert_id": alert_id, "alert_status": status})  # fmt: skip
    out: dict[str, dict[str, Any]] = {}
    for unit_id in sorted(set(by_unit) | set(by_day)):
        records = by_day.get(unit_id, [])
        newest = max((r[4] for r in records), default=None)
        tile = _tile(by_unit.get(unit_id, []), newest)
        ok = tile["status"] == "ok"
        totals: dict[str, int] = defaultdict(int)
        day_cases: dict[date, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for _clinic, day, disease, n in by_case.get(unit_id, []):
            totals[disease] += n
            day_cases[day][disease] += n
        clinic_cases: dict[tuple[str, date], dict[str, int]] = defaultdict(dict)
        for clinic_id, day, disease, n in by_case.get(unit_id, []):
            clinic_cases[(clinic_id, day)][disease] = n
        days: dict[date, list[tuple]] = defaultdict(list)
        per_clinic: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for clinic_id, day, visits, vaccinations, reported in records:
            days[day].append((visits, vaccinations, reported))
            per_clinic[clinic_id].append(
                {
                    "day": day,
                    "visits": visits,
                    "vaccinations": vaccinations,
                    "cases": clinic_cases.get((clinic_id, day), {}),
                    "reported_at": reported,
                }
            )
        out[unit_id] = {
            **tile,
            "visits": sum(r[2] for r in records) if ok else None,
            "vaccinations": sum(r[3] for r in records) if ok else None,
            "cases": dict(sorted(totals.items())),
            "diseases": {code: disease_names.get(code, {"name": code}) for code in sorted(totals)},
            "clusters": by_cluster.get(unit_id, []),
            "days": [
                {
                    "day": day,
                    "visits": sum(x[0] for x in items),
                    "vaccinations": sum(x[1] for x in items),
                    "cases": dict(sorted(day_cases.get(day, {}).items())),
                    "newest_event_at": max(x[2] for x in items),
                }
                for day, items in sorted(days.items())
            ],  # fmt: skip
            "sources": [{**s, "days": per_clinic.get(s["id"], [])} for s in by_unit.get(unit_id, [])],
        }
    return out


# -- online information ---------------------------------------------------------------------------------
SENTIMENTS = ("negative", "neutral", "positive")


def mentions(
    conn: psycopg.Connection, first_day: date, last_day: date, units: list[str] | None, now: datetime
) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
    """(unit_id -> mention counts by sentiment, day and tag; the monitoring sources with freshness)."""
    monitors = sources(conn, "mention", "SELECT device_id, max(published_at) FROM mentions GROUP BY 1", now,
                       last_day, None)  # fmt: skip
    feed = [s for items in monitors.values() for s in items]
    start, end = local_period(first_day, last_day)
    rows = conn.execute(
        "SELECT unit_id, (published_at AT TIME ZONE 'Asia/Ho_Chi_Minh')::date, sentiment, tags, published_at"
        f" FROM mentions WHERE {_IN_UNITS} AND published_at >= %(start)s AND published_at < %(end)s",
        {**_params(first_day, last_day, units), "start": start, "end": end},
    ).fetchall()
    stale = any(s["stale"] for s in feed) or not feed
    out: dict[str, dict[str, Any]] = {}
    grouped: dict[str, list[tuple]] = defaultdict(list)
    for row in rows:
        grouped[row[0]].append(row[1:])
    for unit_id, items in sorted(grouped.items()):
        counts = {s: sum(1 for r in items if r[1] == s) for s in SENTIMENTS}
        tags: dict[str, int] = defaultdict(int)
        per_day: dict[date, dict[str, int]] = defaultdict(lambda: dict.fromkeys(SENTIMENTS, 0))
        for day, sentiment, item_tags, _ in items:
            per_day[day][sentiment] += 1
            for t in item_tags:
                tags[t] += 1
        out[unit_id] = {
            "status": "no_recent_data" if stale else "ok",
            "newest_event_at": max(r[3] for r in items),
            "total": len(items),
            **counts,
            "negative_pct": rate(counts["negative"], len(items)) if not stale else None,
            "tags": dict(sorted(tags.items(), key=lambda kv: (-kv[1], kv[0]))),
            "days": [{"day": d, **c} for d, c in sorted(per_day.items())],
        }
    return out, feed


def mention_list(
    conn: psycopg.Connection, first_day: date, last_day: date, units: list[str] | None, *,
    sentiment: str | None = None, tag: str | None = None, limit: int = 200,
) -> list[dict[str, Any]]:  # fmt: skip
    """The mentions behind the counts (drill-down), newest first."""
    start, end = local_period(first_day, last_day)
    cur = conn.execute(
        "SELECT id, url, source, unit_id, published_at, title, body AS text, sentiment, score, tags FROM mentions"
        f" WHERE {_IN_UNITS} AND published_at >= %(start)s AND published_at < %(end)s"
        " AND (%(sentiment)s::text IS NULL OR sentiment = %(sentiment)s)"
        " AND (%(tag)s::text IS NULL OR %(tag)s = ANY(tags)) ORDER BY published_at DESC, id DESC LIMIT %(limit)s",
        {**_params(first_day, last_day, units), "start": start, "end": end, "sentiment": sentiment, "tag": tag,
         "limit": limit},
    )  # fmt: skip
    names = [d.name for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
