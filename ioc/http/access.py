"""Who may call each route, declared once, in one table, and checked by a test that walks the app.

Every route of the app (HTTP routes, websockets and static mounts) has exactly one entry in
:data:`RULES`, keyed ``"METHOD /path"`` (``"WS /path"`` for a websocket, ``"MOUNT /path"`` for a
static mount). The route itself still enforces its rule with the usual dependencies (``Caller``,
``require_roles(...)``, ``require_unit_visible(...)``); this table is the declaration that
``tests/test_access_routes.py`` holds those dependencies to:

* a route missing from the table fails the test (so a new route cannot ship undeclared);
* ``public`` routes answer without credentials; every other route answers 401 without them;
* ``roles(...)`` routes answer 403 (or 404 when the record is hidden) to every other role;
* ``unit=...`` routes touch records of a commune: the test calls them as the officer of Trà Kót
  against Trà Sơn's records (ids in the path, units in the body, lists) and counts leaks: none allowed.

Adding a route: add one line here next to the others of its module, e.g.::

    "GET /api/warnings/{warning_id}": roles("operator", "leader", "commune_officer", unit="path warning_id"),

``unit`` says how the route finds the commune whose records it touches (``"path <param>"``,
``"body <field>"``, ``"list"`` for lists filtered to the caller's units, ``"stream"`` for live
streams). When it is set, also add a probe for the route in the test's ``PROBES`` table (how to
point it at Trà Sơn's record). See docs/http-api.md, "Access rules".
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

STAFF = ("admin", "operator", "leader", "commune_officer")
DISTRICT = ("admin", "operator", "leader")


@dataclass(frozen=True)
class Rule:
    """One route's access rule. ``audience`` is ``public``, ``authenticated`` (any staff account or
    API key) or ``roles`` (only ``roles``); ``unit`` how it finds the commune of the records it
    touches (None: it touches no commune's records, or only public ones)."""

    audience: str
    roles: tuple[str, ...] = ()
    unit: str | None = None
    note: str = ""


def public(note: str = "") -> Rule:
    """Anyone, no credentials (the route must not reveal private data of any commune)."""
    return Rule("public", note=note)


def authenticated(*, unit: str | None = None, note: str = "") -> Rule:
    """Any authenticated caller: staff account or API key."""
    return Rule("authenticated", unit=unit, note=note)


def roles(*names: str, unit: str | None = None, note: str = "") -> Rule:
    """Only callers with one of ``names`` (staff roles, ``device``, ``integration``)."""
    return Rule("roles", roles=tuple(names), unit=unit, note=note)


RULES: dict[str, Rule] = {
    # -- health, docs, pages --------------------------------------------------------------------------
    "GET /healthz": public(),
    "GET /readyz": public(),
    "GET /metrics": public("process metrics only, no records"),
    "GET /openapi.json": public(),
    "HEAD /openapi.json": public(),
    "GET /docs": public(),
    "GET /redoc": public(),
    "MOUNT /vendor/apidocs": public("static assets"),
    "MOUNT /vendor/apidocs-init": public("static assets"),
    "MOUNT /vendor/leaflet": public("static assets"),
    "MOUNT ": public("the pages (static files; their data comes from the API)"),
    "GET /api/ui-config": public(),
    # -- auth and users -------------------------------------------------------------------------------
    "POST /api/auth/login": public("throttled per account and address"),
    "POST /api/auth/refresh": public("needs a refresh token"),
    "POST /api/auth/logout": public("needs a refresh or access token"),
    "GET /api/auth/me": authenticated(),
    "POST /api/auth/password": roles(*STAFF),
    "GET /api/users": roles("admin"),
    "POST /api/users": roles("admin"),
    "GET /api/users/{username}": roles("admin"),
    "POST /api/users/{username}/disable": roles("admin"),
    "POST /api/users/{username}/enable": roles("admin"),
    "PUT /api/users/{username}/password": roles("admin"),
    "GET /api/api-keys": roles("admin"),
    "POST /api/api-keys": roles("admin"),
    "DELETE /api/api-keys/{name}": roles("admin"),
    # -- alerts ---------------------------------------------------------------------------------------
    "GET /api/alerts": roles(*STAFF, unit="list"),
    "GET /api/alerts/changes": roles(*STAFF, unit="list"),
    "GET /api/alerts/{alert_id}": roles(*STAFF, unit="path alert_id"),
    "POST /api/alerts/{alert_id}/actions": roles(*STAFF, unit="path alert_id; body photo_ref of this alert"),
    "GET /api/alerts/{alert_id}/cap": roles(*STAFF, unit="path alert_id"),
    "POST /api/cap": roles("admin", "operator", "integration", unit="body CAP area (unit-bound keys: theirs)"),
    "POST /api/alerts/{alert_id}/photos": roles(*STAFF, unit="path alert_id"),
    "GET /api/alerts/{alert_id}/photos/{sha256}": roles(*STAFF, unit="path alert_id + photo uploaded for it"),
    "WS /ws": roles(*STAFF, unit="stream"),
    # -- places, devices, cameras, evidence -----------------------------------------------------------
    "GET /api/units": public("unit boundaries are public"),
    "GET /api/devices": roles(*STAFF, unit="list"),
    "GET /api/cameras/{camera_id}/latest.jpg": roles(*STAFF, unit="path camera_id"),
    "GET /api/cameras/{camera_id}/mjpeg": roles(*STAFF, unit="path camera_id (stream)"),
    "GET /api/media/{ref:path}": roles(*STAFF, unit="path ref (camera, or an alert the caller sees); "
                                                 "snapshots, crops and evidence clips"),
    # -- citizen reports ------------------------------------------------------------------------------
    "GET /api/public/report-categories": public(),
    "POST /api/public/reports": public("rate-limited per address"),
    "GET /api/public/reports/{tracking_code}": public("the reporter's secret code"),
    "POST /api/public/reports/{tracking_code}/rating": public("the reporter's secret code"),
    "POST /api/public/reports/{tracking_code}/reopen": public("the reporter's secret code"),
    "GET /api/reports": roles(*STAFF, unit="list"),
    "GET /api/reports/{report_id}": roles(*STAFF, unit="path report_id"),
    "GET /api/reports/{report_id}/media/{media_id}": roles(*STAFF, unit="path report_id"),
    "POST /api/reports/{report_id}/replies": roles("admin", "operator", "commune_officer", unit="path report_id"),
    "POST /api/reports/{report_id}/merge": roles("admin", "operator", "commune_officer", unit="path, body into"),
    "GET /open311/v2/services.{fmt}": public(),
    "GET /open311/v2/services/{service_code}.{fmt}": public(),
    "GET /open311/v2/requests.{fmt}": public("privacy levels applied: no contact, codes or sensitive text"),
    "GET /open311/v2/requests/{service_request_id}.{fmt}": public("privacy levels applied"),
    "GET /open311/v2/tokens/{token}.{fmt}": public(),
    "POST /open311/v2/requests.{fmt}": public("Open311 api_key of a partner app, rate-limited"),
    "GET /open311/discovery.{fmt}": public(),
    # -- KPIs and sectors -----------------------------------------------------------------------------
    "GET /api/kpi/dossiers": roles(*STAFF, unit="list"),
    "GET /api/kpi/dossiers/list": roles(*STAFF, unit="list"),
    "GET /api/kpi/dossiers/due": roles(*STAFF, unit="list"),
    "GET /api/kpi/766": roles(*STAFF, unit="list"),
    "GET /api/kpi/report": roles(*STAFF, unit="list"),
    # -- public warnings ([warning-chain]) --------------------------------------------------------------
    "POST /api/warnings": roles(*DISTRICT, note="drafting sends nothing"),
    "POST /api/warnings/{warning_id}/issue": roles(*DISTRICT, note="a second person for Actual/Public"),
    "POST /api/warnings/{warning_id}/revise": roles(*DISTRICT),
    "POST /api/warnings/{warning_id}/cancel": roles(*DISTRICT),
    "POST /api/warnings/{warning_id}/acknowledge": roles(*STAFF, unit="path warning_id"),
    "GET /api/warnings": roles(*STAFF, unit="list"),
    "GET /api/warnings/figures": roles(*STAFF, unit="list"),
    "GET /api/warnings/{warning_id}": roles(*STAFF, unit="path warning_id"),
    "GET /api/warnings/{warning_id}/ledger": roles(*STAFF, unit="path warning_id"),
    "GET /api/warnings/push/key": roles(*STAFF),
    "POST /api/warnings/push/subscriptions": roles(*STAFF),
    "GET /api/warnings/feed.atom": public("issued Actual/Public warnings only"),
    "GET /api/warnings/messages/{message_id}/cap": public("issued Actual/Public messages only"),
    # -- on call ------------------------------------------------------------------------------------
    "GET /api/on-call": roles(*STAFF, unit="list", note="a commune officer only for their own units (404)"),
    "POST /api/on-call/overrides": roles("admin", "operator"),
    "GET /api/on-call/pages/mine": roles(*STAFF, note="the caller's own pages"),
    "POST /api/on-call/pages/{page_id}/acknowledge": roles(*STAFF, note="only the page's own recipient (404)"),
    # -- incidents and readings -----------------------------------------------------------------------
    "GET /api/incidents": roles(*STAFF, unit="list"),
    "GET /api/incidents/{incident_id}": roles(*STAFF, unit="path incident_id"),
    "POST /api/incidents/{incident_id}/actions": roles(*STAFF, unit="path incident_id"),
    "GET /api/devices/{device_id}/readings": roles(*STAFF, unit="path device_id"),
    "GET /api/sectors/education": roles(*STAFF, unit="list"),
    "GET /api/sectors/health": roles(*STAFF, unit="list"),
    "GET /api/sectors/mentions": roles(*STAFF, unit="list"),
    "GET /api/sectors/mentions/list": roles(*STAFF, unit="list"),
    "POST /api/sectors/mentions": roles("admin", "operator", "integration", unit="body unit_id, else the key's unit"),
    # -- radio ----------------------------------------------------------------------------------------
    "GET /api/radio/status": roles(*STAFF, unit="list"),
    "GET /api/radio/clusters": roles(*STAFF, unit="list"),
    "POST /api/radio/clusters/{cluster_id}/commands": roles("operator", "admin"),
    "GET /api/radio/commands/{correlation_id}": roles(*STAFF, unit="path correlation_id"),
    "POST /api/radio/audio": roles("operator", "admin"),
    "POST /api/radio/tts": roles("operator", "admin"),
    "GET /api/radio/audio/{audio_id}/file": roles(*STAFF, "device", unit="path audio_id"),
    "POST /api/radio/broadcasts": roles("operator", "admin"),
    "GET /api/radio/broadcasts": roles(*STAFF, unit="list"),
    "GET /api/radio/broadcasts/{broadcast_id}": roles(*STAFF, unit="path broadcast_id"),
    "POST /api/radio/broadcasts/{broadcast_id}/confirm": roles("operator", "leader", "admin"),
    "POST /api/radio/broadcasts/{broadcast_id}/stop": roles("operator", "admin"),
    "GET /api/radio/broadcasts/{broadcast_id}/proof": roles(*STAFF, unit="path broadcast_id"),
    "GET /api/radio/schedules": roles(*STAFF, unit="list"),
    "GET /api/radio/schedules/{schedule_id}": roles(*STAFF, unit="path schedule_id"),
    "POST /api/radio/schedules": roles("operator", "admin"),
    "PUT /api/radio/schedules/{schedule_id}": roles("operator", "admin"),
    "DELETE /api/radio/schedules/{schedule_id}": roles("operator", "admin"),
}


def route_keys(app: Any) -> Iterator[tuple[str, Any]]:
    """Every route of ``app`` as ``("METHOD /path", route)``: HTTP routes (one key per method),
    ``WS /path`` for websockets, ``MOUNT /path`` for mounts. Walks included routers (FastAPI keeps
    them nested) so nothing hides from the check."""
    from fastapi.routing import APIWebSocketRoute
    from starlette.routing import Mount, Route, WebSocketRoute

    for route in app.routes:
        contexts = getattr(route, "effective_route_contexts", None)
        if contexts is not None:
            for ctx in contexts():
                original = ctx.original_route
                path = ctx.path or original.path  # websocket contexts leave ``path`` empty
                if isinstance(original, APIWebSocketRoute | WebSocketRoute):
                    yield f"WS {path}", original
                else:
                    for method in sorted(getattr(original, "methods", None) or ()):
                        yield f"{method} {path}", original
        elif isinstance(route, APIWebSocketRoute | WebSocketRoute):
            yield f"WS {route.path}", route
        elif isinstance(route, Mount):
            yield f"MOUNT {route.path}", route
        elif isinstance(route, Route):
            for method in sorted(route.methods or ()):
                yield f"{method} {route.path}", route
        else:  # an unknown kind of route is reported undeclared rather than skipped
            yield f"UNKNOWN {getattr(route, 'path', repr(route))}", route


def undeclared(app: Any) -> list[str]:
    """The routes of ``app`` without a rule in :data:`RULES`."""
    return sorted({key for key, _ in route_keys(app) if key not in RULES})


def rule_for(key: str) -> Rule:
    return RULES[key]
