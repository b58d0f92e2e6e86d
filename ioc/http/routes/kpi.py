"""KPI figures over HTTP (definitions: docs/kpi.md).

The tiles are served from the daily rollup (``ioc.kpi.rollups``); the drill-down lists read the
``dossiers`` rows with the same conditions, and the two always agree (``ioc kpi check``)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from ioc.auth.deps import Caller
from ioc.http.errors import Problem, problem_responses
from ioc.http.periods import FromDay, ToDay, Units, check_period, staff_units
from ioc.kpi.figures import FIGURES, compare, dossiers_behind, due_soon, freshness, local_period
from ioc.kpi.rollups import tile_figures
from ioc.kpi.scoreboard import scoreboard_766

router = APIRouter(prefix="/api/kpi", tags=["KPIs"])


@router.get("/dossiers", summary="Dossier figures per unit for a period of local dates",
            responses=problem_responses(400, 401, 403))  # fmt: skip
async def dossier_figures(
    request: Request,
    principal: Caller,
    first_day: FromDay,
    last_day: ToDay,
    unit: Units = None,
) -> dict[str, Any]:
    units = staff_units(principal, unit, "KPIs")
    check_period(first_day, last_day)
    length = last_day - first_day
    before_last = first_day - timedelta(days=1)

    def query() -> tuple[dict[str, Any], dict[str, Any]]:
        with request.app.state.ioc.pool.connection() as conn:
            current = tile_figures(conn, first_day, last_day, units)
            figures = compare(current, tile_figures(conn, before_last - length, before_last, units))
            fresh = freshness(conn, datetime.now(UTC))
        return figures, fresh

    figures, fresh = await asyncio.to_thread(query)
    for unit_id, unit_figures in figures.items():
        unit_figures["newest_event_hour"] = fresh["units_newest_event_hour"].get(unit_id)
    return {
        "from": first_day,
        "to": last_day,
        "previous": {"from": before_last - length, "to": before_last},
        "source_newest_event_hour": fresh["source_newest_event_hour"],
        "source_stale": fresh["source_stale"],
        "units": figures,
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
) -> list[dict[str, Any]]:
    units = staff_units(principal, unit, "KPIs")
    check_period(first_day, last_day)
    if figure not in FIGURES:
        raise Problem(400, "validation-error", f"unknown figure {figure!r}; one of: {', '.join(FIGURES)}")

    def query() -> list[dict[str, Any]]:
        with request.app.state.ioc.pool.connection() as conn:
            return dossiers_behind(conn, figure, *local_period(first_day, last_day), units)

    return await asyncio.to_thread(query)


@router.get("/dossiers/due", summary="Open dossiers falling due within the next days",
            responses=problem_responses(401, 403))  # fmt: skip
async def dossiers_due(
    request: Request,
    principal: Caller,
    days: Annotated[int, Query(ge=1, le=60)] = 7,
    unit: Units = None,
) -> list[dict[str, Any]]:
    units = staff_units(principal, unit, "KPIs")

    def query() -> list[dict[str, Any]]:
        with request.app.state.ioc.pool.connection() as conn:
            return due_soon(conn, datetime.now(UTC), days, units)

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
