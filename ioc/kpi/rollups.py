"""Dossier KPI tiles from the daily rollup, and the check that it equals the raw recomputation.

``dossier_kpi_daily`` (migration 0012) holds, per unit and local day, counts that statement
triggers on ``dossiers`` keep exact: a changed row's old contribution is subtracted and its new
one added, so a dossier rewritten by a late event moves its counts. Every figure of
:data:`ioc.kpi.figures.FIGURES` for a range of whole local days is then

* a **flow**: the sum of one column over the days of the range (received, resolved, ...), or
* a **stock** at a date: a difference of cumulative sums over the days before it, e.g. open at the
  end = received before the end - (received and finished) before the end, the latter counted on the
  day of ``greatest(received_at, finished_at)``.

The table has (units x days) rows, a few thousand a year for a district, whatever the number of
dossiers: the wall's tiles read it in milliseconds where the raw count scans every dossier. The raw
events stay the source of truth: :func:`differences` recomputes from ``dossiers`` (and ``ioc kpi
check --refold`` from the events themselves) and lists any disagreement.

Why not TimescaleDB continuous aggregates: they aggregate rows of a hypertable as appended, while
a dossier's figures depend on the fold of all its events (a late ``received`` moves it to another
day or unit, a refusal after a resolution un-counts it). The folded ``dossiers`` table is a plain
table on both backends, so the same trigger-maintained rollup serves both; ``dossier_events_hourly``
(a trigger-kept table on both backends too) gives the freshness of the source.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import psycopg

from ioc.kpi.figures import COUNTS, dossier_kpis, local_period, with_rates

#: Figures that are a sum of one rollup column over the days of the period.
FLOWS: dict[str, str] = {
    name: name
    for name in ("received", "received_direct", "received_online", "received_postal", "resolved", "resolved_early",
                 "resolved_on_time", "resolved_late", "refused", "withdrawn", "paid_online", "digitised", "rated",
                 "rated_satisfied")
} | {"paid_online_known": "paid_known", "digitised_known": "digitised_known"}  # fmt: skip
#: Stock figures at an instant: (expression, days summed), cumulative over the days before the
#: period's first day (at its start) or up to its last day (at its end). docs/kpi.md proves them.
STOCKS: dict[str, tuple[str, str]] = {
    "carried_over": ("received - closed", "day < %(first)s"),
    "open_at_end": ("received - closed", "day <= %(last)s"),
    "awaiting_supplement_at_end": ("awaiting", "day <= %(last)s"),
    "in_progress_at_end": ("received - closed - awaiting", "day <= %(last)s"),
    "open_overdue_at_end": ("due_received - due_closed", "day <= %(last)s"),
}
if set(FLOWS) | set(STOCKS) != set(COUNTS):  # a figure added to FIGURES needs its rollup form too
    raise RuntimeError(f"figures without a rollup form: {sorted(set(COUNTS) - set(FLOWS) - set(STOCKS))}")

#: The rollup's counter columns (migration 0012).
COLUMNS = (*FLOWS.values(), "closed", "due_received", "due_closed", "awaiting")

_SELECTED = {
    **{name: f"sum({column}) FILTER (WHERE day BETWEEN %(first)s AND %(last)s)" for name, column in FLOWS.items()},
    **{name: f"sum({expr}) FILTER (WHERE {days})" for name, (expr, days) in STOCKS.items()},
}
_SQL = (
    "SELECT unit_id, "
    + ", ".join(f"coalesce({_SELECTED[name]}, 0)::bigint" for name in COUNTS)
    + " FROM dossier_kpi_daily WHERE (%(all_units)s OR unit_id = ANY(%(units)s)) GROUP BY unit_id ORDER BY unit_id"
)


def tile_figures(
    conn: psycopg.Connection, first_day: date, last_day: date, unit_ids: list[str] | None = None
) -> dict[str, dict[str, Any]]:
    """unit_id -> counts and rates for the local dates ``first_day..last_day``, from the rollup.

    The same figures as :func:`ioc.kpi.figures.dossier_kpis` over ``local_period(first_day,
    last_day)``. A unit whose counts are all zero is left out: whether it has rollup rows at all
    depends on history (a dossier moved to another unit leaves zeroed rows behind), and the answer
    must not (a unit with dossiers but no counts may likewise be missing; it has only zeros).
    """
    params = {"first": first_day, "last": last_day, "all_units": unit_ids is None, "units": unit_ids or []}
    rows = conn.execute(_SQL, params).fetchall()
    return {row[0]: with_rates(dict(zip(COUNTS, row[1:], strict=True))) for row in rows if any(row[1:])}


def rebuild(conn: psycopg.Connection) -> int:
    """Recompute the whole rollup from ``dossiers`` (after a bulk load with triggers disabled, or to
    repair what ``check`` found); returns the number of rollup rows."""
    conn.execute("DELETE FROM dossier_kpi_daily")
    conn.execute(
        f"""INSERT INTO dossier_kpi_daily (unit_id, day, {", ".join(COLUMNS)})
            SELECT d.unit_id, p.day, {", ".join(f"sum(p.{c})" for c in COLUMNS)}
            FROM dossiers AS d CROSS JOIN LATERAL dossier_kpi_parts(d) AS p GROUP BY 1, 2"""
    )
    return int(conn.execute("SELECT count(*) FROM dossier_kpi_daily").fetchone()[0])


def differences(
    conn: psycopg.Connection, first_day: date, last_day: date, unit_ids: list[str] | None = None
) -> list[tuple[str, str, Any, Any]]:
    """(unit, figure, rollup value, raw value) for every figure where the rollup and the raw
    recomputation from ``dossiers`` disagree over ``first_day..last_day``; empty when they agree."""
    rolled = tile_figures(conn, first_day, last_day, unit_ids)
    raw = dossier_kpis(conn, *local_period(first_day, last_day), unit_ids)
    zeros = with_rates(dict.fromkeys(COUNTS, 0))
    out: list[tuple[str, str, Any, Any]] = []
    for unit in sorted(set(rolled) | set(raw)):
        mine, theirs = rolled.get(unit, zeros), raw.get(unit, zeros)
        out.extend((unit, name, mine[name], theirs[name]) for name in mine if mine[name] != theirs[name])
    return out
