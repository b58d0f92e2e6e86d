"""A unit named in a query, however the caller names it: its id, official code, name or an alias
("UBND xã Trà Sơn", "20305", "Trà Sơn", "tra son") -> the unit id, for every route that filters by
unit. One dependency, so no route accepts ids only ([adoption]: a second district's staff type names).
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import Depends, Query, Request

from ioc.http.errors import invalid

UNIT_HELP = "A unit: its id, official code, name or alias (e.g. tra-son, 20305, Trà Sơn, UBND xã Trà Sơn)"


async def resolve_names(request: Request, names: list[str]) -> list[str]:
    """The unit ids ``names`` name (400 naming ``unit`` when one names none, or several)."""
    from ioc.district.aliases import UnitResolver, UnknownUnit

    def resolve() -> list[str]:
        with request.app.state.ioc.pool.connection() as conn:
            known = {r[0] for r in conn.execute("SELECT id FROM units WHERE id = ANY(%s)", (names,))}
            if known >= set(names):  # plain ids: no need to read every unit's names
                return names
            resolver = UnitResolver.from_database(conn)
            return [resolver.resolve(n) for n in names]

    try:
        return await asyncio.to_thread(resolve)
    except UnknownUnit as exc:
        raise invalid(f"unit: {exc}", parameter="unit", code="unknown_unit") from exc


async def _unit(request: Request, unit: Annotated[str | None, Query(max_length=200, description=UNIT_HELP)] = None
                ) -> str | None:  # fmt: skip
    return None if unit is None else (await resolve_names(request, [unit]))[0]


async def _units(request: Request,
                 unit: Annotated[list[str] | None, Query(description=f"{UNIT_HELP}; repeat for several")] = None,
                 ) -> list[str] | None:  # fmt: skip
    return await resolve_names(request, unit) if unit else unit


#: ``unit`` query parameter resolved to a unit id.
UnitQuery = Annotated[str | None, Depends(_unit)]
#: ``unit`` repeated, each resolved to a unit id.
UnitsQuery = Annotated[list[str] | None, Depends(_units)]
