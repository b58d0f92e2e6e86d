"""Units as GeoJSON (the wall's map), devices with their presence, and camera evidence images.

Unit boundaries are public information (the citizen page uses them to place a report), so
``/api/units`` needs no login. Devices and evidence are for staff, within their units; an evidence
image is served only through this route, after the check, never from a guessable static path.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, Response, StreamingResponse
from pydantic import BaseModel

from ioc.auth.deps import STREAM_RECHECK_S, Caller
from ioc.auth.principal import Principal
from ioc.http.errors import Problem, problem_responses
from ioc.http.state import AppState
from ioc.http.units import UnitQuery

router = APIRouter(prefix="/api", tags=["places"])
MJPEG_POLL_S = 0.25

_EVIDENCE_REF = re.compile(
    r"^evidence/(?P<camera>[a-z0-9]+(?:-[a-z0-9]+)*)/[0-9a-f]{2}/[0-9a-f]{64}(?P<kind>-crop\.jpg|\.jpg|-clip\.webm)$"
)


def _state(request: Request) -> AppState:
    return request.app.state.ioc


@router.get("/units", summary="Current units as a GeoJSON FeatureCollection (public)")
async def units_geojson(request: Request) -> dict[str, Any]:
    def query() -> list[tuple]:
        with _state(request).pool.connection() as conn:
            return conn.execute(
                "SELECT id, name, level, parent_id, geometry, properties FROM units"
                " WHERE valid_to IS NULL OR valid_to > current_date ORDER BY id"
            ).fetchall()

    features = [
        {
            "type": "Feature",
            "id": unit_id,
            "geometry": geometry,
            "properties": {
                "id": unit_id,
                "name": name,
                "name_en": (props or {}).get("name_en"),
                "level": level,
                "parent_id": parent,
                "synthetic": bool((props or {}).get("synthetic")),
            },  # fmt: skip
        }
        for unit_id, name, level, parent, geometry, props in await asyncio.to_thread(query)
    ]
    return {"type": "FeatureCollection", "features": features}


class Device(BaseModel):
    id: str
    kind: str
    unit_id: str
    name: str
    lat: float | None
    lon: float | None
    enabled: bool
    state: str
    last_seen: Any
    changed_at: Any
    reason: str | None
    status: dict[str, Any]


def _require_staff(principal: Principal) -> None:
    if principal.kind != "user":
        raise Problem(403, "forbidden", "device lists are for staff accounts, not API keys")


@router.get("/devices", response_model=list[Device], summary="Devices with their presence",
            responses=problem_responses(401, 403))  # fmt: skip
async def list_devices(
    request: Request,
    principal: Caller,
    kind: Annotated[str | None, Query(description="camera, radio, sensor, ...")] = None,
    unit: UnitQuery = None,
    state: Annotated[str | None, Query(description="online, offline or unknown")] = None,
) -> list[Device]:
    _require_staff(principal)
    where, params = ["TRUE"], []
    units = principal.visible_units()
    if units is not None:
        where.append("d.unit_id = ANY(%s)")
        params.append(list(units))
    for column, value in (("d.kind", kind), ("d.unit_id", unit), ("coalesce(p.state, 'unknown')", state)):
        if value:
            where.append(f"{column} = %s")
            params.append(value)

    def query() -> list[Device]:
        with _state(request).pool.connection() as conn:
            rows = conn.execute(
                "SELECT d.id, d.kind, d.unit_id, d.name, d.lat, d.lon, d.enabled, coalesce(p.state, 'unknown'),"
                " p.last_seen, p.changed_at, p.reason, coalesce(p.status, '{}'::jsonb)"
                " FROM devices d LEFT JOIN device_presence p ON p.device_id = d.id"
                f" WHERE {' AND '.join(where)} ORDER BY d.unit_id, d.kind, d.id",
                params,
            ).fetchall()
        names = list(Device.model_fields)
        return [Device(**dict(zip(names, row, strict=True))) for row in rows]

    return await asyncio.to_thread(query)


async def _camera_viewer(request: Request, camera_id: str, access_token: str | None) -> tuple[Path, Callable]:
    """The staff caller (header, or ``?access_token=`` for an ``<img>`` tag) may see the camera: its
    live frame's path, and a check that the caller's credentials still hold (None) or why not, for
    streams. 404 for a camera outside the caller's units, as for one that does not exist."""
    from ioc.auth.deps import AuthFailure, _credentials, _pool, auth_context, resolve_principal

    token, api_key = _credentials(request.headers)

    def principal() -> Any:
        return resolve_principal(auth_context(request), _pool(request.app),
                                 access_token=token or access_token, api_key=api_key)  # fmt: skip

    def check() -> str | None:
        try:
            caller = principal()
        except AuthFailure as failure:
            raise Problem(401, failure.slug, failure.reason) from None
        _require_staff(caller)
        with _state(request).pool.connection() as conn:
            row = conn.execute("SELECT unit_id FROM devices WHERE id = %s AND kind = 'camera'", (camera_id,)).fetchone()
        return row[0] if row and caller.can_see_unit(row[0]) else None

    async def still_valid() -> str | None:
        try:
            await asyncio.to_thread(principal)
        except AuthFailure as failure:
            return failure.reason
        return None

    if not re.fullmatch(r"[a-z0-9]+(?:-[a-z0-9]+)*", camera_id) or await asyncio.to_thread(check) is None:
        raise Problem(404, "not-found", f"no camera {camera_id!r}")
    return Path(_state(request).settings.var_dir) / "media" / "live" / f"{camera_id}.jpg", still_valid


@router.get("/cameras/{camera_id}/latest.jpg", summary="The camera's latest annotated frame (detections drawn)",
            response_class=Response,
            responses={200: {"content": {"image/jpeg": {}}}, **problem_responses(401, 403, 404)})  # fmt: skip
async def camera_latest(request: Request, camera_id: str, access_token: str | None = None) -> Response:
    path, _ = await _camera_viewer(request, camera_id, access_token)
    data = await asyncio.to_thread(read_whole, path)
    if data is None:
        raise Problem(404, "not-found", f"camera {camera_id!r} has no recent frame (no detector watching it?)")
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "no-store"})


MAX_FRAME_BYTES = 16 * 1024 * 1024


def read_whole(path: Path) -> bytes | None:
    """The file as it was when opened: the detector replaces it by rename, so one open descriptor
    keeps one version whole (stat-then-open, as FileResponse does, can pair one version's length
    with another's bytes). None when there is none."""
    try:
        with open(path, "rb") as file:
            return file.read(MAX_FRAME_BYTES)
    except (FileNotFoundError, IsADirectoryError):
        return None


@router.get("/cameras/{camera_id}/mjpeg", summary="The camera's annotated frames as an MJPEG stream",
            response_class=StreamingResponse, responses=problem_responses(401, 403, 404))  # fmt: skip
async def camera_mjpeg(request: Request, camera_id: str, access_token: str | None = None) -> StreamingResponse:
    path, still_valid = await _camera_viewer(request, camera_id, access_token)

    async def frames() -> AsyncIterator[bytes]:
        """Frames until the client goes, or its credentials stop holding (logout, disabled, expired):
        checked every STREAM_RECHECK_S, so a stream ends within 5 s of a logout."""
        last = None
        recheck_at = time.monotonic() + STREAM_RECHECK_S
        while not await request.is_disconnected():
            if time.monotonic() >= recheck_at:
                if await still_valid() is not None:
                    return
                recheck_at = time.monotonic() + STREAM_RECHECK_S
            try:
                stamp = path.stat().st_mtime_ns
                if stamp != last:
                    data = await asyncio.to_thread(read_whole, path)
                    last = stamp
                    if data is None:
                        raise FileNotFoundError(path)
                    yield b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: " + str(len(data)).encode()
                    yield b"\r\n\r\n" + data + b"\r\n"
            except FileNotFoundError:
                pass
            await asyncio.sleep(MJPEG_POLL_S)

    return StreamingResponse(frames(), media_type="multipart/x-mixed-replace; boundary=frame",
                             headers={"Cache-Control": "no-store"})  # fmt: skip


@router.get("/media/{ref:path}", summary="A camera evidence image or clip (staff of the camera's unit)",
            response_class=FileResponse,
            responses={200: {"content": {"image/jpeg": {}, "video/webm": {}}},
                       **problem_responses(401, 403, 404)})  # fmt: skip
async def evidence_image(request: Request, principal: Caller, ref: str) -> FileResponse:
    """The snapshot (``<sha256>.jpg``), its crop (``-crop.jpg``) or the evidence clip around the event
    (``-clip.webm``, VP8; range requests answer 206). The clip is written a few seconds after its
    event (``ioc detect``): until then, 404."""
    _require_staff(principal)
    match = _EVIDENCE_REF.match(ref)
    if match is None:
        raise Problem(404, "not-found", "no such evidence image")

    def visible() -> bool:
        """Staff of the camera's unit, or whoever sees an alert citing this image (e.g. its assignee)."""
        from ioc.alerts.media import evidence_seen_through_alert

        with _state(request).pool.connection() as conn:
            row = conn.execute("SELECT unit_id FROM devices WHERE id = %s", (match["camera"],)).fetchone()
            if row is None:
                return False
            return principal.can_see_unit(row[0]) or evidence_seen_through_alert(conn, ref, principal.visible_units())

    if not await asyncio.to_thread(visible):
        raise Problem(404, "not-found", "no such evidence image")
    path = Path(_state(request).settings.var_dir) / "media" / ref
    if not path.is_file():
        raise Problem(404, "not-found", "no such evidence image")
    media_type = "video/webm" if match["kind"].endswith(".webm") else "image/jpeg"
    return FileResponse(path, media_type=media_type, headers={"Cache-Control": "private, max-age=86400"})
