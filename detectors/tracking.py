"""Tracking across frames so one person is one track (and one event), not one event per frame.

A small ByteTrack-style IoU tracker instead of ``supervision``: ByteTrack's key idea is kept
(high-score detections matched first, then low-score ones rescue existing tracks, so a person whose
score dips while occluded keeps their id), while the Kalman filter is replaced by a constant-velocity
box prediction, which is enough at the low, gated frame rates used here and avoids a dependency.
Matching is greedy by IoU per class.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from detectors.interface import Detection


@dataclass
class Track:
    track_id: int
    detection: Detection
    first_seen: float
    last_seen: float
    hits: int = 1
    velocity: tuple[float, float] = (0.0, 0.0)
    history: list[tuple[float, float]] = field(default_factory=list)  # foot points, oldest first

    @property
    def class_name(self) -> str:
        return self.detection.class_name

    def predicted_box(self, now: float) -> tuple[float, float, float, float]:
        dt = now - self.last_seen
        x1, y1, x2, y2 = self.detection.box
        dx, dy = self.velocity[0] * dt, self.velocity[1] * dt
        return (x1 + dx, y1 + dy, x2 + dx, y2 + dy)


def iou_matrix(a: list[tuple[float, float, float, float]], b: list[tuple[float, float, float, float]]) -> np.ndarray:
    if not a or not b:
        return np.zeros((len(a), len(b)))
    aa, bb = np.asarray(a)[:, None, :], np.asarray(b)[None, :, :]
    iw = np.clip(np.minimum(aa[..., 2], bb[..., 2]) - np.maximum(aa[..., 0], bb[..., 0]), 0, None)
    ih = np.clip(np.minimum(aa[..., 3], bb[..., 3]) - np.maximum(aa[..., 1], bb[..., 1]), 0, None)
    inter = iw * ih
    area = lambda x: (x[..., 2] - x[..., 0]) * (x[..., 3] - x[..., 1])  # noqa: E731
    return inter / np.maximum(area(aa) + area(bb) - inter, 1e-9)


class IouTracker:
    """Per-camera tracker; ``update`` returns the tracks seen in this frame."""

    def __init__(self, high: float = 0.5, match_iou: float = 0.3, max_age: float = 2.0, history: int = 50) -> None:
        self.high, self.match_iou, self.max_age, self.history = high, match_iou, max_age, history
        self.tracks: list[Track] = []
        self._next_id = 1

    def update(self, detections: list[Detection], now: float) -> list[Track]:
        self.tracks = [t for t in self.tracks if now - t.last_seen <= self.max_age]
        unmatched = list(self.tracks)
        seen: list[Track] = []
        high = [d for d in detections if d.score >= self.high]
        low = [d for d in detections if d.score < self.high]
        for group, may_create in ((high, True), (low, False)):
            rest = self._match(group, unmatched, seen, now)
            if may_create:
                for det in rest:
                    track = Track(self._next_id, det, now, now, history=[det.foot])
                    self._next_id += 1
                    self.tracks.append(track)
                    seen.append(track)
        return seen

    def _match(self, dets: list[Detection], tracks: list[Track], seen: list[Track], now: float) -> list[Detection]:
        ious = iou_matrix([d.box for d in dets], [t.predicted_box(now) for t in tracks])
        for i, d in enumerate(dets):
            for j, t in enumerate(tracks):
                if d.class_name != t.class_name:
                    ious[i, j] = 0.0
        left = set(range(len(dets)))
        taken: set[int] = set()
        for flat in np.argsort(-ious, axis=None) if ious.size else []:
            i, j = divmod(int(flat), ious.shape[1])
            if ious[i, j] < self.match_iou:
                break
            if i in left and j not in taken:
                self._advance(tracks[j], dets[i], now)
                seen.append(tracks[j])
                left.discard(i)
                taken.add(j)
        for j in sorted(taken, reverse=True):
            tracks.pop(j)
        return [dets[i] for i in sorted(left)]

    def _advance(self, track: Track, det: Detection, now: float) -> None:
        dt = max(now - track.last_seen, 1e-3)
        (ox, oy), (nx, ny) = track.detection.center, det.center
        track.velocity = ((nx - ox) / dt, (ny - oy) / dt)
        track.detection, track.last_seen, track.hits = det, now, track.hits + 1
        track.history = (track.history + [det.foot])[-self.history :]
