"""Photos of citizen reports: checked by content, stripped of metadata, stored by their hash.

A file is accepted only if Pillow recognises it as JPEG, PNG or WebP by its bytes (the name and
the declared type are ignored), its pixel count is below :data:`MAX_PIXELS` (decompression bombs)
and it decodes completely (truncated or corrupt files fail here). The EXIF GPS position and time
are read first, as a fallback location, and then every stored copy is re-encoded from pixels only,
so no EXIF, XMP or comment survives. Files are named by the SHA-256 of the stored bytes under
``<media>/reports/``: nothing guessable, and the same photo sent twice is stored once.

Limits come before work: the byte size first, then the dimensions and pixel count read from the
header (nothing decoded yet), and a JPEG is decoded at a reduced scale (``draft``: 1/2, 1/4, 1/8)
when the stored copy is smaller anyway. The work itself runs in worker processes
(:mod:`ioc.reports.media_pool`): :func:`prepare_photo` / :func:`prepare_video` write the encoded
files under ``<media>/tmp/`` and return their keys; the caller takes a reference to each key
(:mod:`ioc.reports.mediarefs`) and only then moves them into place.
"""

from __future__ import annotations

import hashlib
import io
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

MAX_BYTES = 10 * 1024 * 1024
MAX_PIXELS = 40_000_000  # a 48 MP phone photo is ~48 M; larger is suspicious and costly
MAX_SIDE_PX = 12_000  # a panorama wider than this is refused from the header too
ALLOWED = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}
THUMB_PX = 320
STORE_MAX_PX = 2560  # stored photos are scaled down to this long side


class MediaRefused(ValueError):
    """The file is not an acceptable photo; ``str()`` says why, for the citizen."""


@dataclass(frozen=True)
class StoredPhoto:
    sha256: str
    storage_key: str
    thumb_key: str
    mime: str
    bytes: int
    width: int
    height: int
    gps: tuple[float, float] | None  # (lat, lon) from EXIF, before it was stripped
    taken_at: datetime | None
    #: key -> partial file written by :func:`prepare_photo`, not yet in place (empty once placed)
    parts: dict[str, str] = field(default_factory=dict, compare=False)

    @property
    def keys(self) -> list[str]:
        return [self.storage_key, self.thumb_key]


def _gps(exif: Image.Exif) -> tuple[float, float] | None:
    try:
        info = exif.get_ifd(0x8825)  # GPSInfo
        if not info:
            return None

        def degrees(value: tuple) -> float:
            d, m, s = (float(x) for x in value)
            return d + m / 60 + s / 3600

        lat, lon = degrees(info[2]), degrees(info[4])
        if info.get(1) == "S":
            lat = -lat
        if info.get(3) == "W":
            lon = -lon
        return (round(lat, 6), round(lon, 6)) if -90 <= lat <= 90 and -180 <= lon <= 180 else None
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return None


def _taken_at(exif: Image.Exif) -> datetime | None:
    try:
        text = exif.get_ifd(0x8769).get(36867) or exif.get(306)  # DateTimeOriginal, DateTime
        return datetime.strptime(str(text), "%Y:%m:%d %H:%M:%S") if text else None
    except (TypeError, ValueError):
        return None


def _encode(image: Image.Image, fmt: str) -> bytes:
    out = io.BytesIO()
    if fmt == "JPEG":
        image.convert("RGB").save(out, "JPEG", quality=85, optimize=True)
    elif fmt == "PNG":
        image.save(out, "PNG", optimize=True)
    else:
        image.save(out, "WEBP", quality=85)
    return out.getvalue()


def _write_part(media_root: Path, content: bytes) -> str:
    """A partial file under ``<media>/tmp`` (same file system as the target: the move is atomic)."""
    tmp = media_root / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    path = tmp / f"{secrets.token_hex(12)}.part"
    path.write_bytes(content)
    return str(path)


def store_photo(data: bytes, media_root: Path) -> StoredPhoto:
    """Validate ``data`` and store a clean copy and a thumbnail at once (no reference counting:
    for tools and tests; the API uses :func:`prepare_photo` and :mod:`ioc.reports.mediarefs`)."""
    from ioc.reports.mediarefs import place

    photo = prepare_photo(data, media_root)
    place(photo.parts, media_root)
    photo.parts.clear()
    return photo


def _size(source: bytes | Path) -> int:
    return source.stat().st_size if isinstance(source, Path) else len(source)


def prepare_photo(source: bytes | Path, media_root: Path) -> StoredPhoto:
    """Validate the photo (bytes, or a file the upload was spooled to) and write a clean copy and a
    thumbnail as partial files; raise :class:`MediaRefused`."""
    if _size(source) > MAX_BYTES:
        size = _size(source)
        raise MediaRefused(f"ảnh quá lớn: {size / 1e6:.1f} MB, tối đa {MAX_BYTES / 1e6:.0f} MB (photo too large)")
    data = source.read_bytes() if isinstance(source, Path) else source
    if len(data) > MAX_BYTES:
        raise MediaRefused(f"ảnh quá lớn: {len(data) / 1e6:.1f} MB, tối đa {MAX_BYTES / 1e6:.0f} MB "
                           f"(photo too large)")  # fmt: skip
    try:
        with Image.open(io.BytesIO(data)) as probe:
            fmt = probe.format or ""
            width, height = probe.size
    except UnidentifiedImageError as exc:
        raise MediaRefused("không phải ảnh JPEG, PNG hoặc WebP (not a JPEG, PNG or WebP image)") from exc
    except Image.DecompressionBombError as exc:  # Pillow's own guard, far above ours: same answer
        raise MediaRefused(f"ảnh vượt giới hạn {MAX_PIXELS:,} điểm ảnh (too many pixels)") from exc
    except (OSError, ValueError, SyntaxError) as exc:
        raise MediaRefused(f"ảnh bị hỏng hoặc không đọc được (corrupt or truncated image): {exc}") from exc
    if fmt not in ALLOWED:
        raise MediaRefused(f"định dạng {fmt or '?'} không được nhận; chỉ JPEG, PNG, WebP (format not accepted)")
    if width * height > MAX_PIXELS:
        raise MediaRefused(f"ảnh {width}x{height} điểm ảnh vượt giới hạn {MAX_PIXELS:,} (too many pixels)")
    if max(width, height) > MAX_SIDE_PX:
        raise MediaRefused(f"ảnh {width}x{height} có cạnh dài hơn {MAX_SIDE_PX} điểm ảnh (image too wide or tall)")
    try:
        with Image.open(io.BytesIO(data)) as image:
            exif = image.getexif()
            gps, taken = _gps(exif), _taken_at(exif)
            if fmt == "JPEG":  # decode at 1/2, 1/4 or 1/8 scale when the stored copy is smaller anyway
                image.draft("RGB", (STORE_MAX_PX, STORE_MAX_PX))
            image.load()  # full decode: truncated or corrupt data fails here
            image.thumbnail((STORE_MAX_PX, STORE_MAX_PX))  # in place: the full-size pixels go at once
            upright = ImageOps.exif_transpose(image)  # on the small copy (orientation from the EXIF read above)
            clean = Image.frombytes(upright.mode, upright.size, upright.tobytes())  # pixels only, no metadata
            del upright
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise MediaRefused(f"ảnh bị hỏng hoặc không đọc được hết (corrupt or truncated image): {exc}") from exc
    stored = _encode(clean, fmt)
    digest = hashlib.sha256(stored).hexdigest()
    thumb = clean.copy()
    thumb.thumbnail((THUMB_PX, THUMB_PX))
    thumb_bytes = _encode(thumb, "JPEG")
    ext = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}[fmt]
    key = f"reports/{digest[:2]}/{digest}.{ext}"
    thumb_key = f"reports/{digest[:2]}/{digest}-thumb.jpg"
    parts = {key: _write_part(media_root, stored), thumb_key: _write_part(media_root, thumb_bytes)}
    return StoredPhoto(digest, key, thumb_key, ALLOWED[fmt], len(stored), clean.width, clean.height, gps, taken,
                       parts)  # fmt: skip


# -- videos ---------------------------------------------------------------------------------------

MAX_VIDEO_BYTES = 50 * 1024 * 1024
MAX_VIDEO_S = 60.0
VIDEO_MAX_PX = 1280


@dataclass(frozen=True)
class StoredVideo:
    sha256: str
    storage_key: str
    thumb_key: str
    mime: str
    bytes: int
    width: int
    height: int
    duration_s: float
    parts: dict[str, str] = field(default_factory=dict, compare=False)

    @property
    def keys(self) -> list[str]:
        return [self.storage_key, self.thumb_key]


MAX_VIDEO_SIDE_PX = 4096  # 4K (3840x2160) is accepted; larger is refused from the container header


def _video_kind(data: bytes) -> str | None:
    if len(data) >= 12 and data[4:8] == b"ftyp":
        return "mp4"
    if data[:4] == b"\x1a\x45\xdf\xa3":
        return "webm"
    return None


def store_video(data: bytes, media_root: Path) -> StoredVideo:
    """:func:`prepare_video` and put the files in place (tools and tests)."""
    from ioc.reports.mediarefs import place

    video = prepare_video(data, media_root)
    place(video.parts, media_root)
    video.parts.clear()
    return video


def prepare_video(data: bytes | Path, media_root: Path) -> StoredVideo:
    """Validate a short MP4/WebM clip and store a re-encoded copy (no metadata) and a thumbnail.

    The clip is recognised by its container's magic bytes, opened with OpenCV's FFmpeg backend, and
    refused if longer than :data:`MAX_VIDEO_S` or unreadable. The stored copy is re-encoded from the
    decoded frames (MPEG-4 Part 2, at most 1280 px wide): no container metadata such as a GPS track
    survives; the sound track is not kept.
    """
    import tempfile

    import cv2

    if _size(data) > MAX_VIDEO_BYTES:
        raise MediaRefused(f"video quá lớn: {_size(data) / 1e6:.1f} MB, tối đa {MAX_VIDEO_BYTES / 1e6:.0f} MB "
                           "(video too large)")  # fmt: skip
    spooled = data if isinstance(data, Path) else None
    if spooled is not None:
        with spooled.open("rb") as head:
            data = head.read(16)
    kind = _video_kind(data)
    if kind is None:
        raise MediaRefused("không phải video MP4 hoặc WebM (not an MP4 or WebM video)")
    with tempfile.TemporaryDirectory(prefix="ioc-video-") as tmp:
        source = Path(tmp) / f"in.{kind}"
        if spooled is not None:
            source.symlink_to(spooled.resolve())  # the container type from the name, the bytes from the spool
        else:
            source.write_bytes(data)
        capture = cv2.VideoCapture(str(source), cv2.CAP_FFMPEG)
        try:
            if not capture.isOpened():
                raise MediaRefused("video hỏng hoặc không đọc được (corrupt video)")
            fps = capture.get(cv2.CAP_PROP_FPS) or 0.0
            frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
            declared = (int(capture.get(cv2.CAP_PROP_FRAME_WIDTH) or 0),
                        int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0))  # fmt: skip
            if max(declared) > MAX_VIDEO_SIDE_PX:
                raise MediaRefused(f"video {declared[0]}x{declared[1]} lớn hơn 4K (larger than 4K)")
            if fps <= 0 or frames <= 0:
                raise MediaRefused("video không có khung hình đọc được (no readable frames)")
            duration = frames / fps
            if duration > MAX_VIDEO_S:
                raise MediaRefused(f"video dài {duration:.0f} giây, tối đa {MAX_VIDEO_S:.0f} giây (video too long)")
            ok, first = capture.read()
            if not ok:
                raise MediaRefused("video hỏng hoặc không đọc được (corrupt video)")
            height, width = first.shape[:2]
            scale = min(1.0, VIDEO_MAX_PX / width)
            size = (int(width * scale) // 2 * 2, int(height * scale) // 2 * 2)
            target = Path(tmp) / "out.mp4"
            writer = cv2.VideoWriter(str(target), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
            written = 0
            frame = first
            while ok and written <= MAX_VIDEO_S * fps + 1:
                writer.write(cv2.resize(frame, size) if size != (width, height) else frame)
                written += 1
                ok, frame = capture.read()
            writer.release()
            if written < max(1, frames // 2):
                raise MediaRefused("video bị cắt cụt: chỉ đọc được một phần (truncated video)")
            ok_thumb, thumb = cv2.imencode(".jpg", cv2.resize(first, (THUMB_PX, max(1, THUMB_PX * height // width))))
        finally:
            capture.release()
        stored = target.read_bytes()
    digest = hashlib.sha256(stored).hexdigest()
    key = f"reports/{digest[:2]}/{digest}.mp4"
    thumb_key = f"reports/{digest[:2]}/{digest}-thumb.jpg"
    parts = {key: _write_part(media_root, stored)}
    if ok_thumb:
        parts[thumb_key] = _write_part(media_root, thumb.tobytes())
    return StoredVideo(digest, key, thumb_key, "video/mp4", len(stored), size[0], size[1], round(duration, 2), parts)
