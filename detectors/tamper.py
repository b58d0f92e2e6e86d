"""Camera tamper from image statistics alone, no model: covered, blurred, moved, frozen.

Each check compares the current low-resolution frame with a reference learnt while the camera was
healthy, so a dark or soft scene is not mistaken for tampering:
- covered: almost no contrast left (grey-level standard deviation collapses);
- blurred: sharpness (variance of the Laplacian) falls under a fraction of the reference;
- moved: the scene shifts (phase correlation against the reference) by more than a share of the width;
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
    hold_seconds: float = 3.0
    reference_frames: int = 10
    _ref: np.ndarray | None = None
    _ref_sharp: float = 0.0
    _learnt: int = 0
    _prev: np.ndarray | None = None
    _same_since: float | None = None
    _since: dict[str, float] = field(default_factory=dict)
    _active: set[str] = field(default_factory=set)

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
            return found
        if self._ref is None:
            return found
        if "covered" not in found and sharp < self.blur_ratio * self._ref_sharp:
            found.add("blurred")
        if "covered" not in found:
            window = cv2.createHanningWindow(gray.shape[::-1], cv2.CV_32F)
            (dx, dy), response = cv2.phaseCorrelate(self._ref, gray.astype(np.float32), window)
            if response > 0.05 and max(abs(dx), abs(dy)) > self.moved_share * self.width:
                found.add("moved")
        return found

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
