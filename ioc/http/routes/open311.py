"""Open311 GeoReport v2 at ``/open311/v2/``, so that a standard Open311 client works unchanged.

Services are the report categories; a service request is a citizen report, its id the report's
public id (``YC-XXXX-XXXX``); the tracking code stays the reporter's secret and is never shown here.
Lists follow each category's privacy level (ioc.reports.public, docs/open311.md). Every endpoint
answers JSON or XML by its suffix, errors included (``[{"code": 400, "description": "..."}]`` /
``<errors><error>...``). Posting needs an ``api_key`` of an integration (a partner app); reading is
public and rate-limited, and shows no personal data (names, phone numbers and e-mails never).
"""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime
from typing import Any
from xml.sax.saxutils import escape

from fastapi import APIRouter, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse, Response

from ioc.auth.ratelimit import BucketPolicy, buckets_for
from ioc.http.forms import OffLoopFormRoute
from ioc.http.routes.reports import categories_of, unit_locator_of
from ioc.http.state import AppState
from ioc.reports import public
from ioc.reports.service import Submission, submit
from ioc.text import nfc

router = APIRouter(prefix="/open311/v2", tags=["Open311 GeoReport v2"], route_class=OffLoopFormRoute)
#: The GeoReport v2 service discovery document lives beside the versioned endpoint.
discovery_router = APIRouter(prefix="/open311", tags=["Open311 GeoReport v2"])

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


def _check(request: Request, fmt: str, limit: BucketPolicy, key: str | None = None, jurisdiction: str = "") -> None:
    if fmt not in ("json", "xml"):
        raise Open311Error(404, f"format {fmt!r} is not supported: use .json or .xml")
    name = f"open311_{'post' if limit is POST_LIMIT else 'read'}"
    buckets = buckets_for(request.app, name, limit)
    if buckets.take(key or (request.client.host if request.client else "unknown")) > 0:
        raise Open311Error(429, "too many requests; slow down")
    jurisdiction = jurisdiction or request.query_params.get("jurisdiction_id") or ""
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
        definition = {"service_code": service_code, "attributes": []}
        if fmt == "xml":  # the spec's shape: one <service_definition> root holding the fields
            body = "".join(_xml_value(k, v) for k, v in definition.items())
            return Response(f'<?xml version="1.0" encoding="utf-8"?><service_definition>{body}</service_definition>',
                            media_type="text/xml; charset=utf-8")  # fmt: skip
        return _render(fmt, "service_definition", "service_definition", definition)

    return await _guard(request, fmt, call)


def _request_row(view: dict[str, Any]) -> dict[str, Any]:
    """A public view (:mod:`ioc.reports.public`) in GeoReport v2's fields: the public id, never the
    tracking code; no contact data; text and place as the category's privacy level allows."""
    return {
        "service_request_id": public.display_id(view["public_id"]),
        "status": "open" if view["open"] else "closed",
        "status_notes": STATUS_NOTES.get(view["status"], view["status"]),
        "service_name": view["service_name"],
        "service_code": view["service_code"],
        "description": view["description"],
        "agency_responsible": None,
        "service_notice": None,
        "requested_datetime": view["created_at"],
        "updated_datetime": view["updated_at"],
        "expected_datetime": view["due_at"],
        "address": view["address"],
        "address_id": None,
        "zipcode": None,
        "lat": view["lat"],
        "long": view["lon"],
        "media_url": view["media_url"],
    }


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
        filters = public.Filters()
        if q.get("service_request_id"):  # overrides every other filter (GeoReport v2)
            wanted = [public.parse_id(x) for x in q["service_request_id"].split(",")]
            filters = public.Filters(public_ids=[w for w in wanted if w])
        else:
            statuses = None
            if q.get("status"):
                asked = set(q["status"].split(","))
                if not asked <= {"open", "closed"}:
                    raise Open311Error(400, "status must be open, closed or both")
                statuses = [s for s in (*OPEN, "resolved", "closed", "rejected")
                            if ("open" if s in OPEN else "closed") in asked]  # fmt: skip
            filters = public.Filters(
                service_codes=q["service_code"].split(",") if q.get("service_code") else None, statuses=statuses,
                start=_date(q.get("start_date"), "start_date"), end=_date(q.get("end_date"), "end_date"),
            )  # fmt: skip
        categories = categories_of(request)

        def query() -> list[dict[str, Any]]:
            with _state(request).pool.connection() as conn:
                return [_request_row(v) for v in public.requests(conn, filters, categories)]

        return _render(fmt, "service_requests", "request", await asyncio.to_thread(query))

    return await _guard(request, fmt, call)


async def _one(request: Request, text: str) -> list[dict[str, Any]]:
    public_id = public.parse_id(text)
    if public_id is None:
        return []
    categories = categories_of(request)

    def query() -> list[dict[str, Any]]:
        with _state(request).pool.connection() as conn:
            return [_request_row(v) for v in public.requests(conn, public.Filters(public_ids=[public_id]), categories)]

    return await asyncio.to_thread(query)


@router.get("/requests/{service_request_id}.{fmt}", summary="One service request")
async def get_request(request: Request, service_request_id: str, fmt: str) -> Response:
    async def call() -> Response:
        _check(request, fmt, READ_LIMIT)
        rows = await _one(request, service_request_id)
        if not rows:
            raise Open311Error(404, f"service_request_id {service_request_id!r} not found")
        return _render(fmt, "service_requests", "request", rows)

    return await _guard(request, fmt, call)


@router.get("/tokens/{token}.{fmt}", summary="The service request id of a token")
async def token_status(request: Request, token: str, fmt: str) -> Response:
    async def call() -> Response:
        _check(request, fmt, READ_LIMIT)
        # Requests are created synchronously: a token is the request's public id; unknown ones are 404.
        rows = await _one(request, token)
        if not rows:
            raise Open311Error(404, f"token {token!r} not found")
        return _render(fmt, "service_requests", "request",
                       [{"service_request_id": rows[0]["service_request_id"], "token": token}])  # fmt: skip

    return await _guard(request, fmt, call)


_ATTRIBUTE = re.compile(r"^attribute\[([^\[\]]{1,100})\](\[\])?$")


def _attributes(form: Any) -> dict[str, Any]:
    """``attribute[code]=v`` as a string, ``attribute[code][]=v1&attribute[code][]=v2`` kept whole as a list."""
    found: dict[str, Any] = {}
    for key, value in form.multi_items():
        match = _ATTRIBUTE.match(key)
        if match is None:
            continue
        code, many = match.group(1), match.group(2)
        if many:
            found.setdefault(code, [])
            if isinstance(found[code], list):
                found[code].append(str(value))
        else:
            found[code] = str(value)
    return found


@router.post("/requests.{fmt}", summary="Create a service request (api_key of a partner app)")
async def create_request(request: Request, fmt: str) -> Response:
    async def call() -> Response:
        form = await request.form()
        api_key = str(form.get("api_key") or request.query_params.get("api_key") or "")
        _check(request, fmt, POST_LIMIT, key=api_key or None, jurisdiction=str(form.get("jurisdiction_id") or ""))
        from ioc.auth import repository

        def verify() -> Any:
            with _state(request).pool.connection() as conn:
                return repository.verify_api_key(conn, api_key)

        principal = await asyncio.to_thread(verify) if api_key else None
        if principal is None or principal.role != "integration":
            raise Open311Error(403, "a valid api_key of a partner application is required")
        code = str(form.get("service_code") or "")
        categories = categories_of(request)
        if not code:
            raise Open311Error(400, "service_code is required")
        if code not in categories:
            raise Open311Error(404, f"service_code {code!r} not found")
        try:
            lat = float(form["lat"]) if form.get("lat") else None
            lon = float(form["long"]) if form.get("long") else None
        except ValueError as exc:
            raise Open311Error(400, "lat and long must be decimal degrees") from exc
        address = str(form.get("address_string") or "").strip()[:500] or None
        address_id = str(form.get("address_id") or "").strip()[:200] or None
        if (lat is None or lon is None) and not address and not address_id:
            raise Open311Error(400, "a location is required: lat and long, address_string or address_id")
        if lat is not None and not (-90 <= lat <= 90 and -180 <= (lon or 0) <= 180):
            raise Open311Error(400, "lat/long out of range")
        # GeoReport v2: description is optional (at most 4,000 characters); media_url any URL.
        description = nfc(str(form.get("description") or "")).strip()
        if len(description) > 4000:
            raise Open311Error(400, "description has at most 4000 characters")
        media = str(form.get("media_url") or "").strip()
        if media and (not re.fullmatch(r"https?://[^\s<>\"]{1,2000}", media)):
            raise Open311Error(400, "media_url must be an http(s) URL")
        name = " ".join(str(form.get(k) or "") for k in ("first_name", "last_name")).strip() or None
        attributes = _attributes(form)
        if address_id:
            attributes["address_id"] = address_id
        submission = Submission(category=code, description=description, lat=lat, lon=lon, address=address,
                                reporter_name=name, reporter_phone=str(form.get("phone") or "") or None,
                                reporter_email=str(form.get("email") or "") or None, source="open311",
                                source_ref=None)  # fmt: skip

        def run() -> str:
            locator = unit_locator_of(request)
            with _state(request).pool.connection() as conn, conn.transaction():
                accepted = submit(conn, submission, [], categories=categories, locator=locator, now=datetime.now(UTC))
                # A partner app bound to a commune reports for that commune only (rolled back otherwise).
                bound = principal.unit_id and not principal.is_district_wide
                if bound and accepted.unit_id not in repository.units_in_scope(conn, principal.unit_id):
                    raise Open311Error(403, "this location is outside the unit of your api_key")
                from psycopg.types.json import Jsonb

                conn.execute("UPDATE reports SET media_urls = %s, attributes = %s WHERE id = %s",
                             ([media] if media else [], Jsonb(attributes), accepted.report_id))  # fmt: skip
                return public.public_id_of(conn, accepted.report_id)

        public_id = await asyncio.to_thread(run)
        # The public id: the tracking code stays the reporter's secret and is never sent to partner apps.
        return _render(fmt, "service_requests", "request",
                       [{"service_request_id": public.display_id(public_id), "service_notice": None,
                         "account_id": None}])  # fmt: skip

    return await _guard(request, fmt, call)


@discovery_router.get("/discovery.{fmt}", summary="GeoReport v2 service discovery")
async def discovery(request: Request, fmt: str) -> Response:
    """Where the endpoint is and what it speaks (http://wiki.open311.org/Service_Discovery)."""

    async def call() -> Response:
        _check(request, fmt, READ_LIMIT)
        base = str(request.base_url).rstrip("/")
        document = {
            "changeset": "2026-12-06T00:00:00+07:00",
            "contact": "Trung tâm điều hành thông minh (IOC) – " + _jurisdiction(request),
            "key_service": "api_key: ask the IOC administrators for an integration key",
            "endpoints": [{"specification": "http://wiki.open311.org/GeoReport_v2", "url": f"{base}/open311/v2",
                           "changeset": "2026-12-06T00:00:00+07:00", "type": "production",
                           "formats": ["application/json", "text/xml"]}],
        }  # fmt: skip
        if fmt == "xml":
            endpoint = document["endpoints"][0]
            formats = "".join(f"<format>{f}</format>" for f in endpoint["formats"])
            inner = "".join(_xml_value(k, v) for k, v in endpoint.items() if k != "formats")
            head = "".join(_xml_value(k, v) for k, v in document.items() if k != "endpoints")
            return Response(f'<?xml version="1.0" encoding="utf-8"?><discovery>{head}<endpoints><endpoint>{inner}'
                            f"<formats>{formats}</formats></endpoint></endpoints></discovery>",
                            media_type="text/xml; charset=utf-8")  # fmt: skip
        return JSONResponse(document)

    return await _guard(request, fmt, call)
