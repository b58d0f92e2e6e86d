"""Evidence clips: a few seconds of video around each camera event, kept from the detector's frames.

The detector worker hands every processed frame to :class:`ClipRecorder` (``add``) and every event to
it (``trigger``). Each camera keeps a ring of its recent frames; an event takes the ring's last
``before_s`` seconds, collects the next ``after_s`` seconds as they arrive, and the clip is then encoded
by a writer thread at a lower CPU priority (nice 10 on Linux), so encoding never stalls the frame loop.

Format: VP8 in WebM (``cv2.VideoWriter`` fourcc ``VP80``; the opencv-python wheel's FFmpeg carries
libvpx). Debian's chromium plays it natively, with no proprietary codec; ``mp4v`` (MPEG-4 part 2) and
``MJPG`` encode too but no browser plays them, and H.264 (``avc1``) has no encoder in the wheel.

Bounds, all per camera unless said otherwise:

* memory: frames are kept at most ``fps`` per second, downscaled to at most ``max_width`` pixels wide,
  for ``before_s`` seconds (``ceil(before_s * fps) + 1`` frames); a pending clip holds at most
  ``ceil((before_s + after_s) * fps) + 1`` frames (shared with the ring), and at most ``max_pending``
  clips are pending. Defaults (3 s + 3 s at 4 fps, 640x480 frames of 0.9 MB): 13 ring frames, about
  12 MB per camera; with 2 clips pending, at most 13 + 2 x 12 = 37 distinct frames, about 34 MB;
* writer queue: ``queue_size`` finished clips for all cameras; a clip that finds the queue full is
  dropped with a warning (the event and its snapshot still go out);
* disk: a clip is at most 25 frames (about 1 MB at 640 px); after each write, the camera's clips older
  than ``keep_days`` and the oldest beyond ``budget_bytes`` are deleted; every camera's folder (those
  no longer configured too) is swept the same way when the writer starts and then hourly, so a camera
  with no new events does not keep old clips for ever.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from detectors.evidence import draw_tracks
from detectors.rules import Event

log = logging.getLogger(__name__)

CLIP_SUFFIX = "-clip.webm"
FOURCC = "VP80"
Box = tuple[tuple[float, float, float, float], str, int]  # box in the kept image's pixels, class, track id


SWEEP_EVERY_S = 3600.0  # how often every camera's clips are checked against the retention


def clip_ref_for(snapshot_ref: str) -> str:
    """The clip's reference beside its event's snapshot: ``evidence/<camera>/ab/<sha256>-clip.webm``."""
    return snapshot_ref.removesuffix(".jpg") + CLIP_SUFFIX


@dataclass(frozen=True)
class KeptFrame:
    at: float  # the frame's time (the worker's clock: unix seconds)
    image: np.ndarray  # downscaled to at most max_width wide
    boxes: tuple[Box, ...]
    scale: float  # kept pixels per frame pixel


@dataclass
class PendingClip:
    camera_id: str
    ref: str
    at: float
    until: float
    hit: frozenset[int]
    zone: Sequence[tuple[float, float]] | None
    frames: list[KeptFrame] = field(default_factory=list)


@dataclass(frozen=True)
class WrittenClip:
    ref: str
    frames: int
    fps: float
    first_at: float
    last_at: float
    event_at: float
    bytes: int
    encode_s: float


class ClipRecorder:
    """Per-camera frame rings and the clips cut from them; see the module docstring for the bounds."""

    def __init__(self, media_root: Path, *, before_s: float = 3.0, after_s: float = 3.0, fps: float = 4.0,
                 max_width: int = 640, max_pending: int = 2, queue_size: int = 8, keep_days: float = 30.0,
                 budget_bytes: int = 500 * 1024 * 1024) -> None:  # fmt: skip
        self.media_root = media_root
        self.before_s, self.after_s, self.fps = before_s, after_s, fps
        self.max_width, self.max_pending = max_width, max_pending
        self.keep_days, self.budget_bytes = keep_days, budget_bytes
        self.ring_frames = math.ceil(before_s * fps) + 1
        self.clip_frames = math.ceil((before_s + after_s) * fps) + 1
        self._rings: dict[str, deque[KeptFrame]] = {}
        self._pending: dict[str, list[PendingClip]] = {}
        self._due: dict[str, float] = {}  # when each camera's next frame is to be kept
        self._queue: queue.Queue[PendingClip | None] = queue.Queue(queue_size)
        self.written: deque[WrittenClip] = deque(maxlen=100)  # the latest writes, for logs and tests
        self.dropped = 0
        self._thread = threading.Thread(target=self._write_loop, name="clip-writer", daemon=True)
        self._thread.start()

    # -- the frame loop's side (cheap: a resize at most ``fps`` times a second per camera) ---------------
    def add(self, camera_id: str, image: np.ndarray, at: float, tracks: Sequence[Any] = ()) -> bool:
        """Offer a processed frame with its tracks; kept when ``1/fps`` has passed since the last kept."""
        ring = self._rings.setdefault(camera_id, deque(maxlen=self.ring_frames))
        due = self._due.get(camera_id, float("-inf"))
        if at < due - 0.1 / self.fps:
            return False
        # on schedule (so 25 fps in gives ``fps`` out, not a little more), unless the stream lagged
        self._due[camera_id] = due + 1 / self.fps if at - due < 1 / self.fps else at + 1 / self.fps
        height, width = image.shape[:2]
        scale = min(1.0, self.max_width / width)
        small = image if scale == 1.0 else cv2.resize(image, (round(width * scale), round(height * scale)),
                                                       interpolation=cv2.INTER_LINEAR)  # fmt: skip
        boxes = tuple((tuple(v * scale for v in t.detection.box), t.class_name, t.track_id) for t in tracks)
        kept = KeptFrame(at, small, boxes, scale)  # type: ignore[arg-type]
        ring.append(kept)
        while ring and ring[0].at < at - self.before_s:
            ring.popleft()
        pending = self._pending.get(camera_id, [])
        for clip in pending:
            if len(clip.frames) < self.clip_frames:
                clip.frames.append(kept)
        self._finish(camera_id, lambda clip: at >= clip.until or len(clip.frames) >= self.clip_frames)
        return True

    def trigger(self, camera_id: str, snapshot_ref: str, event: Event) -> str | None:
        """Start the clip of ``event`` (its reference, beside ``snapshot_ref``), or None when the
        camera already has ``max_pending`` clips under way (or this snapshot's clip is)."""
        pending = self._pending.setdefault(camera_id, [])
        ref = clip_ref_for(snapshot_ref)
        if len(pending) >= self.max_pending or any(c.ref == ref for c in pending):
            return None
        ring = self._rings.get(camera_id, deque())
        frames = [f for f in ring if f.at >= event.at - self.before_s][-self.clip_frames :]
        scale = frames[-1].scale if frames else 1.0
        zone = [(x * scale, y * scale) for x, y in event.zone] if event.zone else None
        pending.append(PendingClip(camera_id, ref, event.at, event.at + self.after_s, frozenset(event.track_ids),
                                   zone, frames))  # fmt: skip
        return ref

    def tick(self, now: float) -> None:
        """Finish the clips of cameras whose frames stopped coming (a lost stream): a second of grace."""
        for camera_id in list(self._pending):
            self._finish(camera_id, lambda clip: now >= clip.until + 1.0)

    def close(self, timeout_s: float = 30.0) -> None:
        """Write what every pending clip has, then stop the writer (waits for it)."""
        for camera_id in list(self._pending):
            self._finish(camera_id, lambda clip: True)
        self._queue.put(None)
        self._thread.join(timeout_s)

    def _finish(self, camera_id: str, done: Any) -> None:
        pending = self._pending.get(camera_id)
        if not pending:
            return
        for clip in [c for c in pending if done(c)]:
            pending.remove(clip)
            try:
                self._queue.put_nowait(clip)
            except queue.Full:
                self.dropped += 1
                log.warning("camera %s: evidence clip %s dropped (the clip writer is behind)", camera_id, clip.ref)

    # -- the writer thread ---------------------------------------------------------------------------
    def _write_loop(self) -> None:
        with contextlib.suppress(AttributeError, OSError):  # Linux: this thread alone yields the CPU to the
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)  # frame loop (encoding is heavy)
        self._sweep()
        swept = time.monotonic()
        while True:
            try:
                clip = self._queue.get(timeout=max(1.0, SWEEP_EVERY_S - (time.monotonic() - swept)))
            except queue.Empty:
                clip = False
            if clip is None:
                break
            if time.monotonic() - swept >= SWEEP_EVERY_S:
                self._sweep()
                swept = time.monotonic()
            if clip is False:
                continue
            try:
                written = write_clip(self.media_root, clip)
                if written is not None:
                    self.written.append(written)
                    log.info("camera %s: evidence clip %s (%d frames, %.1f s, %d kB, %.2f s to encode)",
                             clip.camera_id, written.ref, written.frames, written.frames / written.fps,
                             written.bytes // 1024, written.encode_s)  # fmt: skip
                prune(self.media_root / "evidence" / clip.camera_id, self.keep_days, self.budget_bytes)
            except Exception:  # noqa: BLE001 - one bad clip must not end the writer
                log.exception("camera %s: evidence clip %s failed", clip.camera_id, clip.ref)


    def _sweep(self) -> None:
        """Retention over every camera's folder (see the module docstring)."""
        root = self.media_root / "evidence"
        try:
            folders = [path for path in root.iterdir() if path.is_dir()]
        except OSError:  # nothing stored yet
            return
        removed = 0
        for folder in folders:
            try:
                removed += prune(folder, self.keep_days, self.budget_bytes)
            except OSError:
                log.exception("evidence clips: sweeping %s failed", folder)
        if removed:
            log.info("evidence clips: %d past their retention deleted", removed)


def write_clip(media_root: Path, clip: PendingClip) -> WrittenClip | None:
    """Encode the clip's frames (boxes drawn, the event's objects in red, its zone outlined) as WebM,
    written beside and renamed into place so the API never serves half a file."""
    if not clip.frames:
        return None
    started = time.perf_counter()
    first = clip.frames[0]
    frames = [f for f in clip.frames if f.image.shape == first.image.shape]
    span = frames[-1].at - frames[0].at
    fps = min(30.0, max(0.5, (len(frames) - 1) / span)) if len(frames) > 1 and span > 0 else 1.0
    height, width = first.image.shape[:2]
    path = media_root / clip.ref
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name.removesuffix('.webm')}.partial.webm")
    writer = cv2.VideoWriter(str(partial), cv2.VideoWriter_fourcc(*FOURCC), fps, (width, height))
    if not writer.isOpened():
        raise RuntimeError(f"no {FOURCC} encoder in this OpenCV build")
    try:
        for f in frames:
            writer.write(draw_tracks(f.image, f.boxes, clip.hit, clip.zone))
    finally:
        writer.release()
    os.replace(partial, path)
    return WrittenClip(clip.ref, len(frames), round(fps, 3), frames[0].at, frames[-1].at, clip.at,
                       path.stat().st_size, time.perf_counter() - started)  # fmt: skip


def prune(folder: Path, keep_days: float, budget_bytes: int, now: float | None = None) -> int:
    """Delete the folder's clips older than ``keep_days``, then the oldest while over ``budget_bytes``;
    return how many went. Snapshots (small, cited by alerts) are left alone."""
    now = time.time() if now is None else now
    clips = []
    for path in folder.glob(f"*/*{CLIP_SUFFIX}"):
        try:
            stat = path.stat()
        except FileNotFoundError:
            continue
        clips.append((stat.st_mtime, stat.st_size, path))
    clips.sort()
    removed, total = 0, sum(size for _, size, _ in clips)
    for mtime, size, path in clips:
        if mtime >= now - keep_days * 86400 and total <= budget_bytes:
            break
        path.unlink(missing_ok=True)
        total -= size
        removed += 1
    return removed
