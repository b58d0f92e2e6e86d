"""The citizens' side of reports: categories, submission with photos, lookup by tracking code,
rating. No login; every route is rate-limited per client address, and nothing here ever shows
personal data (the reporter's name, phone or e-mail) or internal notes.
"""

from __future__ import annotations

import asyncio
import math
import time
from datetime import UTC, datetime
from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, File, Form, Header, Request, UploadFile
from pydantic import BaseModel, Field

from ioc.auth.ratelimit import BucketPolicy, buckets_for
from ioc.http import media_intake
from ioc.http.errors import Problem, problem_responses
from ioc.http.forms import OffLoopFormRoute
from ioc.http.guards import Refusal, bad_character
from ioc.http.state import AppState
from ioc.reports import codes, idempotency
from ioc.reports.media import StoredPhoto, StoredVideo
from ioc.reports.service import Category, Submission, UnknownCategory, public_view, submit

router = APIRouter(prefix="/api/public", tags=["citizen reports"], route_class=OffLoopFormRoute)

MAX_PHOTOS = 5
LOOKUP_LIMIT = BucketPolicy(capacity=30, refill_per_s=0.5)
LOCATOR_TTL_S = 300.0


def _state(request: Request) -> AppState:
    return request.app.state.ioc


def _submit_policy(request: Request) -> BucketPolicy:
    settings = _state(request).settings
    return BucketPolicy(capacity=settings.public_submit_burst, refill_per_s=settings.public_submit_per_min / 60)


def _take(app: Any, name: str, policy: BucketPolicy, host: str) -> int:
    """Take a token for ``host``: 0, or the seconds to wait (the store of IOC_RATE_LIMIT_STORE: in
    this process, or PostgreSQL shared by every replica)."""
    wait = buckets_for(app, f"public_{name}", policy).take(host)
    return max(1, math.ceil(wait)) if wait > 0 else 0


def _too_many(retry: int) -> Problem:
    return Problem(429, "rate-limited", f"quá nhiều yêu cầu; thử lại sau {retry} giây (too many requests)",
                   headers={"Retry-After": str(retry)}, retry_after_s=retry)  # fmt: skip


def _limit(request: Request, name: str, policy: BucketPolicy) -> None:
    if name == "submit" and request.scope.get("state", {}).get("submit_token_taken"):
        return  # taken by submit_pre_check before the body was read
    retry = _take(request.app, name, policy, request.client.host if request.client else "unknown")
    if retry:
        raise _too_many(retry)


def submit_pre_check(scope: dict[str, Any]) -> Refusal | None:
    """Run by the request guard before the body is read: an address out of tokens gets its 429
    without uploading 100 MB first. The token taken here is the route's."""
    app = scope["app"]
    settings = app.state.ioc.settings
    policy = BucketPolicy(capacity=settings.public_submit_burst, refill_per_s=settings.public_submit_per_min / 60)
    client = scope.get("client")
    retry = _take(app, "submit", policy, client[0] if client else "unknown")
    if retry:
        problem = _too_many(retry)
        return Refusal(429, "rate-limited", problem.detail, headers=problem.headers)
    scope.setdefault("state", {})["submit_token_taken"] = True
    return None


def _check_text(**fields: str | None) -> None:
    """Multipart text fields: no NUL or control characters (the JSON/form guard cannot see inside a
    multipart body); 422 naming each field."""
    errors = [
        {"detail": reason, "location": "body", "pointer": f"#/{name}", "code": "control_character"}
        for name, value in fields.items()
        if value is not None and (reason := bad_character(value, multiline=name in ("description", "text")))
    ]
    if errors:
        raise Problem(422, "validation-error", "; ".join(f"{e['pointer'][2:]}: {e['detail']}" for e in errors),
                      errors=errors)  # fmt: skip


def categories_of(request: Request) -> dict[str, Category]:
    """The district's report categories (read once per app; shared with the Open311 routes)."""
    cached = getattr(request.app.state, "report_categories", None)
    if cached is None:
        from ioc.district.loader import load_district

        district = load_district(_state(request).settings.district_config)
        cached = {c.id: Category.of(c) for c in district.report_categories}
        request.app.state.report_categories = cached
    return cached


def unit_locator_of(request: Request) -> Any:
    """Today's leaf-unit locator, rebuilt every few minutes (shared with the Open311 routes)."""
    from ioc.geo import leaf_unit_locator

    cached = getattr(request.app.state, "unit_locator", None)
    if cached is not None and time.monotonic() - cached[0] < LOCATOR_TTL_S:
        return cached[1]
    with _state(request).pool.connection() as conn:
        locator = leaf_unit_locator(conn)
    request.app.state.unit_locator = (time.monotonic(), locator)
    return locator


class CategoryOut(BaseModel):
    id: str
    name: str
    name_en: str
    sla_hours: float


@router.get("/report-categories", response_model=list[CategoryOut], summary="What a report can be about")
async def report_categories(request: Request) -> list[CategoryOut]:
    return [CategoryOut(id=c.id, name=c.name, name_en=c.name_en, sla_hours=c.sla_hours)
            for c in categories_of(request).values()]  # fmt: skip


class Receipt(BaseModel):
    tracking_code: str = Field(description="Keep it to follow the report: PA-XXXX-XXXX")
    status: str
    unit_id: str | None = Field(description="The commune it was routed to (null: the district handles it)")
    due_at: datetime
    location_from: str = Field(description="form, photo (EXIF GPS) or none")


@router.post("/reports", response_model=Receipt, status_code=201, summary="Send a report (no login)",
             description="Send `Idempotency-Key` (a random string per report) and retry with the same key after a "
             "timeout: the report is created once and every retry gets the same receipt.",
             responses=problem_responses(400, 413, 422, 429, 503))  # fmt: skip
async def send_report(
    request: Request,
    category: Annotated[str, Form(max_length=64)],
    description: Annotated[str, Form(min_length=5, max_length=4000)],
    lat: Annotated[float | None, Form(ge=-90, le=90)] = None,
    lon: Annotated[float | None, Form(ge=-180, le=180)] = None,
    address: Annotated[str | None, Form(max_length=500)] = None,
    name: Annotated[str | None, Form(max_length=200)] = None,
    phone: Annotated[str | None, Form(pattern=r"^\+?[0-9 .-]{6,20}$")] = None,
    email: Annotated[str | None, Form(max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")] = None,
    consent: Annotated[bool, Form()] = False,
    photos: Annotated[list[UploadFile] | None, File(description=f"Up to {MAX_PHOTOS} photos")] = None,
    video: Annotated[UploadFile | None, File(description="One short video (MP4 or WebM, at most 60 s)")] = None,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            pattern=r"^[A-Za-z0-9_-]{8,64}$",
            description="Same key, same report: safe to retry",
        ),
    ] = None,
) -> Receipt:
    _limit(request, "submit", _submit_policy(request))
    _check_text(category=category, description=description, address=address, name=name)
    photos = photos or []
    if len(photos) > MAX_PHOTOS:
        raise Problem(400, "validation-error", f"tối đa {MAX_PHOTOS} ảnh (at most {MAX_PHOTOS} photos)")
    categories = categories_of(request)
    if category not in categories:
        raise Problem(400, "validation-error", f"danh mục không hợp lệ: {category!r} (unknown category)")
    if idempotency_key:
        earlier = await asyncio.to_thread(_earlier_receipt, request, idempotency_key)
        if earlier is not None:
            return earlier
    stored: list[StoredPhoto] = []
    videos: list[StoredVideo] = []
    try:
        for index, upload in enumerate(photos):
            stored.append(await media_intake.prepare(request, upload, f"photos ảnh {index + 1} ({upload.filename})"))
        if video is not None and video.filename:
            videos.append(await media_intake.prepare(request, video, f"video ({video.filename})", video=True))
        await media_intake.keep(request, [*stored, *videos])
    except BaseException:
        media_intake.discard_unkept([*stored, *videos])
        raise
    submission = Submission(
        category=category, description=description, lat=lat, lon=lon, address=address,
        reporter_name=name, reporter_phone=phone, reporter_email=email, consent=consent,
    )  # fmt: skip

    def run() -> Receipt:
        locator = unit_locator_of(request)
        with _state(request).pool.connection() as conn, conn.transaction():
            accepted = submit(conn, submission, stored, categories=categories, locator=locator,
                              now=datetime.now(UTC), videos=videos)  # fmt: skip
            if idempotency_key:
                idempotency.claim(conn, accepted.report_id, idempotency_key)
        return Receipt(
            tracking_code=codes.display(accepted.tracking_code), status="received", unit_id=accepted.unit_id,
            due_at=accepted.due_at, location_from=accepted.location_from,
        )  # fmt: skip

    try:
        return await media_intake.in_upload_thread(request.app, run)
    except BaseException as exc:
        await asyncio.shield(media_intake.give_back(request, [*stored, *videos]))
        if isinstance(exc, psycopg.errors.UniqueViolation) and idempotency_key:
            earlier = await asyncio.to_thread(_earlier_receipt, request, idempotency_key)
            if earlier is not None:  # the same key won a race with this retry: one report, its receipt
                return earlier
        if isinstance(exc, UnknownCategory):  # pragma: no cover - checked above
            raise Problem(400, "validation-error", str(exc)) from exc
        raise


def _earlier_receipt(request: Request, key: str) -> Receipt | None:
    with _state(request).pool.connection() as conn:
        row = idempotency.find(conn, key)
    if row is None:
        return None
    return Receipt(tracking_code=codes.display(row["tracking_code"]), status=row["status"], unit_id=row["unit_id"],
                   due_at=row["due_at"], location_from=row["location_from"])  # fmt: skip


def _code(text: str) -> str:
    code = codes.normalise(text)
    if code is None:
        raise Problem(400, "validation-error", "mã theo dõi không hợp lệ; dạng PA-XXXX-XXXX (malformed tracking code)")
    return code


@router.get("/reports/{tracking_code}", summary="Follow a report by its tracking code",
            responses=problem_responses(400, 404, 429))  # fmt: skip
async def follow_report(request: Request, tracking_code: str) -> dict[str, Any]:
    _limit(request, "lookup", LOOKUP_LIMIT)
    code = _code(tracking_code)

    def run() -> dict[str, Any] | None:
        with _state(request).pool.connection() as conn:
            view = public_view(conn, code)
            if view is not None:
                view["history"] = status_history(conn, view["merged_into"] or code)
            return view

    view = await asyncio.to_thread(run)
    if view is None:
        raise Problem(404, "not-found", "không tìm thấy phản ánh với mã này (no report with this code)")
    view["tracking_code"] = codes.display(view["tracking_code"])
    if view["merged_into"]:
        view["merged_into"] = codes.display(view["merged_into"])
    return view


# A report's status follows its alert's (migration 0006): the same mapping, for the history.
_REPORT_STATUS = {"new": "received", "acknowledged": "in_progress", "in_progress": "in_progress",
                  "resolved": "resolved", "closed": "closed", "dismissed": "rejected"}  # fmt: skip


def status_history(conn: Any, code: str) -> list[dict[str, Any]]:
    """The report's status changes after it was received, oldest first: ``[{"at", "status"}]`` in
    report statuses. Only times and statuses (never who acted or their notes), so the citizen's
    tracking page can show the history without exposing staff's internal work."""
    rows = conn.execute(
        "SELECT a.at, a.to_status FROM alert_audit a JOIN reports r ON r.alert_id = a.alert_id"
        " WHERE r.tracking_code = %s AND a.from_status IS NOT NULL AND a.to_status IS NOT NULL"
        " AND a.from_status <> a.to_status ORDER BY a.id",
        (code,),
    ).fetchall()
    history: list[dict[str, Any]] = []
    for at, to_status in rows:
        status = _REPORT_STATUS.get(to_status)
        if status and (not history or history[-1]["status"] != status):
            history.append({"at": at, "status": status})
    return history


class Rating(BaseModel):
    rating: int = Field(ge=1, le=5)
    comment: str | None = Field(default=None, max_length=1000)


@router.post("/reports/{tracking_code}/rating", status_code=204, summary="Rate the handling, once, after resolution",
             responses=problem_responses(400, 404, 409, 429))  # fmt: skip
async def rate_report(request: Request, tracking_code: str, body: Rating) -> None:
    _limit(request, "lookup", LOOKUP_LIMIT)
    code = _code(tracking_code)

    def run() -> str:
        with _state(request).pool.connection() as conn, conn.transaction():
            row = conn.execute(
                "SELECT status, rating FROM reports WHERE tracking_code = %s FOR UPDATE", (code,)
            ).fetchone()
            if row is None:
                return "missing"
            if row[0] not in ("resolved", "closed"):
                return "open"
            if row[1] is not None:
                return "rated"
            conn.execute("UPDATE reports SET rating = %s, rating_comment = %s, updated_at = now()"
                         " WHERE tracking_code = %s", (body.rating, body.comment, code))  # fmt: skip
            return "ok"

    outcome = await asyncio.to_thread(run)
    if outcome == "missing":
        raise Problem(404, "not-found", "không tìm thấy phản ánh với mã này (no report with this code)")
    if outcome == "open":
        raise Problem(409, "conflict", "chỉ đánh giá được sau khi phản ánh đã được giải quyết (not resolved yet)")
    if outcome == "rated":
        raise Problem(409, "conflict", "phản ánh này đã được đánh giá (already rated)")


REOPEN_WINDOW_DAYS = 7


@router.post("/reports/{tracking_code}/reopen", status_code=204, summary="Not fixed: reopen a resolved report",
             description=f"Within {REOPEN_WINDOW_DAYS} days of its resolution, with what is still wrong and a photo.",
             responses=problem_responses(400, 404, 409, 429))  # fmt: skip
async def reopen_report(
    request: Request,
    tracking_code: str,
    text: Annotated[str, Form(min_length=5, max_length=2000)],
    photo: Annotated[UploadFile, File(description="A photo showing it is not fixed")],
) -> None:
    from datetime import timedelta

    from ioc.alerts.lifecycle import InvalidAction, act
    from ioc.text import nfc

    _limit(request, "submit", _submit_policy(request))
    _check_text(text=text)
    code = _code(tracking_code)
    stored = await media_intake.prepare(request, photo, f"photo ({photo.filename})")
    try:
        await media_intake.keep(request, [stored])
    except BaseException:
        media_intake.discard_unkept([stored])
        raise
    now = datetime.now(UTC)

    def run() -> str:
        with _state(request).pool.connection() as conn, conn.transaction():
            row = conn.execute("SELECT id, status, resolved_at, alert_id FROM reports WHERE tracking_code = %s"
                               " FOR UPDATE", (code,)).fetchone()  # fmt: skip
            if row is None:
                return "missing"
            report_id, status, resolved_at, alert_id = row
            if status != "resolved" or alert_id is None:
                return "not-resolved"
            if resolved_at and now - resolved_at > timedelta(days=REOPEN_WINDOW_DAYS):
                return "too-late"
            try:
                note = f"người dân báo chưa khắc phục: {nfc(text)}"
                act(conn, alert_id, "reopen", actor="citizen", now=now, note=note, photo_ref=stored.storage_key)
            except InvalidAction:
                return "not-resolved"
            conn.execute("UPDATE reports SET reopen_count = reopen_count + 1 WHERE id = %s", (report_id,))
            conn.execute(
                """INSERT INTO report_media (report_id, sha256, kind, mime, bytes, width, height, storage_key,
                                            thumb_key, role)
                   VALUES (%s, %s, 'photo', %s, %s, %s, %s, %s, %s, 'reopen')""",
                (report_id, stored.sha256, stored.mime, stored.bytes, stored.width, stored.height,
                 stored.storage_key, stored.thumb_key),
            )  # fmt: skip
            return "ok"

    try:
        outcome = await asyncio.to_thread(run)
    except BaseException:
        await asyncio.shield(media_intake.give_back(request, [stored]))
        raise
    if outcome != "ok":
        await media_intake.give_back(request, [stored])
    if outcome == "missing":
        raise Problem(404, "not-found", "không tìm thấy phản ánh với mã này (no report with this code)")
    if outcome == "not-resolved":
        raise Problem(
            409, "conflict", "chỉ mở lại được phản ánh đã giải quyết (only a resolved report can be reopened)"
        )
    if outcome == "too-late":
        raise Problem(409, "conflict", f"đã quá {REOPEN_WINDOW_DAYS} ngày kể từ khi giải quyết (too late to reopen)")
