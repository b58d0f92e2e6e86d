"""Query parameters shared by the figure endpoints (KPIs, sectors): a period of local dates and
the units a staff member may ask about.

One definition, so every figure endpoint reads `from`/`to` the same way (local dates in
Asia/Ho_Chi_Minh, `to` included) and refuses the same mistakes with the same problem.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import Query

from ioc.http.errors import Problem
from ioc.http.units import UnitsQuery

# Bounded: a date near year 9999 overflows the day arithmetic behind the figures (422, not 500).
FIRST_DATE, LAST_DATE = date(1900, 1, 1), date(2199, 12, 31)
FromDay = Annotated[date, Query(alias="from", ge=FIRST_DATE, le=LAST_DATE,
                                description="First local date (Asia/Ho_Chi_Minh), e.g. 2026-10-01")]  # fmt: skip
ToDay = Annotated[date, Query(alias="to", ge=FIRST_DATE, le=LAST_DATE, description="Last local date (included)")]
# ``unit`` repeated; each an id, official code, name or alias, resolved to unit ids (ioc.http.units).
Units = UnitsQuery


def check_period(first_day: date, last_day: date, max_days: int | None = None) -> None:
    """Refuse a period that ends before it starts or is longer than ``max_days`` (400)."""
    if last_day < first_day:
        raise Problem(400, "validation-error", "`to` is before `from`")
    if max_days is not None and (last_day - first_day).days >= max_days:
        raise Problem(400, "validation-error", f"a period is at most {max_days} days")


def staff_units(principal: Any, unit: list[str] | None, what: str) -> list[str] | None:
    """The units to answer for: those asked (all the caller may see when none), never beyond the
    caller's own (a commune officer asking about another commune gets 403). ``what`` names the
    figures in the refusal of a non-staff caller (an API key)."""
    if principal.kind != "user":
        raise Problem(403, "forbidden", f"{what} are for staff accounts")
    visible = principal.visible_units()
    units = list(unit) if unit else (sorted(visible) if visible is not None else None)
    if visible is not None and units is not None and not set(units) <= visible:
        raise Problem(403, "forbidden", "some of these units are outside yours")
    return units
