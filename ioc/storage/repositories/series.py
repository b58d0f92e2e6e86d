"""Counts over time from the hourly rollups, identical on TimescaleDB and native PostgreSQL.

Both backends expose ``<table>_hourly(bucket, <dimensions>, n)``: a rollup table kept by triggers
natively, a real-time continuous aggregate on TimescaleDB. Callers never read the raw tables for
counts, so a day of telemetry is summed from 24 rows per device instead of scanned.

Units roll up to their successor (a merged commune's records count for the commune it joined)
when ``roll_up_units`` is set: the SQL function ``unit_rollup`` follows the successor chain.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql

from ioc.storage.timeseries import TABLES_BY_NAME


@dataclass(frozen=True)
class CountRow:
    """One group's count: ``key`` maps each requested dimension (and ``bucket``) to its value."""

    key: dict[str, Any]
    n: int


def hourly_counts(
    conn: psycopg.Connection,
    table: str,
    start: datetime,
    end: datetime,
    *,
    group_by: Sequence[str] = ("unit_id",),
    per_hour: bool = False,
    unit_ids: Sequence[str] | None = None,
    roll_up_units: bool = True,
    where: dict[str, str] | None = None,
) -> list[CountRow]:
    """Counts of ``table`` rows with ``start <= time < end`` (whole hours), grouped by ``group_by``.

    ``unit_ids`` limits to those units (after roll-up); ``where`` filters dimensions by equality.
    """
    spec = TABLES_BY_NAME.get(table)
    if spec is None:
        raise ValueError(f"unknown time-series table {table!r}")
    dims = spec.rollup.dimensions
    for name in (*group_by, *(where or {})):
        if name not in dims:
            raise ValueError(f"{table} rollup has no dimension {name!r} (it has {', '.join(dims)})")
    unit_expr = sql.SQL("unit_rollup(unit_id)") if roll_up_units else sql.Identifier("unit_id")

    def column(name: str) -> sql.Composable:
        return unit_expr if name == "unit_id" else sql.Identifier(name)

    selected: list[sql.Composable] = []
    names: list[str] = []
    if per_hour:
        selected.append(sql.Identifier("bucket"))
        names.append("bucket")
    for name in group_by:
        selected.append(sql.SQL("{} AS {}").format(column(name), sql.Identifier(name)))
        names.append(name)
    conditions: list[sql.Composable] = [sql.SQL("bucket >= %(start)s"), sql.SQL("bucket < %(end)s")]
    params: dict[str, Any] = {"start": start, "end": end}
    if unit_ids is not None:
        conditions.append(sql.SQL("{} = ANY(%(units)s)").format(unit_expr))
        params["units"] = list(unit_ids)
    for i, (name, value) in enumerate((where or {}).items()):
        conditions.append(sql.SQL("{} = {}").format(sql.Identifier(name), sql.Placeholder(f"w{i}")))
        params[f"w{i}"] = value
    grouping = sql.SQL(", ").join(sql.Literal(i) for i in range(1, len(selected) + 1))
    query = sql.SQL("SELECT {cols}sum(n)::bigint FROM {rollup} WHERE {cond}{group}").format(
        cols=sql.SQL("").join([sql.SQL(", ").join(selected), sql.SQL(", ")]) if selected else sql.SQL(""),
        rollup=sql.Identifier(spec.rollup.name(table)),
        cond=sql.SQL(" AND ").join(conditions),
        group=sql.SQL(" GROUP BY {g} ORDER BY {g}").format(g=grouping) if selected else sql.SQL(""),
    )
    rows = conn.execute(query, params).fetchall()
    return [CountRow(dict(zip(names, row[:-1], strict=True)), int(row[-1] or 0)) for row in rows]
