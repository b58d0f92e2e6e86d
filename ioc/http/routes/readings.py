"""A device's readings over time (``GET /api/devices/{id}/readings``): the current value and a day's
chart beside a sensor's alert or incident on the wall.

Who may read: staff accounts that may see the device's unit (another commune's device answers 404,
as one that does not exist); API keys read nothing here.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, Field

from ioc.auth.deps import current_principal
from ioc.auth.principal import Principal
from ioc.clock import SystemClock
from ioc.http.errors import Problem, problem_responses
from ioc.http.state import AppState
from ioc.storage.repositories.readings import metric_series

router = APIRouter(prefix="/api/devices", tags=["devices"])
Caller = Annotated[Principal, Depends(current_principal)]


class Reading(BaseModel):
    start: datetime = Field(description="Start of the bucket")
    avg: float
    min: float
    max: float
    n: int = Field(description="Readings in the bucket")


class Readings(BaseModel):
    device_id: str
    metric: str
    latest_at: datetime | None = Field(description="When the newest reading was taken")
    latest: float | None = Field(description="The newest reading (null: none in the device's history)")
    buckets: list[Reading]


@router.get("/{device_id}/readings", response_model=Readings, summary="A device's readings of one metric over time",
            responses=problem_responses(401, 403, 404, 422))  # fmt: skip
async def device_readings(
    request: Request,
    principal: Caller,
    device_id: Annotated[str, Path(max_length=128)],
    metric: Annotated[str, Query(pattern=r"^[a-z][a-z0-9_]{0,63}$", description="e.g. water_level_cm")],
    hours: Annotated[int, Query(ge=1, le=24 * 7, description="How far back (hours)")] = 24,
    bucket_minutes: Annotated[int, Query(ge=5, le=24 * 60)] = 60,
) -> Readings:
    if principal.kind != "user":
        raise Problem(403, "forbidden", "readings are for staff accounts, not API keys")
    state: AppState = request.app.state.ioc
    end = SystemClock().now()

    def query() -> Readings:
        with state.pool.connection() as conn:
            row = conn.execute("SELECT unit_id FROM devices WHERE id = %s", (device_id,)).fetchone()
            if row is None or not principal.can_see_unit(row[0]):
                raise Problem(404, "not-found", f"no device {device_id!r}")
            series = metric_series(conn, device_id, metric, end - timedelta(hours=hours), end,
                                   bucket_minutes=bucket_minutes)  # fmt: skip
        return Readings(device_id=series.device_id, metric=series.metric, latest_at=series.latest_at,
                        latest=series.latest, buckets=[Reading(**vars(b)) for b in series.buckets])  # fmt: skip

    return await asyncio.to_thread(query)
