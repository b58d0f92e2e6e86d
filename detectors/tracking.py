"""Tracking across frames so one person is one track (and one event), not one event per frame.

A small ByteTrack-style IoU tracker instead of ``supervision``: ByteTrack's key idea is kept
(high-score detections matched first, then low-score ones rescue existing tracks, so a person whose
score dips while occluded keeps their id), while the Kalman filter is replaced by a constant-velocity
box prediction, which is enough at the low, gated frame rates used here and avoids a dependency.
Matching is greedy by IoU per class.

A track's lifetime follows the detection cadence, not the clock: it ends after ``max_misses``
consecutive model runs that looked at its place and did not find it (and never sooner than
``min_age`` seconds after it was last seen, so a person hidden for a moment keeps their id). While
the scene is still the motion gate sends few frames to the model; counting seconds would end a
standing person's track between two detections and restart every dwell timer (issue #18).
A track whose foot point stays within a few pixels for ``stationary_s`` is flagged ``stationary``.
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
    misses: int = 0  # consecutive model runs over this track's place that did not find it
    anchor: tuple[float, float] = (0.0, 0.0)  # foot point where the object last settled
    settled_at: float = 0.0  # when it settled there
    stationary: bool = False  # the foot has stayed near ``anchor`` for the tracker's ``stationary_s``

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


Box = tuple[float, float, float, float]


def _covered(box: Box, regions: list[Box] | None) -> bool:
    """Whether the model looked at this box: its centre lies in one of the checked regions (None = whole frame)."""
    if regions is None:
        return True
    cx, cy = (box[0] + box[2]) / 2.0, (box[1] + box[3]) / 2.0
    return any(r[0] <= cx <= r[2] and r[1] <= cy <= r[3] for r in regions)


class IouTracker:
    """Per-camera tracker; ``update`` returns the tracks seen in this frame."""

    def __init__(self, high: float = 0.5, match_iou: float = 0.3, max_misses: int = 3, min_age: float = 2.0,
                 history: int = 50, stationary_s: float = 5.0, stationary_px: float = 6.0) -> None:
        self.high, self.match_iou, self.history = high, match_iou, history
        self.max_misses, self.min_age = max_misses, min_age
        self.stationary_s, self.stationary_px = stationary_s, stationary_px
        self.tracks: list[Track] = []
        self._next_id = 1

    def update(self, detections: list[Detection], now: float, regions: list[Box] | None = None) -> list[Track]:
        """Match one model run's detections; ``regions`` are the parts of the frame the model looked at
        (None: all of it). Only tracks inside them can be missed."""
        unmatched = list(self.tracks)
        seen: list[Track] = []
        high = [d for d in detections if d.score >= self.high]
        low = [d for d in detections if d.score < self.high]
        for group, may_create in ((high, True), (low, False)):
            rest = self._match(group, unmatched, seen, now)
            if may_create:
                for det in rest:
                    track = Track(self._next_id, det, now, now, history=[det.foot], anchor=det.foot, settled_at=now)
                    self._next_id += 1
                    self.tracks.append(track)
                    seen.append(track)
        for track in unmatched:
            if _covered(track.predicted_box(now), regions):
                track.misses += 1
        self.tracks = [t for t in self.tracks
                       if t.misses <= self.max_misses or now - t.last_seen <= self.min_age]  # fmt: skip
        return seen

    def alive(self) -> list[Track]:
        """Every live track, seen in the last model run or not (the places to re-check)."""
        return list(self.tracks)

    def _match(self, dets: list[Detection], tracks: list[Track], seen: list[Track], now: float) -> list[Detection]:
        # The better of the predicted and the last box: a person who walked in and stopped is found where
        # they stopped, however long the gate kept the model away (the velocity is stale by then).
        boxes = [d.box for d in dets]
        ious = np.maximum(iou_matrix(boxes, [t.predicted_box(now) for t in tracks]),
                          iou_matrix(boxes, [t.detection.box for t in tracks]))  # fmt: skip
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
        track.misses = 0
        tolerance = max(self.stationary_px, 0.1 * (det.box[3] - det.box[1]))
        if float(np.hypot(det.foot[0] - track.anchor[0], det.foot[1] - track.anchor[1])) > tolerance:
            track.anchor, track.settled_at = det.foot, now
        track.stationary = now - track.settled_at >= self.stationary_s
