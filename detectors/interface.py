"""The one seam between the video pipeline and any object detector.

Keeping it to ``detect(frames) -> detections per frame`` (batched) lets onnxruntime, OpenCV DNN or
another provider be swapped in by configuration; nothing downstream knows which one ran.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

#: The classes the IOC cares about; everything else a model sees is dropped.
CLASSES: tuple[str, ...] = ("person", "bicycle", "motorbike", "car", "bus", "truck")


@dataclass(frozen=True, slots=True)
class Detection:
    """One object in one frame; ``box`` is (x1, y1, x2, y2) in that frame's pixels."""

    class_name: str
    score: float
    box: tuple[float, float, float, float]

    @property
    def center(self) -> tuple[float, float]:
        x1, y1, x2, y2 = self.box
        return ((x1 + x2) / 2.0, (y1 + y2) / 2.0)

    @property
    def foot(self) -> tuple[float, float]:
        """Bottom-centre of the box: where the object touches the ground, used for zones and lines."""
        x1, _, x2, y2 = self.box
        return ((x1 + x2) / 2.0, y2)


@runtime_checkable
class Detector(Protocol):
    """Anything that turns a batch of BGR frames into detections, one list per frame."""

    type_key: str

    def detect(self, frames: Sequence[np.ndarray]) -> list[list[Detection]]:
        """Detections for each frame, in the same order; frames may differ in size."""
        ...
