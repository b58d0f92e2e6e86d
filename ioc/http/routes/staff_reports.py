"""Citizen reports for staff: the list, one report with the reporter's contact and photos, replies.

Visibility: district staff see every report; a commune officer sees the reports of their units
whose category is not IOC-only (reports about local officials never reach the commune). Anything
else is a 404. Status changes go through the report's alert (``/api/alerts/{id}/actions``): the
report follows it.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field

from ioc.auth.deps import Caller
from ioc.auth.principal import Principal
from ioc.http.errors import Problem, problem_responses
from ioc.http.state import AppState
from ioc.reports import codes
from ioc.reports.public import display_id, parse_id
from ioc.text import contains_pattern, nfc

router = APIRouter(prefix="/api/reports", tags=["citizen reports (staff)"])


def _state(request: Request) -> AppState:
    return request.app.state.ioc


def _scope(principal: Principal, params: list[Any]) -> str:
    if principal.kind != "user":
        raise Problem(403, "forbidden", "reports are for staff accounts, not API keys")
    units = principal.visible_units()
    if units is None:
        return "TRUE"
    params.append(list(units))
    return "(r.unit_id = ANY(%s) AND r.privacy = 'public_hidden')"


class ReportSummary(BaseModel):
    id: int
    tracking_code: str
    category: str
    status: str
    unit_id: str | None
    description: str
    created_at: datetime
    due_at: datetime | None
    overdue: bool
    alert_id: int | None
    source: str
    suggested_duplicate_of: int | None = Field(description="An open report of the same category close by: merge?")
    merged_into: int | None
    public_id: str = Field(description="How public lists show it (YC-XXXX-XXXX); show this on screens, not the "
                           "tracking code, which is the reporter's secret")  # fmt: skip


class Reply(BaseModel):
    at: datetime
    author: str
    text: str
    public: bool


class ReportDetail(ReportSummary):
    lat: float | None
    lon: float | None
    address: str | None
    reporter_name: str | None
    reporter_phone: str | None
    reporter_email: str | None
    consent: bool
    privacy: str
    rating: int | None
    rating_comment: str | None
    media: list[dict[str, Any]]
    replies: list[Reply]


_SUMMARY = ("r.id, r.tracking_code, r.category, r.status, r.unit_id, r.description, r.created_at, r.due_at,"
            " (r.due_at < now() AND r.status IN ('received', 'in_progress')), r.alert_id, r.source,"
            " r.suggested_duplicate_of, r.merged_into, r.public_id")  # fmt: skip


def _summary(row: tuple) -> dict[str, Any]:
    names = list(ReportSummary.model_fields)
    item = dict(zip(names, row, strict=True))
    item["tracking_code"] = codes.display(item["tracking_code"])
    item["public_id"] = display_id(item["public_id"])
    return item


SEARCH_HELP = ("Search the text (diacritics optional), or the tracking code (PA-XXXX-XXXX) a citizen reads out, "
               "or the public id (YC-XXXX-XXXX)")


@router.get("", response_model=list[ReportSummary], summary="Reports, newest first",
            responses=problem_responses(401, 403))  # fmt: skip
async def list_reports(
    request: Request,
    principal: Caller,
    status: Annotated[str | None, Query(description="received, in_progress, resolved, closed, rejected, open")] = None,
    category: str | None = None,
    q: Annotated[str | None, Query(max_length=200, description=SEARCH_HELP)] = None,
    before_id: Annotated[int | None, Query(description="Paging: the last id of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> list[ReportSummary]:
    params: list[Any] = []
    where = [_scope(principal, params)]
    if status == "open":
        where.append("r.status IN ('received', 'in_progress')")
    elif status:
        where.append("r.status = %s")
        params.append(status)
    if category:
        where.append("r.category = %s")
        params.append(category)
    if q:
        # A citizen on the phone reads out their tracking code: staff find the report by it (within
        # their own units, like any search), as by its public id or by words of its text.
        matches = []
        if pattern := contains_pattern(q):
            matches.append("r.description_search LIKE %s")
            params.append(pattern)
        if code := codes.normalise(q):
            matches.append("r.tracking_code = %s")
            params.append(code)
        if public := parse_id(q):
            matches.append("r.public_id = %s")
            params.append(public)
        if matches:
            where.append(f"({' OR '.join(matches)})")
    if before_id:
        where.append("r.id < %s")
        params.append(before_id)
    params.append(limit)

    def query() -> list[ReportSummary]:
        with _state(request).pool.connection() as conn:
            rows = conn.execute(f"SELECT {_SUMMARY} FROM reports r WHERE {' AND '.join(where)}"
                                " ORDER BY r.id DESC LIMIT %s", params).fetchall()  # fmt: skip
        return [ReportSummary(**_summary(r)) for r in rows]

    return await asyncio.to_thread(query)


def _visible(conn: Any, principal: Principal, report_id: int) -> tuple:
    params: list[Any] = []
    scope = _scope(principal, params)
    row = conn.execute(
        f"SELECT {_SUMMARY}, r.lat, r.lon, r.address, r.reporter_name, r.reporter_phone, r.reporter_email,"
        f" r.consent, r.privacy, r.rating, r.rating_comment FROM reports r WHERE r.id = %s AND {scope}",
        [report_id, *params],
    ).fetchone()
    if row is None:
        raise Problem(404, "not-found", f"report {report_id} does not exist")
    return row


@router.get("/{report_id}", response_model=ReportDetail, summary="One report with contact, photos and replies",
            responses=problem_responses(401, 403, 404))  # fmt: skip
async def get_report(request: Request, principal: Caller, report_id: int) -> ReportDetail:
    def query() -> ReportDetail:
        with _state(request).pool.connection() as conn:
            row = _visible(conn, principal, report_id)
            media = conn.execute(
                "SELECT id, kind, mime, width, height, bytes FROM report_media WHERE report_id = %s ORDER BY id",
                (report_id,),
            ).fetchall()
            replies = conn.execute(
                "SELECT at, author, text, public FROM report_replies WHERE report_id = %s ORDER BY id", (report_id,)
            ).fetchall()
        base = _summary(row[:14])
        extra = dict(zip(("lat", "lon", "address", "reporter_name", "reporter_phone", "reporter_email", "consent",
                          "privacy", "rating", "rating_comment"), row[14:], strict=True))  # fmt: skip
        photos = [{"id": m[0], "kind": m[1], "mime": m[2], "width": m[3], "height": m[4], "bytes": m[5],
                   "url": f"/api/reports/{report_id}/media/{m[0]}"} for m in media]  # fmt: skip
        return ReportDetail(**base, **extra, media=photos,
                            replies=[Reply(at=a, author=b, text=c, public=d) for a, b, c, d in replies])  # fmt: skip

    return await asyncio.to_thread(query)


@router.get("/{report_id}/media/{media_id}", response_class=FileResponse, summary="A photo of the report",
            responses=problem_responses(401, 403, 404))  # fmt: skip
async def report_media(request: Request, principal: Caller, report_id: int, media_id: int,
                       thumb: bool = False) -> FileResponse:  # fmt: skip
    def query() -> tuple | None:
        with _state(request).pool.connection() as conn:
            _visible(conn, principal, report_id)
            return conn.execute(
                "SELECT storage_key, thumb_key, mime FROM report_media WHERE id = %s AND report_id = %s",
                (media_id, report_id),
            ).fetchone()

    row = await asyncio.to_thread(query)
    if row is None:
        raise Problem(404, "not-found", "no such photo")
    key = row[1] if thumb and row[1] else row[0]
    path = Path(_state(request).settings.var_dir) / "media" / key
    if not path.is_file():
        raise Problem(404, "not-found", "the photo file is missing")
    return FileResponse(path, media_type="image/jpeg" if thumb else row[2], headers={"Cache-Control": "private"})


class ReplyIn(BaseModel):
    text: str = Field(min_length=1, max_length=4000)
    public: bool = Field(description="Shown to the citizen on the tracking page")


@router.post("/{report_id}/replies", response_model=Reply, status_code=201, summary="Reply to a report",
             responses=problem_responses(401, 403, 404, 422))  # fmt: skip
async def reply(request: Request, principal: Caller, report_id: int, body: ReplyIn) -> Reply:
    if not principal.has_role("admin", "operator", "commune_officer"):
        raise Problem(403, "forbidden", f"a {principal.role} may not reply to reports")
    now = datetime.now(UTC)

    def run() -> Reply:
        with _state(request).pool.connection() as conn, conn.transaction():
            _visible(conn, principal, report_id)
            conn.execute("INSERT INTO report_replies (report_id, at, author, text, public) VALUES (%s, %s, %s, %s, %s)",
                         (report_id, now, principal.actor, nfc(body.text.strip()), body.public))  # fmt: skip
            conn.execute("UPDATE reports SET updated_at = %s WHERE id = %s", (now, report_id))
        return Reply(at=now, author=principal.actor, text=nfc(body.text.strip()), public=body.public)

    return await asyncio.to_thread(run)


class MergeIn(BaseModel):
    into: int = Field(description="The report this one duplicates")


@router.post("/{report_id}/merge", status_code=204, summary="Merge a duplicate into another report",
             responses=problem_responses(401, 403, 404, 409))  # fmt: skip
async def merge_report(request: Request, principal: Caller, report_id: int, body: MergeIn) -> None:
    from ioc.reports.service import MergeRefused, merge

    if not principal.has_role("admin", "operator", "commune_officer"):
        raise Problem(403, "forbidden", f"a {principal.role} may not merge reports")

    def run() -> None:
        with _state(request).pool.connection() as conn, conn.transaction():
            _visible(conn, principal, report_id)
            _visible(conn, principal, body.into)
            try:
                merge(conn, report_id, body.into, actor=principal.actor, now=datetime.now(UTC))
            except MergeRefused as exc:
                raise Problem(409, "conflict", str(exc)) from exc

    await asyncio.to_thread(run)
