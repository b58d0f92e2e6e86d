"""Camera tamper from image statistics alone, no model: covered, blurred, moved, frozen.

Each check compares the current low-resolution frame with a reference learnt while the camera was
healthy, so a dark or soft scene is not mistaken for tampering:
- covered: almost no contrast left (grey-level standard deviation collapses);
- blurred: sharpness (variance of the Laplacian) falls under a fraction of the reference;
- moved: the camera was turned: ORB features of the reference background, matched to the frame with
  RANSAC, show a shift of more than a share of the width, or no longer match at all although the
  frame is neither covered nor blurred (a different scene). Features are anchored on the static
  background, so people walking through the scene do not move it; checked at most every
  ``moved_check_s`` (about 4 ms at 320 px wide).
- frozen: consecutive frames are bit-identical for ``frozen_seconds`` (a stuck encoder or a photo).
A condition must hold for ``hold_seconds`` before it is reported, and is reported once until it clears.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np


@dataclass
class TamperDetector:
    width: int = 160
    covered_std: float = 8.0
    blur_ratio: float = 0.25
    moved_share: float = 0.08
    frozen_seconds: float = 10.0
    hold_seconds: float = 2.0
    reference_frames: int = 10
    feature_width: int = 320
    moved_check_s: float = 0.5
    min_inliers: int = 12
    _ref: np.ndarray | None = None
    _ref_sharp: float = 0.0
    _learnt: int = 0
    _prev: np.ndarray | None = None
    _same_since: float | None = None
    _since: dict[str, float] = field(default_factory=dict)
    _active: set[str] = field(default_factory=set)
    _learning: list[np.ndarray] = field(default_factory=list)
    _ref_features: tuple | None = None
    _moved_checked_at: float = float("-inf")
    _moved: bool = False
    _orb: cv2.ORB = field(default_factory=lambda: cv2.ORB_create(500))
    _matcher: cv2.BFMatcher = field(default_factory=lambda: cv2.BFMatcher(cv2.NORM_HAMMING, crossCheck=True))

    def _small(self, frame: np.ndarray) -> np.ndarray:
        h, w = frame.shape[:2]
        gray = cv2.cvtColor(cv2.resize(frame, (self.width, max(1, round(h * self.width / w)))), cv2.COLOR_BGR2GRAY)
        return gray

    @staticmethod
    def sharpness(gray: np.ndarray) -> float:
        return float(cv2.Laplacian(gray, cv2.CV_32F).var())

    def conditions(self, frame: np.ndarray, now: float) -> set[str]:
        """The tamper conditions visible in this frame (before the hold time), learning the reference first."""
        gray = self._small(frame)
        found: set[str] = set()
        if self._prev is not None and np.array_equal(gray, self._prev):
            self._same_since = self._same_since if self._same_since is not None else now
            if now - self._same_since >= self.frozen_seconds:
                found.add("frozen")
        else:
            self._same_since = None
        self._prev = gray
        std, sharp = float(gray.std()), self.sharpness(gray)
        if std < self.covered_std:
            found.add("covered")
        if self._learnt < self.reference_frames and not found:
            f = gray.astype(np.float32)
            self._ref = f if self._ref is None else self._ref * 0.8 + f * 0.2
            self._ref_sharp = sharp if self._learnt == 0 else max(self._ref_sharp * 0.8 + sharp * 0.2, 1e-6)
            self._learnt += 1
            self._learning.append(self._features_gray(frame))
            if self._learnt == self.reference_frames:
                # The median of the learning frames is the background: passers-by vanish from it.
                background = np.median(np.stack(self._learning), axis=0).astype(np.uint8)
                self._ref_features = self._orb.detectAndCompute(background, None)
                self._learning = []
            return found
        if self._ref is None:
            return found
        if "covered" not in found and sharp < self.blur_ratio * self._ref_sharp:
            found.add("blurred")
        if not found & {"covered", "blurred"} and self._camera_moved(frame, now):
            found.add("moved")
        return found

    def _features_gray(self, frame: np.ndarray) -> np.ndarray:
        h, w = frame.shape[:2]
        size = (self.feature_width, max(1, round(h * self.feature_width / w)))
        return cv2.cvtColor(cv2.resize(frame, size), cv2.COLOR_BGR2GRAY)

    def _camera_moved(self, frame: np.ndarray, now: float) -> bool:
        if self._ref_features is None or now - self._moved_checked_at < self.moved_check_s:
            return self._moved
        self._moved_checked_at = now
        ref_points, ref_desc = self._ref_features
        points, desc = self._orb.detectAndCompute(self._features_gray(frame), None)
        if ref_desc is None or len(ref_points) < 2 * self.min_inliers:
            self._moved = False  # a featureless reference (a blank wall) cannot tell
            return self._moved
        matches = self._matcher.match(ref_desc, desc) if desc is not None else []
        inliers, shift = 0, 0.0
        if len(matches) >= 3:
            a = np.float32([ref_points[m.queryIdx].pt for m in matches])
            b = np.float32([points[m.trainIdx].pt for m in matches])
            transform, mask = cv2.estimateAffinePartial2D(a, b, method=cv2.RANSAC, ransacReprojThreshold=3.0)
            if transform is not None and mask is not None:
                inliers = int(mask.sum())
                shift = float(np.hypot(transform[0, 2], transform[1, 2]))
        lost = inliers < self.min_inliers
        self._moved = lost or shift > self.moved_share * self.feature_width
        return self._moved

    def update(self, frame: np.ndarray, now: float) -> list[str]:
        """Conditions that just became reportable (held long enough and not reported yet)."""
        found = self.conditions(frame, now)
        fresh = []
        for name in ("covered", "blurred", "moved", "frozen"):
            if name not in found:
                self._since.pop(name, None)
                self._active.discard(name)
                continue
            since = self._since.setdefault(name, now)
            if now - since >= self.hold_seconds and name not in self._active:
                self._active.add(name)
                fresh.append(name)
        return fresh

    @classmethod
    def from_sensitivity(cls, sensitivity: float = 0.5, hold_seconds: float = 2.0) -> TamperDetector:
        """Thresholds from the camera's configured tamper ``sensitivity`` (0..1; 0.5 = the defaults, tuned on
        the sample clip): each step of 0.5 doubles (or halves) how easily a condition is reported."""
        factor = 2.0 ** ((min(max(sensitivity, 0.0), 1.0) - 0.5) * 2.0)
        return cls(covered_std=8.0 * factor, blur_ratio=min(0.25 * factor, 0.6), moved_share=0.08 / factor,
                   hold_seconds=hold_seconds)  # fmt: skip
