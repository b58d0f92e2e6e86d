"""KPI figures over HTTP (definitions: docs/kpi.md).

The tiles are served from the daily rollup (``ioc.kpi.rollups``); the drill-down lists read the
``dossiers`` rows with the same conditions, and the two always agree (``ioc kpi check``)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from ioc.auth.deps import Caller
from ioc.http.errors import Problem, problem_responses
from ioc.http.periods import FromDay, ToDay, Units, check_period, staff_units
from ioc.kpi.definitions import COMMON_RULES, definitions
from ioc.kpi.figures import (
    FIGURES,
    compare,
    drill_down,
    due_soon,
    freshness,
    level_totals,
    local,
    local_period,
    ranking_group,
    unit_levels,
)
from ioc.kpi.rollups import tile_figures
from ioc.kpi.scoreboard import scoreboard_766

router = APIRouter(prefix="/api/kpi", tags=["KPIs"])


async def _named_units(request: Request, unit: list[str] | None) -> list[str] | None:
    """Unit ids for what the caller typed: an id, an official code, a name or an alias ("UBND xã Trà Sơn")."""
    if not unit:
        return unit
    from ioc.district.aliases import UnitResolver, UnknownUnit

    def resolve() -> list[str]:
        with request.app.state.ioc.pool.connection() as conn:
            return [UnitResolver.from_database(conn).resolve(u) for u in unit]

    try:
        return await asyncio.to_thread(resolve)
    except UnknownUnit as exc:
        raise Problem(400, "validation-error", f"unit: {exc}") from exc


@router.get("/dossiers", summary="Dossier figures per unit for a period of local dates",
            responses=problem_responses(400, 401, 403))  # fmt: skip
async def dossier_figures(
    request: Request,
    principal: Caller,
    first_day: FromDay,
    last_day: ToDay,
    unit: Units = None,
) -> dict[str, Any]:
    units = staff_units(principal, await _named_units(request, unit), "KPIs")
    check_period(first_day, last_day)
    length = last_day - first_day
    before_last = first_day - timedelta(days=1)

    def query() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        with request.app.state.ioc.pool.connection() as conn:
            current = tile_figures(conn, first_day, last_day, units)
            levels = unit_levels(conn)
            groups = {u: ranking_group(levels.get(u, ("", ""))[1]) for u in current}
            figures = compare(current, tile_figures(conn, before_last - length, before_last, units), groups)
            fresh = freshness(conn, datetime.now(UTC))
        return figures, fresh, level_totals(current, levels)

    figures, fresh, totals = await asyncio.to_thread(query)
    for unit_id, unit_figures in figures.items():
        unit_figures["newest_event_hour"] = local(fresh["units_newest_event_hour"].get(unit_id))
    return {
        "from": first_day,
        "to": last_day,
        "previous": {"from": before_last - length, "to": before_last},
        "source_newest_event_hour": local(fresh["source_newest_event_hour"]),
        "source_stale": fresh["source_stale"],
        "has_data": bool(figures),
        "units": figures,
        "levels": totals,
        "definitions": definitions(),
        "rules": COMMON_RULES,
    }


@router.get("/dossiers/list", summary="The dossiers behind one figure (drill-down)",
            responses=problem_responses(400, 401, 403))  # fmt: skip
async def dossier_list(
    request: Request,
    principal: Caller,
    figure: Annotated[str, Query(description="A figure name from docs/kpi.md, e.g. resolved_late")],
    first_day: FromDay,
    last_day: ToDay,
    unit: Units = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="Dossiers per page")] = 100,
    offset: Annotated[int, Query(ge=0, description="Dossiers skipped (page * limit)")] = 0,
) -> dict[str, Any]:
    """One page of the dossiers a figure counts, with ``total`` (equal to the figure)."""
    units = staff_units(principal, await _named_units(request, unit), "KPIs")
    check_period(first_day, last_day)
    if figure not in FIGURES:
        raise Problem(400, "validation-error", f"figure: unknown figure {figure!r}; one of: {', '.join(FIGURES)}")

    def query() -> dict[str, Any]:
        with request.app.state.ioc.pool.connection() as conn:
            return drill_down(conn, figure, *local_period(first_day, last_day), units, limit, offset)

    return await asyncio.to_thread(query)


@router.get("/report", summary="The periodic one-stop report (Vietnamese labels): JSON, XLSX, CSV or Markdown",
            responses=problem_responses(400, 401, 403))  # fmt: skip
async def dossier_report(
    request: Request,
    principal: Caller,
    first_day: FromDay,
    last_day: ToDay,
    unit: Units = None,
    format: Annotated[str, Query(pattern="^(json|xlsx|csv|md)$", description="json, xlsx, csv or md")] = "json",
) -> Any:
    """Per unit, per level (the district's office, communes together, the district) and per procedure;
    the same numbers as ``/api/kpi/dossiers`` and ``ioc kpi report``. Staff only; a commune officer
    gets the report of their own commune."""
    from ioc.kpi.report import build_report, render

    units = staff_units(principal, await _named_units(request, unit), "KPIs")
    check_period(first_day, last_day, max_days=400)

    def query() -> dict[str, Any]:
        with request.app.state.ioc.pool.connection() as conn:
            return build_report(conn, first_day, last_day, units)

    report = await asyncio.to_thread(query)
    if format == "json":
        return report
    body, media_type = render(report, format)
    name = f"bao-cao-ho-so-{first_day:%Y%m%d}-{last_day:%Y%m%d}.{format}"
    return Response(body, media_type=media_type, headers={"Content-Disposition": f'attachment; filename="{name}"'})


@router.get("/dossiers/due", summary="Open dossiers falling due within the next days",
            responses=problem_responses(401, 403))  # fmt: skip
async def dossiers_due(
    request: Request,
    principal: Caller,
    days: Annotated[int, Query(ge=1, le=60)] = 7,
    unit: Units = None,
) -> list[dict[str, Any]]:
    units = staff_units(principal, await _named_units(request, unit), "KPIs")

    def query() -> list[dict[str, Any]]:
        with request.app.state.ioc.pool.connection() as conn:
            return [{k: local(v) for k, v in row.items()} for row in due_soon(conn, datetime.now(UTC), days, units)]

    return await asyncio.to_thread(query)


@router.get("/766", summary="Estimate of the Decision 766/QĐ-TTg scoreboard groups the dossier data supports",
            responses=problem_responses(400, 401, 403))  # fmt: skip
async def scoreboard(
    request: Request,
    principal: Caller,
    first_day: FromDay,
    last_day: ToDay,
    unit: Units = None,
) -> dict[str, Any]:
    units = staff_units(principal, unit, "KPIs")
    check_period(first_day, last_day)

    def query() -> dict[str, Any]:
        with request.app.state.ioc.pool.connection() as conn:
            return tile_figures(conn, first_day, last_day, units)

    figures = await asyncio.to_thread(query)
    return {"from": first_day, "to": last_day, "units": {u: scoreboard_766(f) for u, f in figures.items()}}
