"""Education, health and online-information figures over HTTP, and mentions pushed by HTTP
(definitions: docs/kpi.md; the figures: :mod:`ioc.sectors.figures`)."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from ioc.auth.deps import Caller
from ioc.auth.principal import Principal
from ioc.http.errors import Problem, problem_responses
from ioc.http.periods import FromDay, ToDay, Units, check_period, staff_units
from ioc.sectors import figures
from ioc.sectors.alerts import SectorAlerts
from ioc.sectors.mentions import record_mention
from ioc.sectors.places import UnitNames
from ioc.sectors.thresholds import SectorThresholds, load_thresholds

router = APIRouter(prefix="/api/sectors", tags=["Sectors"])
MAX_DAYS = 366
WHAT = "sector figures"
_FUTURE = timedelta(minutes=5)
_names = UnitNames()
_names_lock = threading.Lock()


@lru_cache(maxsize=4)
def _thresholds(path: str | None) -> SectorThresholds:
    return load_thresholds(path) if path else SectorThresholds()


@lru_cache(maxsize=4)
def _alerts(path: str | None, rules: str | None) -> SectorAlerts | None:
    if not path:
        return None
    policies = {}
    if rules:
        from ioc.alerts.rules import load_rulebook

        policies = load_rulebook(rules).escalation_policies()
    return SectorAlerts(_thresholds(path), policies)


def _settings_paths(request: Request) -> tuple[str | None, str | None]:
    settings = request.app.state.ioc.settings
    path = str(settings.sector_thresholds) if settings.sector_thresholds else None
    rules = str(settings.alert_rules) if settings.alert_rules and Path(settings.alert_rules).exists() else None
    return path, rules


@router.get("/education", summary="School attendance per unit and day, with freshness and drill-down",
            responses=problem_responses(400, 401, 403))  # fmt: skip
async def education(
    request: Request, principal: Caller, first_day: FromDay, last_day: ToDay, unit: Units = None
) -> dict[str, Any]:
    units = staff_units(principal, unit, WHAT)
    check_period(first_day, last_day, MAX_DAYS)
    threshold = _thresholds(_settings_paths(request)[0]).education.attendance_min_pct
    now = datetime.now(UTC)

    def query() -> dict[str, Any]:
        with request.app.state.ioc.pool.connection() as conn:
            return figures.education(conn, first_day, last_day, units, now, threshold)

    return {"from": first_day, "to": last_day, "at": now, "attendance_min_pct": threshold,
            "units": await asyncio.to_thread(query)}  # fmt: skip


@router.get("/health", summary="Clinic visits, notifiable disease cases and vaccinations per unit and day",
            responses=problem_responses(400, 401, 403))  # fmt: skip
async def health(
    request: Request, principal: Caller, first_day: FromDay, last_day: ToDay, unit: Units = None
) -> dict[str, Any]:
    units = staff_units(principal, unit, WHAT)
    check_period(first_day, last_day, MAX_DAYS)
    rules = _thresholds(_settings_paths(request)[0]).health
    names = {d.id: {"name": d.name, "name_en": d.name_en} for d in rules.notifiable_diseases}
    now = datetime.now(UTC)

    def query() -> dict[str, Any]:
        with request.app.state.ioc.pool.connection() as conn:
            return figures.health(conn, first_day, last_day, units, now, names)

    return {"from": first_day, "to": last_day, "at": now, "units": await asyncio.to_thread(query)}


@router.get("/mentions", summary="Online mentions per unit: sentiment, topics, days; the monitors' freshness",
            responses=problem_responses(400, 401, 403))  # fmt: skip
async def mention_figures(
    request: Request, principal: Caller, first_day: FromDay, last_day: ToDay, unit: Units = None
) -> dict[str, Any]:
    units = staff_units(principal, unit, WHAT)
    check_period(first_day, last_day, MAX_DAYS)
    now = datetime.now(UTC)

    def query() -> tuple[dict[str, Any], list[dict[str, Any]]]:
        with request.app.state.ioc.pool.connection() as conn:
            return figures.mentions(conn, first_day, last_day, units, now)

    per_unit, monitors = await asyncio.to_thread(query)
    return {"from": first_day, "to": last_day, "at": now, "sources": monitors, "units": per_unit}


@router.get("/mentions/list", summary="The mentions behind the counts (drill-down), newest first",
            responses=problem_responses(400, 401, 403))  # fmt: skip
async def mention_list(
    request: Request,
    principal: Caller,
    first_day: FromDay,
    last_day: ToDay,
    unit: Units = None,
    sentiment: Annotated[Literal["negative", "neutral", "positive"] | None, Query()] = None,
    tag: Annotated[str | None, Query(max_length=64, description="A topic tag, e.g. giao-thong")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[dict[str, Any]]:
    units = staff_units(principal, unit, WHAT)
    check_period(first_day, last_day, MAX_DAYS)

    def query() -> list[dict[str, Any]]:
        with request.app.state.ioc.pool.connection() as conn:
            return figures.mention_list(conn, first_day, last_day, units, sentiment=sentiment, tag=tag, limit=limit)

    return await asyncio.to_thread(query)


class MentionIn(BaseModel):
    """A mention pushed by an outside monitoring system or typed in by an operator."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    source: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    url: Annotated[str, StringConstraints(max_length=2000, pattern=r"^https?://[^\s]+$")]
    published_at: AwareDatetime = Field(description="When it was published, with a UTC offset.")
    title: Annotated[str, StringConstraints(max_length=500)] = ""
    text: Annotated[str, StringConstraints(max_length=20000)] = ""
    unit_id: Annotated[str, StringConstraints(max_length=64)] | None = Field(
        default=None, description="The unit it is about; default: the commune its words name, else the district."
    )


class MentionOut(BaseModel):
    id: int | None
    url: str
    duplicate: bool
    unit_id: str
    sentiment: str
    score: float
    tags: list[str]
    phrases: list[dict[str, Any]] = Field(description="The lexicon phrases that decided the sentiment, with weights.")
    alert_id: int | None = None


@router.post("/mentions", status_code=201, response_model=MentionOut,
             summary="Record an online mention (integration API key, or district staff)",
             responses={200: {"model": MentionOut, "description": "Already recorded (same source and URL)"},
                        **problem_responses(401, 403, 422)})  # fmt: skip
async def post_mention(request: Request, principal: Caller, body: MentionIn, response: Response) -> MentionOut:
    if not (principal.has_role("integration") or principal.has_role("admin", "operator")):
        raise Problem(403, "forbidden", "mentions come from an integration API key or district operators")
    if not (body.title or body.text):
        raise Problem(422, "validation-error", "a mention needs a title or a text")
    if body.published_at > datetime.now(UTC).replace(microsecond=0) + _FUTURE:
        raise Problem(422, "validation-error", "published_at is in the future")
    path, rules = _settings_paths(request)
    alerts = _alerts(path, rules)

    def run() -> MentionOut:
        now = datetime.now(UTC)
        with request.app.state.ioc.pool.connection() as conn, conn.transaction():
            if body.unit_id is not None:
                if not conn.execute("SELECT 1 FROM units WHERE id = %s", (body.unit_id,)).fetchone():
                    raise Problem(422, "validation-error", f"unit_id {body.unit_id!r} is not a known unit")
                if not principal.can_see_unit(body.unit_id):
                    raise Problem(403, "forbidden", "this unit is outside yours")
            scope = _scope_unit(conn, principal)
            # A key bound to a commune records for that commune only: a mention naming another
            # commune must not be stored for it (issue #15).
            unit_id = body.unit_id if body.unit_id is not None or principal.is_district_wide else principal.unit_id
            with _names_lock:
                recorded = record_mention(
                    conn, url=body.url, source=body.source, title=body.title, text=body.text,
                    published_at=body.published_at, scope_unit_id=scope, unit_id=unit_id, device_id=None,
                    message_id=None, names=_names, alerts=alerts, now=now,
                )  # fmt: skip
        return MentionOut(
            id=recorded.id, url=body.url, duplicate=recorded.id is None, unit_id=recorded.unit_id,
            sentiment=recorded.verdict.label, score=recorded.verdict.normalised, tags=recorded.tags,
            phrases=[{"phrase": h.phrase, "weight": h.weight} for h in recorded.verdict.hits],
            alert_id=recorded.alert_id,
        )  # fmt: skip

    out = await asyncio.to_thread(run)
    if out.duplicate:
        response.status_code = 200
    return out


def _scope_unit(conn: Any, principal: Principal) -> str:
    """The unit whose spike a mention counts toward: the API key's unit, else the unit the mention
    monitoring integration watches, else the root of the unit tree."""
    if principal.unit_id:
        return principal.unit_id
    row = conn.execute("SELECT unit_id FROM devices WHERE kind = 'mention' AND enabled ORDER BY id LIMIT 1").fetchone()
    if row:
        return row[0]
    row = conn.execute(
        "SELECT id FROM units WHERE parent_id IS NULL AND valid_to IS NULL ORDER BY id LIMIT 1"
    ).fetchone()
    if row is None:
        raise Problem(409, "conflict", "no unit is configured")
    return row[0]
