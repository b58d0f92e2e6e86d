"""Evidence for an event: the frame with boxes and zone drawn, plus a crop of the object, as JPEG bytes."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from detectors.rules import Event
from detectors.tracking import Track

_ZONE = (0, 200, 255)
_BOX = (0, 255, 0)
_HIT = (0, 0, 255)


@dataclass(frozen=True)
class Evidence:
    snapshot_jpeg: bytes
    crop_jpeg: bytes | None


def annotate(frame: np.ndarray, tracks: Sequence[Track], event: Event | None = None) -> np.ndarray:
    """A copy of the frame with every track's box and id, the event's zone, and its object in red."""
    boxes = [(t.detection.box, t.class_name, t.track_id) for t in tracks]
    return draw_tracks(frame, boxes, set(event.track_ids) if event else set(), event.zone if event else None)


def draw_tracks(frame: np.ndarray, boxes: Iterable[tuple[Sequence[float], str, int]], hit: Collection[int] = (),
                zone: Sequence[tuple[float, float]] | None = None) -> np.ndarray:
    """A copy of the frame with each (box, class, track id) drawn, those in ``hit`` in red, and ``zone``."""
    out = frame.copy()
    if zone:
        pts = np.asarray(zone, np.int32).reshape(-1, 1, 2)
        cv2.polylines(out, [pts], True, _ZONE, 2)
    for box, class_name, track_id in boxes:
        x1, y1, x2, y2 = (int(v) for v in box)
        colour = _HIT if track_id in hit else _BOX
        cv2.rectangle(out, (x1, y1), (x2, y2), colour, 2)
        cv2.putText(out, f"{class_name}#{track_id}", (x1, max(12, y1 - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                    colour, 1, cv2.LINE_AA)
    return out


def make_evidence(frame: np.ndarray, tracks: Sequence[Track], event: Event, quality: int = 85) -> Evidence:
    params = [cv2.IMWRITE_JPEG_QUALITY, quality]
    ok, snap = cv2.imencode(".jpg", annotate(frame, tracks, event), params)
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    crop = None
    if event.box is not None:
        h, w = frame.shape[:2]
        x1, y1, x2, y2 = event.box
        mx, my = (x2 - x1) * 0.15, (y2 - y1) * 0.15
        a, b = max(0, int(x1 - mx)), max(0, int(y1 - my))
        c, d = min(w, int(x2 + mx)), min(h, int(y2 + my))
        if c > a and d > b:
            ok, enc = cv2.imencode(".jpg", frame[b:d, a:c], params)
            crop = enc.tobytes() if ok else None
    return Evidence(snap.tobytes(), crop)
