"""Weekly shifts from config and dated overrides from the API: who is on call at a time."""

from __future__ import annotations

import threading
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Annotated, Literal

import psycopg
import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from ioc.clock import local

Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
DAYS: tuple[Day, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
Role = Literal["operator", "leader", "admin", "commune_officer"]
Clock = Annotated[str, StringConstraints(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")]


class Shift(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    unit: str | None = Field(default=None, description="The commune; none for district roles")
    role: Role
    username: str = Field(min_length=1, max_length=64)
    email: str | None = Field(default=None, max_length=200, pattern=r"^[^@\s]+@[^@\s]+$")
    days: tuple[Day, ...] = Field(min_length=1)
    start: Clock
    end: Clock = Field(description="End (local); before start: past midnight; equal to start: the whole day")

    def covers(self, at: datetime) -> bool:
        """Whether this shift holds at ``at`` (any timezone; compared in Asia/Ho_Chi_Minh)."""
        here = local(at)
        start, end = time.fromisoformat(self.start), time.fromisoformat(self.end)
        now_t = here.time()
        if start == end:
            return DAYS[here.weekday()] in self.days
        if start < end:
            return DAYS[here.weekday()] in self.days and start <= now_t < end
        # Past midnight: the shift belongs to the day it started on.
        if now_t >= start:
            return DAYS[here.weekday()] in self.days
        if now_t < end:
            return DAYS[(here - timedelta(days=1)).weekday()] in self.days
        return False


class OnCallConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    page_on_create_severity: Literal["info", "minor", "moderate", "severe", "critical"] | None = "severe"
    shifts: tuple[Shift, ...] = ()


class OnCallConfigError(ValueError):
    pass


def load_on_call(path: str | Path | None) -> OnCallConfig:
    if path is None:
        return OnCallConfig()
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        return OnCallConfig.model_validate(raw)
    except OSError as exc:
        raise OnCallConfigError(f"{path}: cannot read: {exc}") from exc
    except (yaml.YAMLError, ValidationError) as exc:
        raise OnCallConfigError(f"{path}: {exc}") from exc


_cache: dict[tuple[str, float], OnCallConfig] = {}
_lock = threading.Lock()


def configured() -> OnCallConfig:
    """The file named by ``IOC_ON_CALL`` (re-read when it changes); none: nobody is on call by shift."""
    from ioc.settings import get_settings

    path = get_settings().on_call
    if path is None or not Path(path).is_file():
        return OnCallConfig()
    key = (str(path), Path(path).stat().st_mtime)
    with _lock:
        if key not in _cache:
            _cache.clear()
            _cache[key] = load_on_call(path)
        return _cache[key]


class OnDuty(BaseModel):
    username: str
    email: str | None = None
    source: Literal["shift", "override"]


def on_duty(conn: psycopg.Connection, unit_id: str | None, role: str, at: datetime,
            config: OnCallConfig | None = None) -> list[OnDuty]:  # fmt: skip
    """Who is on call for ``role`` in ``unit_id`` (None: district) at ``at``: an override covering
    ``at`` wins over the shifts; several people may share a shift."""
    rows = conn.execute(
        """SELECT username, email FROM on_call_overrides
           WHERE role = %s AND unit_id IS NOT DISTINCT FROM %s AND starts_at <= %s AND ends_at > %s
           ORDER BY id""",
        (role, unit_id, at, at),
    ).fetchall()
    if rows:
        return [OnDuty(username=r[0], email=r[1], source="override") for r in rows]
    config = config or configured()
    return [OnDuty(username=s.username, email=s.email, source="shift")
            for s in config.shifts if s.role == role and s.unit == unit_id and s.covers(at)]  # fmt: skip


def add_override(conn: psycopg.Connection, *, unit_id: str | None, role: str, username: str, email: str | None,
                 starts_at: datetime, ends_at: datetime, by: str) -> int:  # fmt: skip
    row = conn.execute(
        """INSERT INTO on_call_overrides (unit_id, role, username, email, starts_at, ends_at, created_by)
           VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id""",
        (unit_id, role, username, email, starts_at, ends_at, by),
    ).fetchone()
    assert row is not None
    return int(row[0])
