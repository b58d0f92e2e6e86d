"""On call over HTTP: who is on call, overrides for swaps and leave, and a person's own pages.

Who may do what: staff read who is on call (a commune officer only for their own units); operators
and admins add overrides; everyone reads and acknowledges only their own pages (acknowledging a page
acknowledges its alert, as the console's button does, and the incident's timeline records it).
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field, model_validator

from ioc.alerts.lifecycle import InvalidAction, act
from ioc.auth.deps import current_principal, require_roles
from ioc.auth.principal import Principal
from ioc.clock import SystemClock
from ioc.http.errors import Problem, invalid, problem_responses
from ioc.http.state import AppState
from ioc.http.units import UnitQuery
from ioc.oncall import pages as page_store
from ioc.oncall.roster import Role, add_override, on_duty

router = APIRouter(prefix="/api/on-call", tags=["on call"])
Caller = Annotated[Principal, Depends(current_principal)]
Planner = Annotated[Principal, Depends(require_roles("admin", "operator"))]


def _state(request: Request) -> AppState:
    return request.app.state.ioc


def _staff(principal: Principal) -> None:
    if principal.kind != "user":
        raise Problem(403, "forbidden", "on call is for staff accounts, not API keys")


class OnDutyOut(BaseModel):
    unit_id: str | None
    role: str
    at: datetime
    people: list[dict[str, Any]] = Field(description="username, email and source (shift or override)")


@router.get("", response_model=OnDutyOut, summary="Who is on call for a role (in a commune) at a time",
            responses=problem_responses(401, 403, 404, 422))  # fmt: skip
async def who_is_on_call(
    request: Request,
    principal: Caller,
    role: Annotated[Role, Query()],
    unit: UnitQuery = None,
    at: Annotated[datetime | None, Query(description="ISO time; default now")] = None,
) -> OnDutyOut:
    _staff(principal)
    if unit is not None and not principal.can_see_unit(unit):
        raise Problem(404, "not-found", f"no unit {unit!r}")
    if unit is None and not principal.is_district_wide:
        raise Problem(403, "forbidden", "district on-call rosters are for district staff")
    when = at or SystemClock().now()
    if when.tzinfo is None:
        raise invalid("at needs a timezone offset (+07:00)", parameter="at")

    def query() -> list[dict[str, Any]]:
        with _state(request).pool.connection() as conn:
            return [p.model_dump() for p in on_duty(conn, unit, role, when)]

    return OnDutyOut(unit_id=unit, role=role, at=when, people=await asyncio.to_thread(query))


class OverrideIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"unit_id": "tra-kot", "role": "commune_officer", "username": "cb-tra-kot-2", "email": "trucxa@trakot.vn",
         "starts_at": "2026-12-24T17:00:00+07:00", "ends_at": "2026-12-26T07:00:00+07:00"}]})  # fmt: skip

    unit_id: str | None = Field(default=None, max_length=64)
    role: Role
    username: str = Field(min_length=1, max_length=64)
    email: str | None = Field(default=None, max_length=200, pattern=r"^[^@\s]+@[^@\s]+$")
    starts_at: datetime
    ends_at: datetime

    @model_validator(mode="after")
    def _order(self) -> OverrideIn:
        if self.starts_at.tzinfo is None or self.ends_at.tzinfo is None:
            raise ValueError("starts_at and ends_at need a timezone offset (+07:00)")
        if self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        return self


@router.post("/overrides", status_code=201, summary="Put someone on call for a while (swap, leave)",
             responses=problem_responses(401, 403, 422))  # fmt: skip
async def create_override(request: Request, principal: Planner, body: OverrideIn) -> dict[str, int]:
    def run() -> int:
        with _state(request).pool.connection() as conn, conn.transaction():
            user = conn.execute("SELECT role, unit_id FROM users WHERE username = %s AND active",
                                (body.username,)).fetchone()  # fmt: skip
            if user is None:
                raise invalid(f"no active user {body.username!r}", pointer="#/username", code="unknown_user")
            if body.unit_id is not None and not conn.execute("SELECT 1 FROM units WHERE id = %s",
                                                             (body.unit_id,)).fetchone():  # fmt: skip
                raise invalid(f"unknown unit {body.unit_id!r}", pointer="#/unit_id", code="unknown_unit")
            return add_override(conn, unit_id=body.unit_id, role=body.role, username=body.username, email=body.email,
                                starts_at=body.starts_at, ends_at=body.ends_at, by=principal.actor)  # fmt: skip

    return {"id": await asyncio.to_thread(run)}


class PageOut(BaseModel):
    id: int
    alert_id: int
    title: str | None
    role: str
    unit_id: str | None
    channel: str
    why: str
    state: str
    reason: str | None
    created_at: datetime
    sent_at: datetime | None
    acknowledged_at: datetime | None


@router.get("/pages/mine", response_model=list[PageOut], summary="The pages sent to me, newest first",
            responses=problem_responses(401, 403))  # fmt: skip
async def my_pages(request: Request, principal: Caller,
                   limit: Annotated[int, Query(ge=1, le=200)] = 50) -> list[PageOut]:  # fmt: skip
    _staff(principal)

    def query() -> list[PageOut]:
        with _state(request).pool.connection() as conn:
            cur = conn.execute(
                """SELECT p.id, p.alert_id, a.title, p.role, p.unit_id, p.channel, p.why, p.state, p.reason,
                          p.created_at, p.sent_at, p.acknowledged_at
                   FROM on_call_pages p LEFT JOIN alerts a ON a.id = p.alert_id
                   WHERE p.username = %s ORDER BY p.id DESC LIMIT %s""",
                (principal.username, limit),
            )
            names = [d.name for d in cur.description or ()]
            return [PageOut(**dict(zip(names, r, strict=True))) for r in cur.fetchall()]

    return await asyncio.to_thread(query)


@router.post("/pages/{page_id}/acknowledge", response_model=PageOut, summary="I take it: acknowledge the paged alert",
             responses=problem_responses(401, 403, 404))  # fmt: skip
async def acknowledge_page(request: Request, principal: Caller, page_id: int) -> PageOut:
    _staff(principal)

    def run() -> None:
        now = SystemClock().now()
        with _state(request).pool.connection() as conn, conn.transaction():
            row = conn.execute("SELECT alert_id FROM on_call_pages WHERE id = %s AND username = %s",
                               (page_id, principal.username)).fetchone()  # fmt: skip
            if row is None:
                raise Problem(404, "not-found", f"no page {page_id} for you")
            status = conn.execute("SELECT status FROM alerts WHERE id = %s", (row[0],)).fetchone()
            if status and status[0] == "new":
                try:
                    act(conn, row[0], "acknowledge", actor=principal.actor, now=now)
                except InvalidAction as exc:
                    raise Problem(409, "conflict", str(exc)) from exc
            else:
                page_store.acknowledged(conn, row[0], by=principal.actor, now=now)

    await asyncio.to_thread(run)
    pages = await my_pages(request, principal, limit=200)
    return next(p for p in pages if p.id == page_id)
