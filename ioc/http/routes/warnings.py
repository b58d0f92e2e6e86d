"""Public warnings over HTTP (docs/warnings.md): draft, issue (the audited act), revise, cancel,
acknowledge, the ledger, phones' push subscriptions, and the public Atom feed.

Access rules (one per route, written at the route):

* draft / issue / revise / cancel: operators, leaders and admins (``IssuerCaller``); an Actual,
  Public warning needs a second, different person to issue it when the policy says so;
* list / read / ledger / figures: staff; a commune officer sees the warnings routed to their
  commune (404 otherwise, existence not revealed);
* acknowledge: a commune officer of a commune the warning was routed to;
* push key / subscription: staff accounts (a subscription is bound to the caller's units);
* Atom feed and the CAP documents it links: anonymous, issued Actual/Public messages only.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from ioc.auth.deps import Caller, require_roles
from ioc.auth.principal import Principal
from ioc.clock import SystemClock
from ioc.http.errors import Problem, problem_responses
from ioc.warnings import ledger, store
from ioc.warnings.config import load_warnings_config
from ioc.warnings.model import Content

router = APIRouter(prefix="/api/warnings", tags=["warnings"])
IssuerCaller = Annotated[Principal, Depends(require_roles("operator", "leader", "admin"))]
TZ = ZoneInfo("Asia/Ho_Chi_Minh")


class WarningIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "category": "flood", "status": "Actual", "scope": "Public",
        "content": {"event": "Lũ", "headline": "Lũ trên sông Trường, di dời dân ven sông",
                    "instruction": "Di dời người dân khỏi khu vực ven sông trước 18 giờ.",
                    "severity": "Severe", "urgency": "Immediate", "certainty": "Likely",
                    "expires": "2026-10-21T18:00:00+07:00",
                    "areas": [{"description": "Trà Kót",
                               "geocodes": [{"name": "VN-ADMIN", "value": "20308"}]}]}}]})  # fmt: skip

    category: str = Field(min_length=1, max_length=64)
    status: Literal["Actual", "Exercise", "System", "Test", "Draft"] = "Actual"
    scope: Literal["Public", "Restricted"] = "Public"
    alert_id: int | None = Field(default=None, description="The alert the warning is about (never a device's, "
                                 "a citizen's report or a closed one)")  # fmt: skip
    content: Content
    note: str | None = Field(default=None, max_length=2000)


class CancelIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: str | None = Field(default=None, max_length=2000)


class PushKeys(BaseModel):
    model_config = ConfigDict(extra="forbid")
    p256dh: str = Field(min_length=40, max_length=200, pattern=r"^[A-Za-z0-9_-]+=*$")
    auth: str = Field(min_length=16, max_length=64, pattern=r"^[A-Za-z0-9_-]+=*$")


class PushSubscriptionIn(BaseModel):
    """The browser's ``PushSubscription.toJSON()``."""

    model_config = ConfigDict(extra="ignore")
    endpoint: str = Field(min_length=10, max_length=1000, pattern=r"^https?://")
    keys: PushKeys


def issuer_of(request: Request) -> store.Issuer:
    """The district's warning policy and CAP identity (loaded once per app; tests may replace it)."""
    cached = getattr(request.app.state, "warning_issuer", None)
    if cached is None:
        settings = request.app.state.ioc.settings
        cached = store.Issuer(settings.cap_sender, settings.cap_sender_name,
                              load_warnings_config(settings.warnings_config))  # fmt: skip
        request.app.state.warning_issuer = cached
    return cached


def _pool(request: Request) -> Any:
    return request.app.state.ioc.pool


def _staff(principal: Principal) -> None:
    if principal.kind != "user":
        raise Problem(403, "forbidden", "warnings are for staff accounts, not API keys")


def _refused(exc: store.WarningRefused) -> Problem:
    kind = {403: "forbidden", 409: "conflict"}.get(exc.status, "validation-error")
    errors = ([{"detail": str(exc), "location": "body", "pointer": f"#/{exc.field}", "code": "invalid"}]
              if exc.field else None)  # fmt: skip
    return Problem(exc.status, kind, str(exc), errors=errors) if errors else Problem(exc.status, kind, str(exc))


def _run_act(request: Request, warning_id: int | None, act: Any) -> Any:
    try:
        with _pool(request).connection() as conn, conn.transaction():
            return act(conn)
    except store.WarningNotFound as exc:
        raise Problem(404, "not-found", str(exc)) from exc
    except store.WarningRefused as exc:
        raise _refused(exc) from exc


@router.post("", status_code=201, summary="Draft a warning (nothing is sent until it is issued)",
             responses=problem_responses(401, 403, 422))  # fmt: skip
async def create_warning(request: Request, principal: IssuerCaller, body: WarningIn) -> dict[str, Any]:
    issuer = issuer_of(request)

    def act(conn: Any) -> dict[str, Any]:
        warning_id = store.create(conn, category=body.category, cap_status=body.status, scope=body.scope,
                                  content=body.content, alert_id=body.alert_id, by=principal.actor,
                                  now=SystemClock().now(), config=issuer.config, note=body.note)  # fmt: skip
        return {"id": warning_id, "state": "draft"}

    return await asyncio.to_thread(_run_act, request, None, act)


@router.post("/{warning_id}/issue", summary="Issue the warning (or its pending revision): the audited act",
             description="An Actual, Public warning under the `second_person: actual_public` policy is issued by "
             "a second person: the first call records the request (`awaiting_confirmation`), a call by another "
             "person issues it.", responses=problem_responses(401, 403, 404, 409, 422))  # fmt: skip
async def issue_warning(request: Request, principal: IssuerCaller, warning_id: int) -> dict[str, Any]:
    issuer = issuer_of(request)
    return await asyncio.to_thread(_run_act, request, warning_id, lambda conn: store.issue(
        conn, warning_id, by=principal.actor, now=SystemClock().now(), issuer=issuer))  # fmt: skip


@router.post("/{warning_id}/revise", summary="A new content for the warning, issued as a CAP Update by /issue",
             responses=problem_responses(401, 403, 404, 409, 422))  # fmt: skip
async def revise_warning(request: Request, principal: IssuerCaller, warning_id: int, body: Content) -> dict[str, Any]:
    def act(conn: Any) -> dict[str, Any]:
        store.revise(conn, warning_id, body, by=principal.actor, now=SystemClock().now())
        return {"id": warning_id, "pending": True}

    return await asyncio.to_thread(_run_act, request, warning_id, act)


@router.post("/{warning_id}/cancel", summary="Cancel the warning on every channel (stops loudspeakers)",
             responses=problem_responses(401, 403, 404, 409))  # fmt: skip
async def cancel_warning(request: Request, principal: IssuerCaller, warning_id: int,
                         body: CancelIn | None = None) -> dict[str, Any]:  # fmt: skip
    issuer = issuer_of(request)
    return await asyncio.to_thread(_run_act, request, warning_id, lambda conn: store.cancel(
        conn, warning_id, by=principal.actor, now=SystemClock().now(), issuer=issuer,
        note=body.note if body else None))  # fmt: skip


@router.post("/{warning_id}/acknowledge", summary="A commune's officer confirms the warning was seen",
             responses=problem_responses(401, 403, 404))  # fmt: skip
async def acknowledge_warning(request: Request, principal: Caller, warning_id: int) -> dict[str, Any]:
    _staff(principal)
    if not principal.has_role("commune_officer"):
        raise Problem(403, "forbidden", "only a commune's officer acknowledges for the commune")

    def act(conn: Any) -> dict[str, Any]:
        found = store.get(conn, warning_id, principal.visible_units())
        if found is None:
            raise store.WarningNotFound(f"warning {warning_id} does not exist")
        mine = [u for u in found["unit_ids"] if u in principal.units]
        moved = sum(store.acknowledge(conn, warning_id, u, by=principal.actor, now=SystemClock().now()) for u in mine)
        return {"acknowledged": moved}

    return await asyncio.to_thread(_run_act, request, warning_id, act)


@router.get("", summary="Warnings, newest first (a commune sees those routed to it)",
            responses=problem_responses(401, 403))  # fmt: skip
async def list_warnings(request: Request, principal: Caller,
                        state: Annotated[Literal["draft", "awaiting_confirmation", "issued", "cancelled"] | None,
                                         Query()] = None,
                        limit: Annotated[int, Query(ge=1, le=500)] = 100) -> list[dict[str, Any]]:  # fmt: skip
    _staff(principal)

    def run() -> list[dict[str, Any]]:
        with _pool(request).connection() as conn:
            return store.list_visible(conn, principal.visible_units(), state=state, limit=limit)

    return await asyncio.to_thread(run)


@router.get("/figures", summary="Issued warnings per commune (a warning over several communes counts in each)",
            responses=problem_responses(401, 403))  # fmt: skip
async def warning_figures(request: Request, principal: Caller,
                          days: Annotated[int, Query(ge=1, le=3660)] = 365) -> list[dict[str, Any]]:  # fmt: skip
    _staff(principal)

    def run() -> list[dict[str, Any]]:
        with _pool(request).connection() as conn:
            return store.figures(conn, principal.visible_units(), SystemClock().now() - timedelta(days=days))

    return await asyncio.to_thread(run)


@router.get("/feed.atom", summary="Atom feed of issued public warnings (anonymous)", response_class=Response,
            responses={200: {"content": {"application/atom+xml": {}}}})  # fmt: skip
async def atom_feed(request: Request) -> Response:
    from ioc.warnings.atom import feed, recent_public

    settings = request.app.state.ioc.settings

    def run() -> bytes:
        with _pool(request).connection() as conn:
            entries = recent_public(conn)
        base = str(request.base_url).rstrip("/")
        return feed(entries, base_url=base, title=settings.cap_sender_name, feed_id=f"urn:ioc:{settings.cap_sender}")

    return Response(await asyncio.to_thread(run), media_type="application/atom+xml")


@router.get("/messages/{message_id}/cap", summary="An issued public CAP message (anonymous)",
            response_class=Response, responses={200: {"content": {"application/cap+xml": {}}},
                                                **problem_responses(404)})  # fmt: skip
async def public_message(request: Request, message_id: int) -> Response:
    def run() -> bytes | None:
        with _pool(request).connection() as conn:
            row = conn.execute(
                "SELECT xml FROM cap_messages WHERE id = %s AND issued_at IS NOT NULL AND status = 'Actual' "
                "AND scope = 'Public'", (message_id,)
            ).fetchone()  # fmt: skip
            return bytes(row[0]) if row else None

    xml = await asyncio.to_thread(run)
    if xml is None:
        raise Problem(404, "not-found", "no such public warning message")
    return Response(xml, media_type="application/cap+xml")


@router.get("/push/key", summary="The VAPID public key phones subscribe with", responses=problem_responses(401, 403))
async def push_key(request: Request, principal: Caller) -> dict[str, str]:
    _staff(principal)
    from ioc.warnings.channels import vapid_public_key

    key = await asyncio.to_thread(vapid_public_key, request.app.state.ioc.settings.var_dir)
    return {"application_server_key": key}


@router.post("/push/subscriptions", status_code=201, summary="Receive warnings on this phone (Web Push)",
             responses=problem_responses(401, 403, 422))  # fmt: skip
async def subscribe_push(request: Request, principal: Caller, body: PushSubscriptionIn) -> dict[str, Any]:
    _staff(principal)
    units = principal.visible_units()

    def run() -> int:
        with _pool(request).connection() as conn, conn.transaction():
            row = conn.execute(
                """INSERT INTO push_subscriptions (actor, unit_ids, endpoint, p256dh, auth) VALUES (%s, %s, %s, %s, %s)
                   ON CONFLICT (endpoint) DO UPDATE SET actor = EXCLUDED.actor, unit_ids = EXCLUDED.unit_ids,
                       p256dh = EXCLUDED.p256dh, auth = EXCLUDED.auth RETURNING id""",
                (principal.actor, sorted(units) if units is not None else None, body.endpoint, body.keys.p256dh,
                 body.keys.auth),
            ).fetchone()  # fmt: skip
            return int(row[0])

    return {"id": await asyncio.to_thread(run)}


@router.get("/{warning_id}", summary="One warning with its audit trail and CAP messages",
            responses=problem_responses(401, 403, 404))  # fmt: skip
async def get_warning(request: Request, principal: Caller, warning_id: int) -> dict[str, Any]:
    _staff(principal)

    def run() -> dict[str, Any] | None:
        with _pool(request).connection() as conn:
            found = store.get(conn, warning_id, principal.visible_units())
            if found is not None:
                found["deliveries"] = ledger.deliveries(conn, warning_id)
            return found

    found = await asyncio.to_thread(run)
    if found is None:
        raise Problem(404, "not-found", f"warning {warning_id} does not exist")
    return found


@router.get("/{warning_id}/ledger", summary="The warning's delivery ledger (JSON, or CSV to keep)",
            responses={200: {"content": {"text/csv": {}}}, **problem_responses(401, 403, 404)})  # fmt: skip
async def warning_ledger(request: Request, principal: Caller, warning_id: int,
                         format: Annotated[Literal["json", "csv"], Query()] = "json") -> Any:  # fmt: skip
    _staff(principal)

    def run() -> tuple[list[dict[str, Any]], list[dict[str, Any]]] | None:
        with _pool(request).connection() as conn:
            if store.get(conn, warning_id, principal.visible_units()) is None:
                return None
            return ledger.deliveries(conn, warning_id), ledger.entries(conn, warning_id)

    found = await asyncio.to_thread(run)
    if found is None:
        raise Problem(404, "not-found", f"warning {warning_id} does not exist")
    deliveries, entries = found
    if format == "csv":
        return Response(ledger.to_csv(entries, TZ), media_type="text/csv; charset=utf-8", headers={
            "Content-Disposition": f'attachment; filename="warning-{warning_id}-ledger.csv"'})  # fmt: skip
    return {"warning_id": warning_id, "deliveries": deliveries, "entries": entries,
            "exported_at": datetime.now(TZ).isoformat()}  # fmt: skip
