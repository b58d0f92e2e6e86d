"""Incidents over HTTP: the queue operators work on, one incident with its signals, timeline and
checklist, and what people do with it (merge, split, status, lead commune, steps, notes).

Who may do what: staff accounts only (API keys read nothing here). Admins and operators do
everything; leaders read and comment; commune officers see the incidents their commune leads or
helps with, acknowledge them (their commune's new alerts in it), tick checklist steps and comment.
An incident outside the caller's units is answered 404, so its existence is not revealed; inside
one, a commune sees only the signals of its own units.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from ioc.alerts.model import Severity
from ioc.auth.deps import check_action, current_principal, require_staff
from ioc.auth.principal import Principal
from ioc.clock import SystemClock
from ioc.http.errors import Problem, invalid, problem_responses
from ioc.http.state import AppState
from ioc.http.units import UnitQuery
from ioc.incidents import store
from ioc.text import nfc

router = APIRouter(prefix="/api/incidents", tags=["incidents"])
Caller = Annotated[Principal, Depends(current_principal)]


class Incident(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": 41, "rule_id": "thien-tai", "title": "Thiên tai – mưa lũ, ngập, sạt lở – Trà Kót",
                    "severity": "severe", "status": "open", "lead_unit_id": "tra-kot", "helper_unit_ids": [],
                    "signal_count": 9, "open_alerts": 6,
                    "first_signal_at": "2026-10-14T03:10:00+07:00", "last_signal_at": "2026-10-14T05:42:00+07:00",
                }
            ]
        }
    )  # fmt: skip

    id: int
    rule_id: str = Field(description="The correlation rule (incident category) from config/incident-rules.yaml")
    title: str
    severity: Severity
    status: Literal["open", "resolved", "closed", "merged"]
    lead_unit_id: str | None = None
    helper_unit_ids: list[str] = Field(default_factory=list)
    lat: float | None = None
    lon: float | None = None
    first_signal_at: datetime
    last_signal_at: datetime
    signal_count: int
    open_alerts: int | None = Field(default=None, description="Signals that are alerts still open")
    merged_into: int | None = None
    created_at: datetime
    updated_at: datetime
    closed_at: datetime | None = None


class IncidentSignal(BaseModel):
    signal: Literal["alert", "broadcast"]
    ref: int = Field(description="Alert id or radio broadcast id")
    topic: str
    severity: str
    unit_ids: list[str]
    lat: float | None = None
    lon: float | None = None
    at: datetime
    attached_by: str
    title: str | None = None
    status: str | None = None
    count: int | None = None
    last_seen: datetime | None = None


class TimelineEntry(BaseModel):
    at: datetime
    actor: str
    source: Literal["incident", "alert", "broadcast"]
    action: str
    note: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)
    ref: int | None = Field(default=None, description="Alert or broadcast id for entries of a signal")


class ChecklistStep(BaseModel):
    id: str
    text: str
    text_en: str | None = None
    done_by: str | None = None
    done_at: datetime | None = None
    note: str | None = None


class IncidentDetail(Incident):
    signals: list[IncidentSignal]
    timeline: list[TimelineEntry]
    checklist: list[ChecklistStep]


class IncidentPage(BaseModel):
    items: list[Incident]
    next_before: int | None = Field(description="Pass as `before` for the next page; null at the end")


class SignalRef(BaseModel):
    model_config = ConfigDict(extra="forbid")
    signal: Literal["alert", "broadcast"]
    ref: int = Field(ge=1)


class IncidentAction(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"action": "merge", "into": 40, "note": "Cùng một trận lũ"},
                                        {"action": "step", "step": "canh-bao-dai", "note": "Đã phát lúc 05:30"}]},
    )  # fmt: skip

    action: Literal["merge", "split", "resolve", "close", "reopen", "lead", "step", "comment", "acknowledge"]
    note: str | None = Field(default=None, max_length=4000)
    into: int | None = Field(default=None, ge=1, description="For `merge`: the incident to merge into")
    signals: list[SignalRef] | None = Field(default=None, max_length=500, description="For `split`")
    unit_id: str | None = Field(default=None, max_length=64, description="For `lead`: the lead commune")
    step: str | None = Field(default=None, max_length=64, description="For `step`: the checklist step done")


OPERATOR_ACTIONS = frozenset({"merge", "split", "resolve", "close", "reopen", "lead"})
OFFICER_ACTIONS = frozenset({"step", "comment", "acknowledge"})
LEADER_ACTIONS = frozenset({"comment"})


def _state(request: Request) -> AppState:
    return request.app.state.ioc


def _require_staff(principal: Principal) -> None:
    require_staff(principal, "incidents")


def _check_may(principal: Principal, action: str) -> None:
    check_action(principal, action, officer=OFFICER_ACTIONS, leader=LEADER_ACTIONS, what="incidents")


@router.get("", response_model=IncidentPage, summary="The incident queue, newest first",
            responses=problem_responses(400, 401, 403))  # fmt: skip
async def list_incidents(
    request: Request,
    principal: Caller,
    status: Annotated[str | None, Query(pattern="^(active|open|resolved|closed)$",
                                        description="`active` (default): open incidents; or a status")] = "active",
    unit: UnitQuery = None,
    before: Annotated[int | None, Query(ge=1, description="Only incidents with a smaller id (paging)")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> IncidentPage:
    _require_staff(principal)

    def query() -> list[dict[str, Any]]:
        with _state(request).pool.connection() as conn:
            return store.list_incidents(conn, units=principal.visible_units(), status=status, unit=unit,
                                        before_id=before, limit=limit + 1)  # fmt: skip

    rows = await asyncio.to_thread(query)
    more = len(rows) > limit
    rows = rows[:limit]
    return IncidentPage(items=[Incident(**r) for r in rows], next_before=rows[-1]["id"] if more and rows else None)


def _detail(conn: Any, incident_id: int, principal: Principal) -> IncidentDetail:
    units = principal.visible_units()
    try:
        incident = store.get(conn, incident_id, units=units)
    except store.IncidentNotFound as exc:
        raise Problem(404, "not-found", str(exc)) from exc
    signals = store.signals_of(conn, incident_id, units=units)
    timeline = store.timeline(conn, incident_id, signals)
    return IncidentDetail(**incident, signals=[IncidentSignal(**s) for s in signals],
                          timeline=[TimelineEntry(**t) for t in timeline],
                          checklist=[ChecklistStep(**c) for c in store.checklist(conn, incident)])  # fmt: skip


@router.get("/{incident_id}", response_model=IncidentDetail,
            summary="One incident with its signals, timeline and checklist",
            responses=problem_responses(401, 403, 404))  # fmt: skip
async def get_incident(request: Request, principal: Caller, incident_id: int) -> IncidentDetail:
    _require_staff(principal)

    def query() -> IncidentDetail:
        with _state(request).pool.connection() as conn:
            return _detail(conn, incident_id, principal)

    return await asyncio.to_thread(query)


@router.post("/{incident_id}/actions", response_model=IncidentDetail, summary="Act on an incident",
             description="`merge` (into), `split` (signals), `resolve`, `close`, `reopen`, `lead` (unit_id), "
             "`step` (a checklist step done), `comment` (note), `acknowledge` (every new alert of it the caller "
             "sees: 409 when there is none). Every action is kept in the timeline.",
             responses=problem_responses(400, 401, 403, 404, 409, 422))  # fmt: skip
async def act_on_incident(
    request: Request, principal: Caller, incident_id: int, body: IncidentAction
) -> IncidentDetail:
    _require_staff(principal)
    _check_may(principal, body.action)
    note = nfc(body.note.strip()) if body.note and body.note.strip() else None

    def run() -> IncidentDetail:
        now = SystemClock().now()
        units = principal.visible_units()
        with _state(request).pool.connection() as conn, conn.transaction():
            try:
                store.get(conn, incident_id, units=units)
                if body.action == "merge":
                    if body.into is None:
                        raise invalid("merge needs `into`", pointer="#/into")
                    store.get(conn, body.into, units=units)
                    store.merge(conn, incident_id, body.into, actor=principal.actor, now=now, note=note)
                elif body.action == "split":
                    if not body.signals:
                        raise invalid("split needs `signals`", pointer="#/signals")
                    store.split(conn, incident_id, [(s.signal, s.ref) for s in body.signals], actor=principal.actor,
                                now=now, note=note)  # fmt: skip
                elif body.action in store.STATUS_ACTIONS:
                    store.set_status(conn, incident_id, body.action, actor=principal.actor, now=now, note=note)
                elif body.action == "lead":
                    if body.unit_id is not None and not conn.execute(
                        "SELECT 1 FROM units WHERE id = %s", (body.unit_id,)
                    ).fetchone():
                        raise invalid(f"unknown unit {body.unit_id!r}", pointer="#/unit_id", code="unknown_unit")
                    store.set_units(conn, incident_id, lead_unit_id=body.unit_id, actor=principal.actor, now=now)
                elif body.action == "acknowledge":
                    store.acknowledge(conn, incident_id, units=units, actor=principal.actor, now=now)
                elif body.action == "step":
                    if not body.step:
                        raise invalid("step needs `step`", pointer="#/step")
                    store.step_done(conn, incident_id, body.step, actor=principal.actor, now=now, note=note)
                else:
                    if not note:
                        raise invalid("comment needs a note", pointer="#/note")
                    store.add_note(conn, incident_id, actor=principal.actor, now=now, note=note)
            except store.IncidentNotFound as exc:
                raise Problem(404, "not-found", str(exc)) from exc
            except store.InvalidIncidentAction as exc:
                raise Problem(409, "conflict", str(exc)) from exc
        with _state(request).pool.connection() as conn:
            return _detail(conn, incident_id, principal)

    return await asyncio.to_thread(run)
