"""Open311 GeoReport v2 at ``/open311/v2/``, so that a standard Open311 client works unchanged.

Services are the report categories; a service request is a citizen report, its id the report's
tracking code (unguessable, unlike a sequence). Every endpoint answers JSON or XML by its suffix,
errors included (``[{"code": 400, "description": "..."}]`` / ``<errors><error>...``). Posting needs
an ``api_key`` of an integration (a partner app); reading is public and rate-limited, and shows no
personal data (names, phone numbers and e-mails are never returned).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any
from xml.sax.saxutils import escape

from fastapi import APIRouter, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse, Response

from ioc.auth.ratelimit import BucketPolicy, buckets_for
from ioc.http.routes.reports import categories_of, unit_locator_of
from ioc.http.state import AppState
from ioc.reports import codes
from ioc.reports.service import Submission, submit
from ioc.text import nfc

router = APIRouter(prefix="/open311/v2", tags=["Open311 GeoReport v2"])

READ_LIMIT = BucketPolicy(capacity=60, refill_per_s=1.0)
POST_LIMIT = BucketPolicy(capacity=30, refill_per_s=0.5)
OPEN = ("received", "in_progress")
STATUS_NOTES = {"received": "Đã tiếp nhận", "in_progress": "Đang xử lý", "resolved": "Đã giải quyết",
                "closed": "Đã đóng", "rejected": "Không thuộc phạm vi xử lý"}  # fmt: skip


def _state(request: Request) -> AppState:
    return request.app.state.ioc


class Open311Error(Exception):
    def __init__(self, status: int, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.description = description


def _xml_value(name: str, value: Any) -> str:
    if value is None:
        return f"<{name}/>"
    if isinstance(value, bool):
        value = "true" if value else "false"
    if isinstance(value, datetime):
        value = value.isoformat()
    if isinstance(value, list):
        return f"<{name}>" + "".join(_xml_value(name.rstrip("s") or name, v) for v in value) + f"</{name}>"
    if isinstance(value, dict):
        return f"<{name}>" + "".join(_xml_value(k, v) for k, v in value.items()) + f"</{name}>"
    return f"<{name}>{escape(str(value))}</{name}>"


def _render(fmt: str, root: str, item: str, rows: list[dict[str, Any]] | dict[str, Any], status: int = 200) -> Response:
    if fmt == "xml":
        body = rows if isinstance(rows, list) else [rows]
        text = f'<?xml version="1.0" encoding="utf-8"?><{root}>' + "".join(_xml_value(item, r) for r in body)
        return Response(text + f"</{root}>", status_code=status, media_type="text/xml; charset=utf-8")
    return JSONResponse(jsonable_encoder(rows), status_code=status)


def _error(fmt: str, status: int, description: str) -> Response:
    return _render(fmt if fmt in ("json", "xml") else "json", "errors", "error",
                   [{"code": status, "description": description}], status)  # fmt: skip


def _check(request: Request, fmt: str, limit: BucketPolicy, key: str | None = None) -> None:
    if fmt not in ("json", "xml"):
        raise Open311Error(404, f"format {fmt!r} is not supported: use .json or .xml")
    name = f"open311_{'post' if limit is POST_LIMIT else 'read'}"
    buckets = buckets_for(request.app, name, limit)
    if buckets.take(key or (request.client.host if request.client else "unknown")) > 0:
        raise Open311Error(429, "too many requests; slow down")
    jurisdiction = request.query_params.get("jurisdiction_id")
    if jurisdiction and jurisdiction != _jurisdiction(request):
        raise Open311Error(404, f"jurisdiction_id {jurisdiction!r} not found (this is {_jurisdiction(request)!r})")


def _jurisdiction(request: Request) -> str:
    cached = getattr(request.app.state, "open311_jurisdiction", None)
    if cached is None:
        from ioc.district.loader import load_district

        cached = load_district(_state(request).settings.district_config).id
        request.app.state.open311_jurisdiction = cached
    return cached


def _service(category: Any) -> dict[str, Any]:
    return {
        "service_code": category.id, "service_name": category.name, "description": category.name_en,
        "metadata": False, "type": "realtime", "keywords": category.name_en.lower(), "group": "phản ánh",
    }  # fmt: skip


async def _guard(request: Request, fmt: str, call: Any) -> Response:
    try:
        return await call()
    except Open311Error as exc:
        return _error(fmt, exc.status, exc.description)


@router.get("/services.{fmt}", summary="Service list (the report categories)")
async def services(request: Request, fmt: str) -> Response:
    async def call() -> Response:
        _check(request, fmt, READ_LIMIT)
        return _render(fmt, "services", "service", [_service(c) for c in categories_of(request).values()])

    return await _guard(request, fmt, call)


@router.get("/services/{service_code}.{fmt}", summary="Service definition")
async def service_definition(request: Request, service_code: str, fmt: str) -> Response:
    async def call() -> Response:
        _check(request, fmt, READ_LIMIT)
        if service_code not in categories_of(request):
            raise Open311Error(404, f"service_code {service_code!r} not found")
        return _render(fmt, "service_definition", "service_definition",
                       {"service_code": service_code, "attributes": []})  # fmt: skip

    return await _guard(request, fmt, call)


def _request_row(row: tuple, names: dict[str, str]) -> dict[str, Any]:
    code, category, status, description, lat, lon, address, created, updated, due, media = row
    return {
        "service_request_id": codes.display(code),
        "status": "open" if status in OPEN else "closed",
        "status_notes": STATUS_NOTES.get(status, status),
        "service_name": names.get(category, category),
        "service_code": category,
        "description": description,
        "agency_responsible": None,
        "service_notice": None,
        "requested_datetime": created,
        "updated_datetime": updated,
        "expected_datetime": due,
        "address": address,
        "address_id": None,
        "zipcode": None,
        "lat": lat,
        "long": lon,
        "media_url": media[0] if media else None,
    }


_COLUMNS = "tracking_code, category, status, description, lat, lon, address, created_at, updated_at, due_at, media_urls"


def _date(value: str | None, name: str) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise Open311Error(400, f"{name} must be a W3C datetime, e.g. 2026-11-24T08:00:00+07:00") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@router.get("/requests.{fmt}", summary="Service requests, newest first (at most 1000, 90 days by default)")
async def list_requests(request: Request, fmt: str) -> Response:
    async def call() -> Response:
        _check(request, fmt, READ_LIMIT)
        q = request.query_params
        where, params = ["TRUE"], []
        if q.get("service_request_id"):
            wanted = [codes.normalise(x) for x in q["service_request_id"].split(",")]
            where.append("tracking_code = ANY(%s)")
            params.append([c for c in wanted if c])
        if q.get("service_code"):
            where.append("category = ANY(%s)")
            params.append(q["service_code"].split(","))
        if q.get("status"):
            statuses = set(q["status"].split(","))
            if not statuses <= {"open", "closed"}:
                raise Open311Error(400, "status must be open, closed or both")
            wanted_statuses = [s for s in (*OPEN, "resolved", "closed", "rejected")
                               if ("open" if s in OPEN else "closed") in statuses]  # fmt: skip
            where.append("status = ANY(%s)")
            params.append(wanted_statuses)
        start, end = _date(q.get("start_date"), "start_date"), _date(q.get("end_date"), "end_date")
        if start:
            where.append("created_at >= %s")
            params.append(start)
        if end:
            where.append("created_at <= %s")
            params.append(end)
        if not (start or end or q.get("service_request_id")):
            where.append("created_at >= now() - interval '90 days'")
        names = {c.id: c.name for c in categories_of(request).values()}

        def query() -> list[dict[str, Any]]:
            with _state(request).pool.connection() as conn:
                rows = conn.execute(f"SELECT {_COLUMNS} FROM reports WHERE {' AND '.join(where)}"
                                    " ORDER BY created_at DESC LIMIT 1000", params).fetchall()  # fmt: skip
            return [_request_row(r, names) for r in rows]

        return _render(fmt, "service_requests", "request", await asyncio.to_thread(query))

    return await _guard(request, fmt, call)


@router.get("/requests/{service_request_id}.{fmt}", summary="One service request")
async def get_request(request: Request, service_request_id: str, fmt: str) -> Response:
    async def call() -> Response:
        _check(request, fmt, READ_LIMIT)
        code = codes.normalise(service_request_id)
        names = {c.id: c.name for c in categories_of(request).values()}

        def query() -> list[dict[str, Any]]:
            with _state(request).pool.connection() as conn:
                rows = conn.execute(f"SELECT {_COLUMNS} FROM reports WHERE tracking_code = %s", (code,)).fetchall()
            return [_request_row(r, names) for r in rows]

        rows = await asyncio.to_thread(query) if code else []
        if not rows:
            raise Open311Error(404, f"service_request_id {service_request_id!r} not found")
        return _render(fmt, "service_requests", "request", rows)

    return await _guard(request, fmt, call)


@router.get("/tokens/{token}.{fmt}", summary="The service request id of a token")
async def token_status(request: Request, token: str, fmt: str) -> Response:
    async def call() -> Response:
        _check(request, fmt, READ_LIMIT)
        code = codes.normalise(token)
        if code is None:
            raise Open311Error(404, f"token {token!r} not found")
        # Requests are created synchronously: the token is the request id itself.
        return _render(fmt, "service_requests", "request",
                       [{"service_request_id": codes.display(code), "token": token}])  # fmt: skip

    return await _guard(request, fmt, call)


@router.post("/requests.{fmt}", summary="Create a service request (api_key of a partner app)")
async def create_request(request: Request, fmt: str) -> Response:
    async def call() -> Response:
        form = await request.form()
        api_key = str(form.get("api_key") or request.query_params.get("api_key") or "")
        _check(request, fmt, POST_LIMIT, key=api_key or None)
        from ioc.auth import repository

        def verify() -> Any:
            with _state(request).pool.connection() as conn:
                return repository.verify_api_key(conn, api_key)

        principal = await asyncio.to_thread(verify) if api_key else None
        if principal is None or principal.role != "integration":
            raise Open311Error(403, "a valid api_key of a partner application is required")
        code = str(form.get("service_code") or "")
        categories = categories_of(request)
        if code not in categories:
            raise Open311Error(400, f"service_code {code!r} not found" if code else "service_code is required")
        try:
            lat = float(form["lat"]) if form.get("lat") else None
            lon = float(form["long"]) if form.get("long") else None
        except ValueError as exc:
            raise Open311Error(400, "lat and long must be decimal degrees") from exc
        address = str(form.get("address_string") or "") or None
        if (lat is None or lon is None) and not address:
            raise Open311Error(400, "a location is required: lat and long, or address_string")
        if lat is not None and not (-90 <= lat <= 90 and -180 <= (lon or 0) <= 180):
            raise Open311Error(400, "lat/long out of range")
        description = nfc(str(form.get("description") or "")).strip()
        if not description or len(description) > 4000:
            raise Open311Error(400, "description is required (at most 4000 characters)")
        media = str(form.get("media_url") or "")
        if media and not media.startswith("https://"):
            raise Open311Error(400, "media_url must be an https URL")
        name = " ".join(str(form.get(k) or "") for k in ("first_name", "last_name")).strip() or None
        attributes = {k[len("attribute[") : -1]: str(v) for k, v in form.multi_items() if k.startswith("attribute[")}
        submission = Submission(category=code, description=description, lat=lat, lon=lon, address=address,
                                reporter_name=name, reporter_phone=str(form.get("phone") or "") or None,
                                reporter_email=str(form.get("email") or "") or None, source="open311",
                                source_ref=None)  # fmt: skip

        def run() -> str:
            locator = unit_locator_of(request)
            with _state(request).pool.connection() as conn, conn.transaction():
                accepted = submit(conn, submission, [], categories=categories, locator=locator, now=datetime.now(UTC))
                from psycopg.types.json import Jsonb

                conn.execute("UPDATE reports SET media_urls = %s, attributes = %s WHERE id = %s",
                             ([media] if media else [], Jsonb(attributes), accepted.report_id))  # fmt: skip
            return accepted.tracking_code

        tracking = await asyncio.to_thread(run)
        return _render(fmt, "service_requests", "request",
                       [{"service_request_id": codes.display(tracking), "service_notice": None,
                         "account_id": None}])  # fmt: skip

    return await _guard(request, fmt, call)
