"""Alerts over HTTP: the queue (filter, search with or without diacritics, cursor pagination), one
alert with its audit trail, the actions people take, the change feed that websocket clients
replay with ``since``, and CAP 1.2 export/import.

Who may do what: admins and operators do everything; leaders read and comment; commune officers
work on their own unit's alerts (acknowledge, start, resolve, reopen, comment); devices and
integrations read nothing here (integrations may post CAP). An alert outside the caller's units is
answered 404, so its existence is not revealed.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, File, Query, Request, Response, UploadFile
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field

from ioc.alerts import media as alert_media
from ioc.alerts.access import concerned_units, scope_condition
from ioc.alerts.lifecycle import MOVES, AlertNotFound, InvalidAction, act
from ioc.alerts.model import Severity
from ioc.auth.deps import check_action, current_principal, require_staff
from ioc.auth.principal import Principal
from ioc.clock import SystemClock
from ioc.http.errors import Problem, problem_responses
from ioc.http.forms import OffLoopFormRoute
from ioc.http.state import AppState
from ioc.http.units import UnitQuery
from ioc.text import contains_pattern

router = APIRouter(prefix="/api", tags=["alerts"], route_class=OffLoopFormRoute)

ALERT_COLUMNS = (
    "id, kind, severity, title, description, unit_id, assigned_unit_id, lat, lon, area, evidence, source_refs,"
    " count, first_seen, last_seen, status, escalation_level, seq, acknowledged_at, resolved_at, closed_at, updated_at"
)
OFFICER_ACTIONS = frozenset({"acknowledge", "start", "resolve", "reopen", "comment"})
LEADER_ACTIONS = frozenset({"comment"})
OPEN_STATUSES = ("new", "acknowledged", "in_progress")


class Alert(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": 812,
                    "kind": "camera.intrusion",
                    "severity": "severe",
                    "title": "Xâm nhập khu vực san-truong – camera Trường TH Trà Kót",
                    "unit_id": "tra-kot",
                    "status": "new",
                    "count": 3,
                    "seq": 10452,
                    "first_seen": "2026-03-01T22:14:05+07:00",
                    "last_seen": "2026-03-01T22:15:40+07:00",
                    "evidence": {"snapshot_ref": "snap/2b/2b1c0e.jpg", "score": 0.91},
                }
            ]
        }
    )

    id: int
    kind: str
    severity: Severity
    title: str
    description: str | None = None
    unit_id: str | None = None
    assigned_unit_id: str | None = None
    lat: float | None = None
    lon: float | None = None
    area: dict[str, Any] | None = None
    evidence: dict[str, Any] = Field(default_factory=dict)
    source_refs: list[Any] = Field(default_factory=list)
    count: int
    first_seen: datetime
    last_seen: datetime
    status: str
    escalation_level: int
    seq: int = Field(description="Changes whenever the alert changes; increasing in commit order")
    acknowledged_at: datetime | None = None
    resolved_at: datetime | None = None
    closed_at: datetime | None = None
    updated_at: datetime


class AlertPage(BaseModel):
    items: list[Alert]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null at the end")


class AuditEntry(BaseModel):
    at: datetime
    actor: str
    action: str
    from_status: str | None
    to_status: str | None
    note: str | None
    photo_ref: str | None
    data: dict[str, Any]


class AlertDetail(Alert):
    audit: list[AuditEntry]


class Changes(BaseModel):
    items: list[Alert]
    last_seq: int = Field(description="Pass as `since` next time")
    more: bool


class ActionRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"action": "resolve", "note": "Đã kiểm tra, bảo vệ đã xử lý."}]},
    )

    action: Literal["acknowledge", "start", "resolve", "close", "dismiss", "reopen", "comment", "assign"]
    note: str | None = Field(default=None, max_length=4000)
    photo_ref: str | None = Field(default=None, max_length=256, pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]*$")
    unit_id: str | None = Field(default=None, description="For `assign`: the unit to assign to")


def _state(request: Request) -> AppState:
    return request.app.state.ioc


Caller = Annotated[Principal, Depends(current_principal)]


def _require_staff(principal: Principal) -> None:
    require_staff(principal, "alerts")


def _row_dict(cursor: Any, row: tuple) -> dict[str, Any]:
    return dict(zip([d.name for d in cursor.description], row, strict=True))


def _encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"id": last_id}).encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> int:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        return int(json.loads(base64.urlsafe_b64decode(padded))["id"])
    except (ValueError, KeyError, TypeError) as exc:
        raise Problem(400, "validation-error", "cursor is not one this API returned") from exc


def _scope_condition(principal: Principal, params: list[Any]) -> str:
    return scope_condition(principal.visible_units(), params)


@router.get("/alerts", response_model=AlertPage, summary="The alert queue, newest first",
            responses=problem_responses(400, 401, 403))  # fmt: skip
async def list_alerts(
    request: Request,
    principal: Caller,
    status: Annotated[str | None, Query(description="`open`, or a status (new, acknowledged, ...)")] = "open",
    unit: UnitQuery = None,
    kind: Annotated[str | None, Query(description="Kind, or a prefix ending in `.` (camera.)")] = None,
    min_severity: Annotated[Severity | None, Query()] = None,
    q: Annotated[str | None, Query(max_length=200, description="Search the title; diacritics optional")] = None,
    cursor: Annotated[str | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> AlertPage:
    _require_staff(principal)
    params: list[Any] = []
    where = [_scope_condition(principal, params)]
    if status == "open":
        where.append("status IN ('new', 'acknowledged', 'in_progress')")
    elif status:
        where.append("status = %s")
        params.append(status)
    if unit:
        where.append("(unit_id = %s OR EXISTS (SELECT 1 FROM alert_units au WHERE au.alert_id = alerts.id"
                     " AND au.unit_id = %s))")  # fmt: skip
        params += [unit, unit]
    if kind:
        where.append("kind LIKE %s" if kind.endswith(".") else "kind = %s")
        params.append(kind + "%" if kind.endswith(".") else kind)
    if min_severity:
        where.append("severity = ANY(%s)")
        params.append([s.value for s in Severity if s.rank >= min_severity.rank])
    if q and (pattern := contains_pattern(q)):
        where.append("title_search LIKE %s")
        params.append(pattern)
    if cursor:
        where.append("id < %s")
        params.append(_decode_cursor(cursor))
    sql = f"SELECT {ALERT_COLUMNS} FROM alerts WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT %s"
    params.append(limit + 1)

    def query() -> list[dict[str, Any]]:
        with _state(request).pool.connection() as conn:
            cur = conn.execute(sql, params)
            return [_row_dict(cur, r) for r in cur.fetchall()]

    rows = await asyncio.to_thread(query)
    more = len(rows) > limit
    rows = rows[:limit]
    return AlertPage(
        items=[Alert(**r) for r in rows], next_cursor=_encode_cursor(rows[-1]["id"]) if more and rows else None
    )


@router.get("/alerts/changes", response_model=Changes, summary="Alerts changed since a sequence number",
            description="What a websocket client missed while disconnected: every alert whose `seq` is greater "
            "than `since`, in `seq` order, in its current state.", responses=problem_responses(401, 403))  # fmt: skip
async def alert_changes(
    request: Request,
    principal: Caller,
    since: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 500,
) -> Changes:
    _require_staff(principal)
    params: list[Any] = []
    scope = _scope_condition(principal, params)
    params += [since, limit + 1]

    def query() -> list[dict[str, Any]]:
        with _state(request).pool.connection() as conn:
            cur = conn.execute(
                f"SELECT {ALERT_COLUMNS} FROM alerts WHERE {scope} AND seq > %s ORDER BY seq LIMIT %s", params
            )
            return [_row_dict(cur, r) for r in cur.fetchall()]

    rows = await asyncio.to_thread(query)
    more = len(rows) > limit
    rows = rows[:limit]
    return Changes(items=[Alert(**r) for r in rows], last_seq=rows[-1]["seq"] if rows else since, more=more)


def _load_visible(conn: Any, alert_id: int, principal: Principal) -> dict[str, Any]:
    cur = conn.execute(f"SELECT {ALERT_COLUMNS} FROM alerts WHERE id = %s", (alert_id,))
    row = cur.fetchone()
    if row is None:
        raise Problem(404, "not-found", f"alert {alert_id} does not exist")
    alert = _row_dict(cur, row)
    if not (principal.can_see_unit(alert["unit_id"]) or principal.can_see_unit(alert["assigned_unit_id"])
            or any(principal.can_see_unit(u) for u in concerned_units(conn, alert_id))):
        raise Problem(404, "not-found", f"alert {alert_id} does not exist")
    return alert


@router.get("/alerts/{alert_id}", response_model=AlertDetail, summary="One alert with its audit trail",
            responses=problem_responses(401, 403, 404))  # fmt: skip
async def get_alert(request: Request, principal: Caller, alert_id: int) -> AlertDetail:
    _require_staff(principal)

    def query() -> AlertDetail:
        with _state(request).pool.connection() as conn:
            alert = _load_visible(conn, alert_id, principal)
            cur = conn.execute(
                "SELECT at, actor, action, from_status, to_status, note, photo_ref, data FROM alert_audit"
                " WHERE alert_id = %s ORDER BY id",
                (alert_id,),
            )
            audit = [AuditEntry(**_row_dict(cur, r)) for r in cur.fetchall()]
            return AlertDetail(**alert, audit=audit)

    return await asyncio.to_thread(query)


def _check_may(principal: Principal, action: str) -> None:
    check_action(principal, action, officer=OFFICER_ACTIONS, leader=LEADER_ACTIONS, what="alerts")


@router.post("/alerts/{alert_id}/actions", response_model=Alert, summary="Act on an alert",
             description="Actions: " + ", ".join(MOVES) + ". `dismiss`, `reopen` and `comment` need a note.",
             responses=problem_responses(401, 403, 404, 409, 422))  # fmt: skip
async def act_on_alert(request: Request, principal: Caller, alert_id: int, body: ActionRequest) -> Alert:
    _require_staff(principal)
    _check_may(principal, body.action)

    def run() -> Alert:
        with _state(request).pool.connection() as conn, conn.transaction():
            _load_visible(conn, alert_id, principal)
            if body.action == "assign" and body.unit_id and not principal.is_district_wide:
                raise Problem(403, "forbidden", "only district staff assign alerts to units")
            if body.photo_ref and not alert_media.uploaded_for(conn, alert_id, body.photo_ref):
                raise Problem(422, "validation-error", "/photo_ref: not a photo uploaded for this alert "
                              "(POST /api/alerts/{id}/photos first)",
                              errors=[{"detail": "not a photo uploaded for this alert", "location": "body",
                                       "pointer": "#/photo_ref"}])  # fmt: skip
            try:
                act(conn, alert_id, body.action, actor=principal.actor, now=SystemClock().now(),
                    note=body.note, photo_ref=body.photo_ref, assign_to_unit=body.unit_id)  # fmt: skip
            except AlertNotFound as exc:
                raise Problem(404, "not-found", str(exc)) from exc
            except InvalidAction as exc:
                raise Problem(409, "conflict", str(exc)) from exc
            cur = conn.execute(f"SELECT {ALERT_COLUMNS} FROM alerts WHERE id = %s", (alert_id,))
            return Alert(**_row_dict(cur, cur.fetchone()))

    return await asyncio.to_thread(run)


@router.get("/alerts/{alert_id}/cap", summary="The alert as a CAP 1.2 document", response_class=Response,
            responses={200: {"content": {"application/cap+xml": {}}}, **problem_responses(401, 403, 404)})  # fmt: skip
async def alert_as_cap(request: Request, principal: Caller, alert_id: int) -> Response:
    _require_staff(principal)
    from ioc.cap.exporter import export_alert

    settings = _state(request).settings

    def run() -> bytes:
        with _state(request).pool.connection() as conn, conn.transaction():
            _load_visible(conn, alert_id, principal)
            return export_alert(conn, alert_id, sender=settings.cap_sender, sender_name=settings.cap_sender_name,
                                now=SystemClock().now())  # fmt: skip

    return Response(await asyncio.to_thread(run), media_type="application/cap+xml")


@router.post("/cap", summary="Receive a CAP 1.2 message from an outside authority",
             description="Alert opens an alert, Update changes the referenced one, Cancel dismisses it. "
             "Test/Exercise/Draft messages are shown to operators, marked, and never relayed to the public.",
             responses=problem_responses(400, 401, 403, 422))  # fmt: skip
async def receive_cap(
    request: Request,
    principal: Caller,
    document: Annotated[bytes, Body(media_type="application/cap+xml")],
) -> dict[str, Any]:
    if not (principal.has_role("admin", "operator", "integration")):
        raise Problem(403, "forbidden", "only operators and integration keys may post CAP messages")
    from ioc.cap.importer import apply_cap
    from ioc.cap.parse import parse_cap
    from ioc.cap.schema import CapError
    from ioc.http.routes.warnings import issuer_of

    issuer = issuer_of(request)

    def run() -> dict[str, Any]:
        try:
            message = parse_cap(document)
            with _state(request).pool.connection() as conn, conn.transaction():
                result = apply_cap(conn, message, document, now=SystemClock().now(),
                                   warnings=issuer.config, issuer=issuer)  # fmt: skip
                _confine_cap(conn, principal, result.alert_id)
        except CapError as exc:
            raise Problem(
                400, "validation-error", f"invalid CAP 1.2 document: {exc}",
                errors=[{"detail": p.message, "line": p.line, "path": p.path} for p in exc.problems[:50]],
            ) from exc  # fmt: skip
        return {"alert_id": result.alert_id, "action": result.action, "detail": result.message}

    return await asyncio.to_thread(run)


def _confine_cap(conn: Any, principal: Principal, alert_id: int | None) -> None:
    """A key bound to a commune may only raise or change alerts of that commune (the transaction
    is rolled back otherwise): its CAP area decides the alert's unit, so check the outcome."""
    if principal.is_district_wide or alert_id is None:
        return
    row = conn.execute("SELECT unit_id FROM alerts WHERE id = %s", (alert_id,)).fetchone()
    if row is None or not principal.can_see_unit(row[0]):
        raise Problem(403, "forbidden", "this CAP message's area is outside the unit of your API key")


@router.post("/alerts/{alert_id}/photos", status_code=201, summary="Upload a photo for an action on the alert",
             description="Returns a `photo_ref` to send with `POST /api/alerts/{id}/actions` (e.g. the site after "
             "the fix). Checked by content and stored without EXIF, like citizens' photos.",
             responses=problem_responses(400, 401, 403, 404))  # fmt: skip
async def upload_alert_photo(request: Request, principal: Caller, alert_id: int,
                             photo: Annotated[UploadFile, File()]) -> dict[str, str]:  # fmt: skip
    _require_staff(principal)
    from ioc.http import media_intake

    def check() -> None:
        with _state(request).pool.connection() as conn:
            _load_visible(conn, alert_id, principal)

    await asyncio.to_thread(check)
    stored = await media_intake.prepare(request, photo, f"photo ({photo.filename})")
    try:  # the staff member's reference is never given back: the audit trail keeps the photo
        await media_intake.keep(request, [stored])
    except BaseException:
        media_intake.discard_unkept([stored])
        raise

    def record() -> None:
        with _state(request).pool.connection() as conn:
            alert_media.record_upload(conn, alert_id, stored.storage_key, by=principal.actor, now=SystemClock().now())

    await asyncio.to_thread(record)
    return {"photo_ref": stored.storage_key, "url": f"/api/alerts/{alert_id}/photos/{stored.sha256}"}


@router.get("/alerts/{alert_id}/photos/{sha256}", response_class=FileResponse, summary="A photo of the alert's audit",
            responses=problem_responses(401, 403, 404))  # fmt: skip
async def alert_photo(request: Request, principal: Caller, alert_id: int, sha256: str) -> FileResponse:
    _require_staff(principal)
    if not re.fullmatch(r"[0-9a-f]{64}", sha256):
        raise Problem(404, "not-found", "no such photo")

    def find() -> str | None:
        with _state(request).pool.connection() as conn:
            _load_visible(conn, alert_id, principal)
            row = conn.execute(
                "SELECT photo_ref FROM alert_photos WHERE alert_id = %s AND photo_ref LIKE %s LIMIT 1",
                (alert_id, f"reports/{sha256[:2]}/{sha256}.%"),
            ).fetchone()
            return row[0] if row else None

    ref = await asyncio.to_thread(find)
    path = Path(_state(request).settings.var_dir) / "media" / ref if ref else None
    if path is None or not path.is_file():
        raise Problem(404, "not-found", "no such photo on this alert")
    return FileResponse(path, headers={"Cache-Control": "private"})
