"""Uploaded media from a route to its place: checked and encoded in the media pool, referenced,
then moved into place; given back when the record is refused.

Routes call :func:`prepare` (answers 400 naming the file, or 503 when the pool's queue is full),
then :func:`keep` before storing the record that uses the files, and :func:`give_back` when that
record is not stored (nothing half-stored: the files go unless another record holds them).

The blocking parts of an upload (copying it to disk, the transaction that stores its record) run
in :func:`in_upload_thread`: a few threads of their own, not the event loop's default executor.
That executor has only ``CPUs + 4`` threads (6 on 2 cores) and every read route's database query
runs there: 20 uploads at once, each holding a thread for a 3 MB copy or a transaction, queued
``GET /api/alerts`` behind them (its p99 tripled under a photo flood). Bounding the uploads'
threads also bounds the database connections they hold, so reads always find one.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import secrets
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from fastapi import Request
from starlette.datastructures import UploadFile

from ioc.http.errors import Problem
from ioc.reports.media import (
    MAX_BYTES,
    MAX_VIDEO_BYTES,
    MediaRefused,
    StoredPhoto,
    StoredVideo,
    prepare_photo,
    prepare_video,
)
from ioc.reports.media_pool import PHOTO_TIMEOUT_S, VIDEO_TIMEOUT_S, MediaBusy, media_pool
from ioc.reports.mediarefs import discard_parts, hold, place, release

Stored = StoredPhoto | StoredVideo
T = TypeVar("T")

#: Threads for the blocking parts of uploads (see the module docstring); the media pool's workers
#: set the pace (a few photos a second), so a few threads keep up.
UPLOAD_THREADS = 4


def _upload_executor(app: Any) -> ThreadPoolExecutor:
    executor = getattr(app.state, "upload_executor", None)
    if executor is None:
        executor = ThreadPoolExecutor(UPLOAD_THREADS, thread_name_prefix="ioc-upload")
        app.state.upload_executor = executor
    return executor


async def in_upload_thread(app: Any, fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` in one of the uploads' own threads (like ``asyncio.to_thread``: same context)."""
    call = functools.partial(contextvars.copy_context().run, fn, *args)
    return await asyncio.get_running_loop().run_in_executor(_upload_executor(app), call)


def shutdown_upload_threads(app: Any) -> None:
    executor = getattr(app.state, "upload_executor", None)
    if executor is not None:
        executor.shutdown(wait=False, cancel_futures=True)
        app.state.upload_executor = None


def media_root(request: Request) -> Path:
    return Path(request.app.state.ioc.settings.var_dir) / "media"


def spool(upload: UploadFile, target: Path, limit: int) -> int:
    """Copy the upload to ``target`` in 1 MB pieces, at most ``limit`` + 1 bytes (more than ``limit``
    copied means too large); its size. The API process never holds a whole file; the media worker
    reads it from disk."""
    target.parent.mkdir(parents=True, exist_ok=True)
    upload.file.seek(0)
    copied = 0
    with target.open("wb") as out:
        while copied <= limit and (chunk := upload.file.read(min(1 << 20, limit + 1 - copied))):
            out.write(chunk)
            copied += len(chunk)
    return copied


async def prepare(request: Request, data: bytes | UploadFile, what: str, *, video: bool = False) -> Stored:
    """Check and encode ``data`` (bytes or an upload) in a worker process; ``what`` names the file
    in a refusal."""
    pool = media_pool(request.app)
    spooled: Path | None = None
    try:
        if isinstance(data, UploadFile):
            limit = MAX_VIDEO_BYTES if video else MAX_BYTES
            spooled = media_root(request) / "tmp" / f"{secrets.token_hex(12)}.upload"
            await in_upload_thread(request.app, spool, data, spooled, limit)
            data = spooled
        if video:
            return await pool.run(prepare_video, data, media_root(request), timeout_s=VIDEO_TIMEOUT_S)
        return await pool.run(prepare_photo, data, media_root(request), timeout_s=PHOTO_TIMEOUT_S)
    except MediaRefused as exc:
        raise Problem(
            400,
            "validation-error",
            f"{what}: {exc}",
            errors=[
                {"detail": str(exc), "location": "body", "pointer": f"#/{what.split(' ')[0]}", "code": "media_refused"}
            ],
        ) from exc
    except MediaBusy as exc:
        raise Problem(
            503,
            "media-busy",
            "đang xử lý nhiều tệp; thử lại sau ít giây (media processing is busy)",
            headers={"Retry-After": "10"},
            retry_after_s=10,
        ) from exc
    finally:
        if spooled is not None:
            spooled.unlink(missing_ok=True)


async def keep(request: Request, items: list[Stored]) -> None:
    """Take a reference to each file, then move it into place (in that order: see mediarefs)."""
    root = media_root(request)

    def run() -> None:
        try:
            with request.app.state.ioc.pool.connection() as conn, conn.transaction():
                hold(conn, [key for item in items for key in item.keys])
        except Exception:
            for item in items:
                discard_parts(item.parts)
            raise
        for item in items:
            place(item.parts, root)
            item.parts.clear()

    await in_upload_thread(request.app, run)


async def give_back(request: Request, items: list[Stored]) -> None:
    """The record using ``items`` was not stored: release their references (files nobody else holds go)."""
    if not items:
        return
    root = media_root(request)

    def run() -> None:
        for item in items:
            discard_parts(item.parts)
        with request.app.state.ioc.pool.connection() as conn, conn.transaction():
            release(conn, [key for item in items if not item.parts for key in item.keys], root)

    await in_upload_thread(request.app, run)


def discard_unkept(items: list[Any]) -> None:
    for item in items:
        discard_parts(item.parts)
