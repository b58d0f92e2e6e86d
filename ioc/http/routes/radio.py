"""The IP radio over HTTP (docs/radio.md, docs/http-api.md): the wall's status per commune and per
cluster, recordings, programmes, urgent broadcasts with their confirmation, stop and proof.

Who may do what: staff read (commune officers only their commune's clusters and proof rows);
operators and admins upload recordings, edit programmes and start or stop broadcasts; a broadcast
that the district's policy holds for a second confirmation is confirmed by another operator, a
leader or an admin. Devices (API keys) may fetch recordings. Handlers are plain functions: FastAPI
runs them in its thread pool, so the database calls do not block the event loop.
"""

from __future__ import annotations

import secrets
from datetime import datetime, time
from functools import partial
from pathlib import Path
from typing import Annotated, Any, Literal

import anyio.from_thread
import psycopg
from fastapi import APIRouter, Depends, File, Form, Request, Response, UploadFile
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator

from ioc.auth.deps import Caller, require_roles, require_unit_visible
from ioc.auth.principal import Principal
from ioc.clock import SystemClock
from ioc.http import media_intake
from ioc.http.errors import Problem, problem_responses
from ioc.http.forms import OffLoopFormRoute
from ioc.http.state import AppState
from ioc.radio import broadcasts, commands, content, schedules, visibility
from ioc.radio.broadcasts import RadioPolicy, TargetError
from ioc.radio.sync import sync_clusters
from ioc.reports.media import MediaRefused
from ioc.reports.media_pool import MediaBusy, media_pool
from ioc.text import nfc

router = APIRouter(prefix="/api/radio", tags=["radio"], route_class=OffLoopFormRoute)
OperatorCaller = Annotated[Principal, Depends(require_roles("operator", "admin"))]
ConfirmCaller = Annotated[Principal, Depends(require_roles("operator", "leader", "admin"))]
CLOCK = SystemClock()


def _state(request: Request) -> AppState:
    return request.app.state.ioc


def _policy(request: Request) -> RadioPolicy:
    cached = getattr(request.app.state, "radio_policy", None)
    if cached is None:
        from ioc.radio.policy import policies

        cached = policies(_state(request).settings)[0]
        request.app.state.radio_policy = cached
    return cached


def _staff(principal: Principal) -> None:
    if principal.kind != "user":
        raise Problem(403, "forbidden", "radio status is for staff accounts, not API keys")


def _conn(request: Request) -> Any:
    return _state(request).pool.connection()


# -- status for the wall ------------------------------------------------------------------------------


class UnitRadio(BaseModel):
    unit_id: str
    unit_name: str
    clusters_total: int
    online: int
    offline: int
    playing: int
    active_broadcast_id: int | None


class Cluster(BaseModel):
    id: str
    name: str
    unit_id: str
    lat: float | None = None
    lon: float | None = None
    online: bool
    playing: bool
    item: str | None = None
    volume: int | None
    power: str | None
    battery_pct: float | None
    last_seen: datetime | None


@router.get("/status", response_model=list[UnitRadio], summary="Loudspeakers per commune (the wall)",
            responses=problem_responses(401, 403))  # fmt: skip
def radio_status(request: Request, principal: Caller) -> list[UnitRadio]:
    _staff(principal)
    units = principal.visible_units()
    with _conn(request) as conn:
        rows = conn.execute(
            """SELECT u.id, u.name, count(d.id), count(d.id) FILTER (WHERE s.online),
                      count(d.id) FILTER (WHERE s.online AND s.playing),
                      (SELECT max(p.broadcast_id) FROM radio_playbacks p
                       JOIN radio_broadcasts b ON b.id = p.broadcast_id
                       WHERE p.unit_id = u.id AND b.status = 'playing')
               FROM units u JOIN devices d ON d.unit_id = u.id AND d.kind = 'radio' AND d.enabled
               LEFT JOIN radio_cluster_state s ON s.device_id = d.id
               WHERE %(units)s::text[] IS NULL OR u.id = ANY(%(units)s)
               GROUP BY u.id, u.name ORDER BY u.name""",
            {"units": sorted(units) if units is not None else None},
        ).fetchall()
    return [UnitRadio(unit_id=r[0], unit_name=r[1], clusters_total=r[2], online=r[3], offline=r[2] - r[3],
                      playing=r[4], active_broadcast_id=r[5]) for r in rows]  # fmt: skip


@router.get("/clusters", response_model=list[Cluster], summary="Loudspeaker clusters with their live state",
            responses=problem_responses(401, 403))  # fmt: skip
def radio_clusters(request: Request, principal: Caller, unit_id: str | None = None) -> list[Cluster]:
    _staff(principal)
    units = principal.visible_units()
    with _conn(request) as conn:
        rows = conn.execute(
            """SELECT d.id, d.name, d.unit_id, d.lat, d.lon, coalesce(s.online, false), coalesce(s.playing, false),
                      s.item, s.volume, s.power, s.battery_pct, s.last_seen
               FROM devices d LEFT JOIN radio_cluster_state s ON s.device_id = d.id
               WHERE d.kind = 'radio' AND d.enabled AND (%(unit)s::text IS NULL OR d.unit_id = %(unit)s)
                 AND (%(units)s::text[] IS NULL OR d.unit_id = ANY(%(units)s))
               ORDER BY d.unit_id, d.id""",
            {"unit": unit_id, "units": sorted(units) if units is not None else None},
        ).fetchall()
    names = list(Cluster.model_fields)
    return [Cluster(**dict(zip(names, r, strict=True))) for r in rows]


class ClusterCommand(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"command": "volume", "volume": 80}]})
    command: Literal["volume", "reboot", "sync_schedule"]
    volume: int | None = Field(default=None, ge=0, le=100, description="For `volume`.")


class CommandOut(BaseModel):
    correlation_id: str
    device_id: str
    command: str
    state: str = Field(description="pending, sent, accepted, rejected (reason: the device's own), timeout, cancelled")
    attempts: int
    max_attempts: int
    reason: str | None
    sent_at: datetime | None
    acked_at: datetime | None
    broadcast_id: int | None


@router.post("/clusters/{cluster_id}/commands", status_code=202, response_model=CommandOut,
             summary="Send volume, reboot or a schedule re-sync to one cluster",
             responses=problem_responses(401, 403, 404, 422))  # fmt: skip
def send_command(request: Request, principal: OperatorCaller, cluster_id: str, body: ClusterCommand) -> CommandOut:
    policy = _policy(request)
    with _conn(request) as conn:
        row = conn.execute("SELECT unit_id FROM devices WHERE id = %s AND kind = 'radio'", (cluster_id,)).fetchone()
        if row is None:
            raise Problem(404, "not-found", f"no radio cluster {cluster_id!r}")
        if body.command == "sync_schedule":
            sync_clusters(conn, [cluster_id], now=CLOCK.now(), policy=policy)
            cid = conn.execute(
                "SELECT correlation_id FROM radio_commands WHERE device_id = %s AND command = 'sync_schedule' "
                "ORDER BY created_at DESC LIMIT 1",
                (cluster_id,),
            ).fetchone()[0]
        else:
            if body.command == "volume" and body.volume is None:
                raise Problem(422, "validation-error", "volume: cần giá trị 0-100 (a volume 0-100 is needed)")
            payload: dict[str, Any] = {"command": body.command}
            if body.command == "volume":
                payload["volume"] = body.volume
            cid = commands.enqueue(conn, device_id=cluster_id, unit_id=row[0], command=payload, now=CLOCK.now(),
                                   timeout_s=policy.ack_timeout_s, max_attempts=policy.max_attempts)  # fmt: skip
        return _command(conn, cid)


@router.get("/commands/{correlation_id}", response_model=CommandOut, summary="A command and the device's answer",
            responses=problem_responses(401, 403, 404))  # fmt: skip
def get_command(request: Request, principal: Caller, correlation_id: str) -> CommandOut:
    _staff(principal)
    with _conn(request) as conn:
        found = _command(conn, correlation_id)
    require_unit_visible(principal, found.unit_id, "command")
    return found


class _CommandRow(CommandOut):
    unit_id: str


def _command(conn: psycopg.Connection, correlation_id: str) -> _CommandRow:
    row = conn.execute(
        """SELECT correlation_id, device_id, command, state, attempts, max_attempts, reason, sent_at, acked_at,
                  broadcast_id, unit_id FROM radio_commands WHERE correlation_id = %s""",
        (correlation_id,),
    ).fetchone()
    if row is None:
        raise Problem(404, "not-found", f"no command {correlation_id!r}")
    return _CommandRow(**dict(zip(_CommandRow.model_fields, row, strict=True)))


# -- recordings ---------------------------------------------------------------------------------------


class Audio(BaseModel):
    id: int
    sha256: str
    duration_s: float
    sample_rate: int
    format: str
    created: bool = Field(description="False when the same recording was already stored.")


AUDIO_TIMEOUT_S = 120.0  # decoding a 30-minute MP3 takes a few seconds; a stuck decoder is killed
SPEECH_TIMEOUT_S = 150.0


def _audio_refused(detail: str, pointer: str = "#/file") -> Problem:
    error = {"detail": detail, "location": "body", "pointer": pointer, "code": "audio_refused"}
    return Problem(422, "validation-error", detail, errors=[error])


async def _in_media_pool(request: Request, fn: Any, *args: Any, timeout_s: float, what: str, pointer: str) -> Any:
    """``fn(*args)`` in the bounded media pool: 503 when its queue is full, 422 (saying ``what``,
    naming the field at ``pointer``) when it runs past ``timeout_s``."""
    try:
        return await media_pool(request.app).run(fn, *args, timeout_s=timeout_s)
    except MediaBusy as exc:
        raise Problem(503, "media-busy", "đang xử lý nhiều tệp; thử lại sau ít giây (media processing is busy)",
                      headers={"Retry-After": "10"}, retry_after_s=10) from exc  # fmt: skip
    except MediaRefused as exc:
        raise _audio_refused(f"{what} ({exc})", pointer) from None


@router.post("/audio", status_code=201, response_model=Audio, summary="Upload a recording (WAV, MP3 or OGG)",
             responses=problem_responses(400, 401, 403, 413, 422, 503))  # fmt: skip
async def upload_audio(
    request: Request,
    principal: OperatorCaller,
    file: Annotated[UploadFile, File(description="WAV, MP3 or OGG; checked by decoding it")],
    title: Annotated[str | None, Form(max_length=200)] = None,
) -> Audio:
    """The upload goes to disk (never whole in the API's memory) and is decoded in the media pool
    (never on the event loop nor in an API thread); once accepted the file is moved into place."""
    settings = _state(request).settings
    limit = settings.radio_max_audio_bytes
    media_dir = Path(settings.var_dir) / "media"
    spooled = media_dir / "tmp" / f"{secrets.token_hex(12)}.upload"
    try:
        if await media_intake.in_upload_thread(request.app, media_intake.spool, file, spooled, limit) > limit:
            raise Problem(413, "validation-error", f"tệp quá lớn (file too large: the limit is {limit} bytes)")
        check = partial(content.inspect_audio_file, max_bytes=limit, max_duration_s=settings.radio_max_audio_s)
        try:
            info = await _in_media_pool(request, check, spooled, timeout_s=AUDIO_TIMEOUT_S,
                                        what="tệp âm thanh không hợp lệ", pointer="#/file")  # fmt: skip
        except content.AudioRefused as exc:
            raise _audio_refused(f"tệp âm thanh không hợp lệ ({exc})") from None

        def store() -> content.StoredAudio:
            with _conn(request) as conn:
                return content.store_checked_audio(
                    conn, media_dir, spooled, info, title=nfc(title or file.filename or "recording"),
                    created_by=principal.username,
                )  # fmt: skip

        stored = await media_intake.in_upload_thread(request.app, store)
    finally:
        spooled.unlink(missing_ok=True)  # moved into place, or refused
    return Audio(id=stored.id, sha256=stored.sha256, duration_s=stored.duration_s, sample_rate=stored.sample_rate,
                 format=stored.format, created=stored.created)  # fmt: skip


class SpeechRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1, max_length=5000)
    title: str | None = Field(default=None, max_length=200)


@router.post("/tts", status_code=201, response_model=Audio, summary="Vietnamese text-to-speech (espeak-ng)",
             responses=problem_responses(401, 403, 422, 503))  # fmt: skip
def text_to_speech(request: Request, principal: OperatorCaller, body: SpeechRequest) -> Audio:
    return _speech(request, principal, nfc(body.text), body.title)


def _speech(request: Request, principal: Principal, text: str, title: str | None) -> Audio:
    """Speech and the check of what it made are media work: one job in the bounded media pool (queue
    and time limits), called from this sync route's worker thread."""
    settings = _state(request).settings
    job = partial(content.speech_checked, max_bytes=settings.radio_max_audio_bytes,
                  max_duration_s=settings.radio_max_audio_s)  # fmt: skip
    try:
        data, info = anyio.from_thread.run(
            partial(_in_media_pool, request, job, text, timeout_s=SPEECH_TIMEOUT_S, what="không đọc được văn bản",
                    pointer="#/text")
        )
    except (content.TtsUnavailable, content.AudioRefused) as exc:  # e.g. "." reads as a silence too short
        raise _audio_refused(f"không đọc được văn bản ({exc})", "#/text") from None
    with _conn(request) as conn:
        stored = content.store_checked_audio(
            conn, Path(settings.var_dir) / "media", data, info, title=nfc(title or text[:80]),
            created_by=principal.username, source="tts", text=text,
        )  # fmt: skip
    return Audio(id=stored.id, sha256=stored.sha256, duration_s=stored.duration_s, sample_rate=stored.sample_rate,
                 format=stored.format, created=stored.created)  # fmt: skip


@router.get("/audio/{audio_id}/file", summary="The recording's bytes (devices fetch it with their API key)",
            responses=problem_responses(401, 404))  # fmt: skip
def audio_file(request: Request, principal: Caller, audio_id: int) -> FileResponse:
    if principal.kind == "api_key" and principal.role != "device":
        raise Problem(403, "forbidden", "recordings are for staff and devices")
    with _conn(request) as conn:
        row = conn.execute("SELECT storage_key, format, sha256 FROM radio_audio WHERE id = %s", (audio_id,)).fetchone()
        if row is not None and not visibility.audio_visible(conn, audio_id, principal.visible_units()):
            row = None  # another commune's recording: not revealed
    if row is None:
        raise Problem(404, "not-found", f"no recording {audio_id}")
    media = {"WAV": "audio/wav", "MP3": "audio/mpeg", "OGG": "audio/ogg"}.get(row[1], "application/octet-stream")
    path = Path(_state(request).settings.var_dir) / "media" / row[0]
    return FileResponse(path, media_type=media, headers={"X-Content-SHA256": row[2]})


# -- broadcasts ---------------------------------------------------------------------------------------


class BroadcastRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "title": "Cảnh báo lũ quét",
                    "text": None,
                    "audio_id": 12,
                    "unit_ids": ["tra-son", "tra-kot"],
                    "cluster_ids": [],
                    "polygon": None,
                    "repeat": 2,
                    "urgent": True,
                }
            ]
        },  # fmt: skip
    )

    title: str = Field(min_length=1, max_length=200)
    text: str | None = Field(default=None, max_length=5000, description="Read by text-to-speech when no audio_id.")
    audio_id: int | None = None
    unit_ids: list[str] = Field(default_factory=list, max_length=200)
    cluster_ids: list[str] = Field(default_factory=list, max_length=2000)
    polygon: dict[str, Any] | None = Field(default=None, description="GeoJSON Polygon or MultiPolygon (lon, lat).")
    repeat: int = Field(default=1, ge=1, le=10)
    urgent: bool = True


class BroadcastOut(BaseModel):
    id: int
    status: str
    title: str
    urgent: bool
    repeat: int
    audio_id: int | None
    text: str | None
    targets: dict[str, Any]
    requested_by: str | None
    confirmed_by: str | None
    source: str
    cap_identifier: str | None
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None


_BROADCAST = """SELECT id, status, title, kind = 'urgent', repeat, audio_id, text, targets, requested_by, confirmed_by,
                       source, cap_identifier, created_at, started_at, ended_at FROM radio_broadcasts"""


def _broadcast(conn: psycopg.Connection, broadcast_id: int) -> BroadcastOut:
    row = conn.execute(f"{_BROADCAST} WHERE id = %s", (broadcast_id,)).fetchone()
    if row is None:
        raise Problem(404, "not-found", f"no broadcast {broadcast_id}")
    return BroadcastOut(**dict(zip(BroadcastOut.model_fields, row, strict=True)))


@router.post("/broadcasts", status_code=201, response_model=BroadcastOut, summary="Start (or request) a broadcast",
             responses=problem_responses(401, 403, 422))  # fmt: skip
def create_broadcast(request: Request, principal: OperatorCaller, body: BroadcastRequest) -> BroadcastOut:
    audio_id = body.audio_id
    if audio_id is None and not body.text:
        raise Problem(422, "validation-error", "cần audio_id hoặc text (a recording or a text to read is needed)")
    if audio_id is None and body.text:
        audio_id = _speech(request, principal, nfc(body.text), body.title).id
    try:
        with _conn(request) as conn:
            if conn.execute("SELECT 1 FROM radio_audio WHERE id = %s", (audio_id,)).fetchone() is None:
                raise Problem(422, "validation-error", f"không có bản ghi âm {audio_id} (no recording {audio_id})")
            broadcast_id = broadcasts.create(
                conn, title=nfc(body.title), text=nfc(body.text) if body.text else None, audio_id=audio_id,
                targets={"unit_ids": body.unit_ids, "cluster_ids": body.cluster_ids, "polygon": body.polygon},
                repeat=body.repeat, urgent=body.urgent, requested_by=principal.username, policy=_policy(request),
                now=CLOCK.now(),
            )  # fmt: skip
            return _broadcast(conn, broadcast_id)
    except TargetError as exc:
        raise Problem(422, "validation-error", f"đích phát không hợp lệ ({exc})") from None


@router.get("/broadcasts", response_model=list[BroadcastOut], summary="Recent broadcasts",
            responses=problem_responses(401, 403))  # fmt: skip
def list_broadcasts(request: Request, principal: Caller, limit: int = 50) -> list[BroadcastOut]:
    _staff(principal)
    units = principal.visible_units()
    with _conn(request) as conn:
        rows = conn.execute(
            f"""{_BROADCAST} b WHERE %(units)s::text[] IS NULL OR EXISTS (
                    SELECT 1 FROM radio_playbacks p WHERE p.broadcast_id = b.id AND p.unit_id = ANY(%(units)s))
                ORDER BY id DESC LIMIT %(limit)s""",
            {"units": sorted(units) if units is not None else None, "limit": max(1, min(limit, 500))},
        ).fetchall()
    return [BroadcastOut(**dict(zip(BroadcastOut.model_fields, r, strict=True))) for r in rows]


@router.get("/broadcasts/{broadcast_id}", response_model=BroadcastOut, responses=problem_responses(401, 403, 404))
def get_broadcast(request: Request, principal: Caller, broadcast_id: int) -> BroadcastOut:
    _staff(principal)
    with _conn(request) as conn:
        if not visibility.broadcast_visible(conn, broadcast_id, principal.visible_units()):
            raise Problem(404, "not-found", f"no broadcast {broadcast_id}, or not visible to you")
        return _broadcast(conn, broadcast_id)


class Confirmation(BaseModel):
    model_config = ConfigDict(extra="forbid")
    audio_id: int | None = Field(default=None, description="A recording for a CAP proposal without speech.")


@router.post("/broadcasts/{broadcast_id}/confirm", response_model=BroadcastOut,
             summary="Second confirmation by another person (or start a CAP proposal)",
             responses=problem_responses(401, 403, 404, 409, 422))  # fmt: skip
def confirm_broadcast(request: Request, principal: ConfirmCaller, broadcast_id: int,
                      body: Confirmation | None = None) -> BroadcastOut:  # fmt: skip
    try:
        with _conn(request) as conn:
            status = conn.execute("SELECT status FROM radio_broadcasts WHERE id = %s", (broadcast_id,)).fetchone()
            if status and status[0] == "proposed" and not principal.has_role("operator", "admin"):
                # Starting a CAP proposal is starting a broadcast: the operator's job, not a confirmation.
                raise Problem(403, "forbidden", "chỉ điều hành viên mới phát được (only operators start a proposal)")
            broadcasts.confirm(conn, broadcast_id, by=principal.username, policy=_policy(request), now=CLOCK.now(),
                               audio_id=body.audio_id if body else None)  # fmt: skip
            return _broadcast(conn, broadcast_id)
    except LookupError:
        raise Problem(404, "not-found", f"no broadcast {broadcast_id}") from None
    except PermissionError as exc:
        raise Problem(403, "forbidden", f"cần người thứ hai xác nhận ({exc})") from None
    except TargetError as exc:
        raise Problem(422, "validation-error", str(exc)) from None
    except ValueError as exc:
        raise Problem(409, "conflict", str(exc)) from None


@router.post("/broadcasts/{broadcast_id}/stop", response_model=BroadcastOut, summary="Stop a broadcast",
             responses=problem_responses(401, 403, 404))  # fmt: skip
def stop_broadcast(request: Request, principal: OperatorCaller, broadcast_id: int) -> BroadcastOut:
    try:
        with _conn(request) as conn:
            broadcasts.stop(conn, broadcast_id, by=principal.username, policy=_policy(request), now=CLOCK.now())
            return _broadcast(conn, broadcast_id)
    except LookupError:
        raise Problem(404, "not-found", f"no broadcast {broadcast_id}") from None


class ProofRow(BaseModel):
    cluster_id: str
    cluster_name: str
    unit_id: str
    state: str
    outcome: Literal["full", "partial", "none"]
    reason: str | None
    position_s: float | None
    duration_s: float | None
    acked_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None


class Proof(BaseModel):
    broadcast_id: int
    title: str
    status: str
    urgent: bool
    repeat: int
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    clusters: list[ProofRow]
    summary: dict[str, int]


@router.get("/broadcasts/{broadcast_id}/proof", response_model=Proof, summary="Proof of broadcast per cluster",
            responses=problem_responses(401, 403, 404))  # fmt: skip
def broadcast_proof(request: Request, principal: Caller, broadcast_id: int) -> Proof:
    _staff(principal)
    with _conn(request) as conn:
        report = broadcasts.proof(conn, broadcast_id)
    if report is None:
        raise Problem(404, "not-found", f"no broadcast {broadcast_id}")
    units = principal.visible_units()
    if units is not None:
        report["clusters"] = [c for c in report["clusters"] if c["unit_id"] in units]
        if not report["clusters"]:
            raise Problem(404, "not-found", f"no broadcast {broadcast_id}, or not visible to you")
        report["summary"] = {k: sum(c["outcome"] == k for c in report["clusters"]) for k in ("full", "partial", "none")}
    return Proof(**report)


# -- programmes ---------------------------------------------------------------------------------------


class ScheduleIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "title": "Bản tin thời sự tối",
                    "audio_id": 12,
                    "unit_ids": ["tra-son"],
                    "cluster_ids": [],
                    "days": ["mon", "tue", "wed", "thu", "fri"],
                    "start": "18:30:00",
                    "repeat": 1,
                    "enabled": True,
                }
            ]
        },  # fmt: skip
    )

    title: str = Field(min_length=1, max_length=200)
    audio_id: int
    unit_ids: list[str] = Field(default_factory=list, max_length=200)
    cluster_ids: list[str] = Field(default_factory=list, max_length=2000)
    days: list[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]] = Field(
        default_factory=lambda: list(schedules.DAYS), min_length=1, description="All seven: a daily programme."
    )
    start: time = Field(description="Local time, Asia/Ho_Chi_Minh (HH:MM[:SS]).")
    repeat: int = Field(default=1, ge=1, le=10)
    enabled: bool = True

    @field_validator("days")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        return sorted(set(value), key=schedules.DAYS.index)


class ScheduleOut(ScheduleIn):
    model_config = ConfigDict(extra="ignore")
    id: int
    length_s: float
    created_by: str | None


_SCHEDULE = """SELECT s.id, s.title, s.audio_id, s.unit_ids, s.cluster_ids, s.days, s.start_local, s.repeat, s.enabled,
                      a.duration_s * s.repeat, s.created_by
               FROM radio_schedules s JOIN radio_audio a ON a.id = s.audio_id"""


def _schedule_row(row: tuple) -> ScheduleOut:
    keys = ("id", "title", "audio_id", "unit_ids", "cluster_ids", "days", "start", "repeat", "enabled", "length_s",
            "created_by")  # fmt: skip
    return ScheduleOut(**dict(zip(keys, row, strict=True)))


def _check_schedule(conn: psycopg.Connection, body: ScheduleIn, schedule_id: int) -> set[str]:
    """The clusters the programme plays on; 422 for unknown targets, 409 for a conflict."""
    audio = conn.execute("SELECT duration_s FROM radio_audio WHERE id = %s", (body.audio_id,)).fetchone()
    if audio is None:
        raise Problem(422, "validation-error", f"không có bản ghi âm {body.audio_id} (no recording {body.audio_id})")
    try:
        targets = broadcasts.resolve_targets(conn, body.unit_ids, body.cluster_ids, None)
    except TargetError as exc:
        raise Problem(422, "validation-error", f"đích phát không hợp lệ ({exc})") from None
    clusters = {c for c, _ in targets}
    if body.enabled:
        new = schedules.Programme(schedule_id, body.title, tuple(body.days), body.start, float(audio[0]) * body.repeat,
                                  frozenset(clusters))  # fmt: skip
        clash = schedules.conflicts(new, schedules.programmes(conn))
        if clash:
            other, cluster = clash[0]
            raise Problem(409, "conflict",
                          f"trùng lịch với chương trình {other.id} «{other.title}» trên cụm loa {cluster} "
                          f"(conflicts with programme {other.id} on {cluster}, {other.start:%H:%M} "
                          f"for {other.length_s:.0f} s)")  # fmt: skip
    return clusters


@router.get("/schedules", response_model=list[ScheduleOut], responses=problem_responses(401, 403))
def list_schedules(request: Request, principal: Caller) -> list[ScheduleOut]:
    _staff(principal)
    units = principal.visible_units()
    with _conn(request) as conn:
        rows = conn.execute(f"{_SCHEDULE} WHERE {visibility.SCHEDULE_FILTER} ORDER BY s.start_local, s.id",
                            {"units": sorted(units) if units is not None else None}).fetchall()  # fmt: skip
        return [_schedule_row(r) for r in rows]


@router.get("/schedules/{schedule_id}", response_model=ScheduleOut, responses=problem_responses(401, 403, 404))
def get_schedule(request: Request, principal: Caller, schedule_id: int) -> ScheduleOut:
    _staff(principal)
    with _conn(request) as conn:
        row = conn.execute(f"{_SCHEDULE} WHERE s.id = %s", (schedule_id,)).fetchone()
        if row is not None and not visibility.schedule_visible(conn, schedule_id, principal.visible_units()):
            row = None  # another commune's programme: not revealed
    if row is None:
        raise Problem(404, "not-found", f"no programme {schedule_id}")
    return _schedule_row(row)


def _schedule_values(body: ScheduleIn) -> dict[str, Any]:
    """The columns of a programme from its request body (one place for insert and update)."""
    return {"title": nfc(body.title), "audio_id": body.audio_id, "unit_ids": body.unit_ids,
            "cluster_ids": body.cluster_ids, "days": body.days, "start": body.start, "repeat": body.repeat,
            "enabled": body.enabled}  # fmt: skip


@router.post("/schedules", status_code=201, response_model=ScheduleOut, summary="Add a programme",
             responses=problem_responses(401, 403, 409, 422))  # fmt: skip
def create_schedule(request: Request, principal: OperatorCaller, body: ScheduleIn) -> ScheduleOut:
    with _conn(request) as conn:
        clusters = _check_schedule(conn, body, 0)
        row = conn.execute(
            """INSERT INTO radio_schedules (title, audio_id, unit_ids, cluster_ids, days, start_local, repeat, enabled,
                                            created_by)
               VALUES (%(title)s, %(audio_id)s, %(unit_ids)s, %(cluster_ids)s, %(days)s, %(start)s, %(repeat)s,
                       %(enabled)s, %(by)s) RETURNING id""",
            _schedule_values(body) | {"by": principal.username},
        ).fetchone()
        assert row is not None
        sync_clusters(conn, clusters, now=CLOCK.now(), policy=_policy(request))
        return _schedule_row(conn.execute(f"{_SCHEDULE} WHERE s.id = %s", (row[0],)).fetchone())


@router.put("/schedules/{schedule_id}", response_model=ScheduleOut, summary="Change a programme",
            responses=problem_responses(401, 403, 404, 409, 422))  # fmt: skip
def update_schedule(request: Request, principal: OperatorCaller, schedule_id: int, body: ScheduleIn) -> ScheduleOut:
    with _conn(request) as conn:
        before = _clusters_of_schedule(conn, schedule_id)
        clusters = _check_schedule(conn, body, schedule_id)
        conn.execute(
            """UPDATE radio_schedules SET title = %(title)s, audio_id = %(audio_id)s, unit_ids = %(unit_ids)s,
                      cluster_ids = %(cluster_ids)s, days = %(days)s, start_local = %(start)s, repeat = %(repeat)s,
                      enabled = %(enabled)s, updated_at = now() WHERE id = %(id)s""",
            _schedule_values(body) | {"id": schedule_id},
        )
        sync_clusters(conn, clusters | before, now=CLOCK.now(), policy=_policy(request))
        return _schedule_row(conn.execute(f"{_SCHEDULE} WHERE s.id = %s", (schedule_id,)).fetchone())


@router.delete("/schedules/{schedule_id}", status_code=204, responses=problem_responses(401, 403, 404))
def delete_schedule(request: Request, principal: OperatorCaller, schedule_id: int) -> Response:
    with _conn(request) as conn:
        before = _clusters_of_schedule(conn, schedule_id)
        conn.execute("DELETE FROM radio_schedules WHERE id = %s", (schedule_id,))
        sync_clusters(conn, before, now=CLOCK.now(), policy=_policy(request))
    return Response(status_code=204)


def _clusters_of_schedule(conn: psycopg.Connection, schedule_id: int) -> set[str]:
    row = conn.execute("SELECT unit_ids, cluster_ids FROM radio_schedules WHERE id = %s", (schedule_id,)).fetchone()
    if row is None:
        raise Problem(404, "not-found", f"no programme {schedule_id}")
    return schedules.clusters_of(conn, row[0], row[1])
