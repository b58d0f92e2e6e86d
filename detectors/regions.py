"""Region-based detection: the model looks at square crops of the frame at native resolution.

A 768x576 camera frame letterboxed into a 416 px network input loses almost half its pixels, and a
person 40 px tall far from the camera shrinks to 22 px, under what YOLOv4-tiny finds reliably. As in
Frigate, the places worth looking at (where motion is, where tracked objects are) are cut out as
squares of at least the network's input size, so small objects reach the model at full resolution,
and all crops of all cameras go to the model in one batch. Boxes are mapped back to the frame and the
duplicates of overlapping crops are merged by per-class NMS. A periodic full frame (decided by the
pipeline) still finds objects that appeared without motion.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from detectors.interface import Detection

Box = tuple[float, float, float, float]

#: Score threshold of region mode. Crops at native resolution make the model surer of everything, traffic
#: cones included: at the full-frame threshold (0.3) region mode found more people (recall 0.869 vs 0.832
#: on vtest.avi's labelled frames) but with 12 false positives instead of 2; at 0.55 it keeps 2 (precision
#: 0.989, equal) and recall 0.850. The same threshold costs people cut by the frame's edge, who score lower
#: in a crop: on the second labelled clip region mode finds 16 of 19, full frame 19 (docs/performance.md).
REGION_CONF = 0.55


@dataclass(frozen=True)
class View:
    """One input for the model: a crop of the frame (or the whole frame) and where it sits."""

    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def box(self) -> Box:
        return (float(self.x0), float(self.y0), float(self.x1), float(self.y1))

    def cut(self, frame: np.ndarray) -> np.ndarray:
        return frame[self.y0 : self.y1, self.x0 : self.x1]


def full_view(frame: np.ndarray) -> View:
    return View(0, 0, int(frame.shape[1]), int(frame.shape[0]))


def _square(box: Box, side: int, width: int, height: int) -> View:
    """A square of ``side`` (capped by the frame) centred on the box, shifted to lie inside the frame."""
    side = min(side, width, height)
    cx, cy = (box[0] + box[2]) / 2.0, (box[1] + box[3]) / 2.0
    x0 = int(round(min(max(cx - side / 2.0, 0), width - side)))
    y0 = int(round(min(max(cy - side / 2.0, 0), height - side)))
    return View(x0, y0, x0 + side, y0 + side)


def _inside(box: Box, view: View, slack: float = 0.0) -> bool:
    return (box[0] >= view.x0 - slack and box[1] >= view.y0 - slack
            and box[2] <= view.x1 + slack and box[3] <= view.y1 + slack)  # fmt: skip


def plan_views(boxes: Sequence[Box], width: int, height: int, side: int, margin: float = 0.25,
               max_views: int = 4) -> list[View] | None:
    """Square crops covering every box (grown by ``margin`` of its size); None when a full frame is the
    better deal (an object as big as the frame). More places than ``max_views`` (motion all over a busy
    scene) give overlapping tiles of the whole frame, each at native resolution, when that takes at most
    ``max_views`` inputs."""
    views: list[View] = []
    for box in sorted(boxes, key=lambda b: (b[3] - b[1]) * (b[2] - b[0]), reverse=True):
        bw, bh = box[2] - box[0], box[3] - box[1]
        grown = (box[0] - margin * bw, box[1] - margin * bh, box[2] + margin * bw, box[3] + margin * bh)
        if any(_inside(grown, v) for v in views):
            continue
        need = int(np.ceil(max(grown[2] - grown[0], grown[3] - grown[1], side)))
        if need >= min(width, height):
            return None  # an object as big as the frame: the full frame sees it best
        views.append(_square(grown, need, width, height))
        if len(views) > max_views:
            return tiles(width, height, side, max_views)
    return views


def tiles(width: int, height: int, side: int, max_views: int = 4) -> list[View] | None:
    """Overlapping squares of ``side`` covering the whole frame (a busy scene: motion everywhere), or None
    when that takes more than ``max_views`` (a frame much larger than the model's input)."""
    side = min(side, width, height)
    nx, ny = -(-width // side), -(-height // side)
    if nx * ny > max_views:
        return None
    xs = [round(i * (width - side) / max(nx - 1, 1)) for i in range(nx)]
    ys = [round(j * (height - side) / max(ny - 1, 1)) for j in range(ny)]
    return [View(x, y, x + side, y + side) for y in ys for x in xs]


def merge(per_view: Sequence[tuple[View, list[Detection]]], width: int, height: int,
          iou: float = 0.45, edge: float = 3.0) -> list[Detection]:
    """Detections of all views in frame pixels, duplicates removed. A box cut by a crop's inner edge
    (not the frame's) is a part of an object and is dropped when another view may hold all of it."""
    found: list[Detection] = []
    for view, dets in per_view:
        for d in dets:
            x1, y1, x2, y2 = d.box[0] + view.x0, d.box[1] + view.y0, d.box[2] + view.x0, d.box[3] + view.y0
            cut = ((x1 <= view.x0 + edge and view.x0 > 0) or (y1 <= view.y0 + edge and view.y0 > 0)
                   or (x2 >= view.x1 - edge and view.x1 < width) or (y2 >= view.y1 - edge and view.y1 < height))
            if cut and len(per_view) > 1:
                continue
            found.append(Detection(d.class_name, d.score, (x1, y1, x2, y2)))
    if len(per_view) <= 1:
        return found
    out: list[Detection] = []
    for name in {d.class_name for d in found}:
        group = [d for d in found if d.class_name == name]
        rects = [[d.box[0], d.box[1], d.box[2] - d.box[0], d.box[3] - d.box[1]] for d in group]
        keep = cv2.dnn.NMSBoxes(rects, [d.score for d in group], 0.0, iou)
        out += [group[int(i)] for i in np.asarray(keep).reshape(-1)]
    return sorted(out, key=lambda d: -d.score)
