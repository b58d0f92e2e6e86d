"""Per-box evaluation of person detection against boxes labelled by hand.

Counting people per frame hides errors: a miss and a false positive on the same frame cancel. Here
every labelled person box is matched to at most one detected box (greedy by IoU, highest first, IoU
>= 0.5, the PASCAL VOC criterion), so precision = matched / detected, recall = matched / labelled, and
the count error (mean |detected - labelled| per frame) is reported beside them. Labels may be tagged
``distant``, ``occluded`` or ``truncated`` (cut by the frame edge): recall is also given for those, since
that is where detectors fail.
``ignore`` areas (a poster of a person, a half-visible shape nobody could decide on) are neither
required nor counted as false positives.

Each clip is played through the real pipeline (motion gate, tracker, and crops in region mode) at the
labels' frame step, with a model run forced on each labelled frame, so the figures are the ones the
worker would get. Every clip is scored alone and all clips together (boxes pooled).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from detectors.interface import Detection, Detector
from detectors.tracking import iou_matrix

Box = tuple[float, float, float, float]
LABELS = Path(__file__).resolve().parent.parent / "tests" / "data" / "person_boxes.json"


@dataclass(frozen=True)
class Labelled:
    """The people in one frame of one clip."""

    clip: str
    frame: int
    boxes: tuple[Box, ...]
    tags: tuple[frozenset[str], ...]
    ignore: tuple[Box, ...] = ()


def load_labels(path: Path = LABELS) -> tuple[dict[str, Any], list[Labelled]]:
    """The clips (name -> how to get it) and the labelled frames of ``path``."""
    data = json.loads(path.read_text())
    frames = []
    for item in data["frames"]:
        persons = item.get("persons", [])
        frames.append(Labelled(item["clip"], int(item["frame"]), tuple(tuple(map(float, p["box"])) for p in persons),
                               tuple(frozenset(p.get("tags", ())) for p in persons),
                               tuple(tuple(map(float, b)) for b in item.get("ignore", ()))))  # fmt: skip
    return data["clips"], frames


@dataclass
class Score:
    """Matching totals; ``add`` one frame at a time."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    frames: int = 0
    count_error: float = 0.0
    tagged: dict[str, list[int]] = field(default_factory=dict)  # tag -> [found, labelled]

    def add(self, truth: Labelled, found: Sequence[Box], iou_min: float = 0.5) -> None:
        ious = iou_matrix(list(truth.boxes), list(found))
        matched_truth: set[int] = set()
        matched_found: set[int] = set()
        for flat in np.argsort(-ious, axis=None) if ious.size else []:
            i, j = divmod(int(flat), ious.shape[1])
            if ious[i, j] < iou_min:
                break
            if i not in matched_truth and j not in matched_found:
                matched_truth.add(i)
                matched_found.add(j)
        unmatched = [b for j, b in enumerate(found) if j not in matched_found]
        if truth.ignore:
            ign = iou_matrix(unmatched, list(truth.ignore))
            unmatched = [b for k, b in enumerate(unmatched) if not (ign.size and ign[k].max() >= iou_min)]
        self.tp += len(matched_truth)
        self.fn += len(truth.boxes) - len(matched_truth)
        self.fp += len(unmatched)
        self.frames += 1
        self.count_error += abs(len(matched_found) + len(unmatched) - len(truth.boxes))
        for i, tags in enumerate(truth.tags):
            for tag in tags:
                got = self.tagged.setdefault(tag, [0, 0])
                got[0] += i in matched_truth
                got[1] += 1

    def figures(self, prefix: str = "") -> dict[str, float | int | None]:
        def ratio(a: int, b: int) -> float | None:
            return round(a / b, 3) if b else None

        out: dict[str, float | int | None] = {
            f"{prefix}precision": ratio(self.tp, self.tp + self.fp),
            f"{prefix}recall": ratio(self.tp, self.tp + self.fn),
            f"{prefix}count_error_per_frame": round(self.count_error / self.frames, 3) if self.frames else None,
            f"{prefix}true_positives": self.tp,
            f"{prefix}false_positives": self.fp,
            f"{prefix}missed": self.fn,
        }
        for tag, (found, total) in sorted(self.tagged.items()):
            out[f"{prefix}recall_{tag}"] = ratio(found, total)
        return out


def persons(detections: Iterable[Detection]) -> list[Box]:
    return [d.box for d in detections if d.class_name == "person"]


def clip_path(clips: Mapping[str, Any], name: str) -> Path:
    """Where a labelled clip is on this machine: ``vtest`` fetched and verified like the models, a ``file``
    shipped in the repository and checked against its pinned sha256."""
    spec = clips[name]
    if spec.get("fetch") == "vtest":
        from detectors.media import vtest_video

        return vtest_video()
    if spec.get("fetch") == "file":
        from detectors.media import shipped_clip

        return shipped_clip(spec["path"], spec["sha256"])
    raise ValueError(f"clip {name!r}: no way to fetch it")


def evaluate(detector: Detector, regions: bool, labels: Path = LABELS, step: int = 2,
             fps: float = 5.0) -> list[dict[str, float | int | str | None]]:
    """Play every labelled clip through a fresh pipeline (every ``step``-th frame, ``fps`` of frame time)
    and score the detections of the labelled frames (at the detector's ``conf``, which the caller sets
    for the mode: ``regions.REGION_CONF`` for region mode). One flat dict per clip, then ``clip: "all"``
    (the boxes of every clip pooled, not an average of the clips' ratios)."""
    from detectors.pipeline import CameraPipeline, run_batch

    clips, labelled = load_labels(labels)
    mode = {"mode": "regions" if regions else "full_frame", "conf": getattr(detector, "conf", None)}
    total, out = Score(), []
    for name in clips:
        wanted = {f.frame: f for f in labelled if f.clip == name}
        if not wanted:
            continue
        score = Score()
        pipe = CameraPipeline.from_specs(name, [], regions=regions, tamper=None)
        capture, index, last = cv2.VideoCapture(str(clip_path(clips, name))), 0, max(wanted)
        while index <= last:
            ok, frame = capture.read()
            if not ok:
                break
            if index % step == 0 or index in wanted:
                pipe.force = index in wanted
                run_batch(detector, [(pipe, frame, index / step / fps, 0.0)])
                if index in wanted:
                    found = persons(pipe.detections)
                    score.add(wanted[index], found)
                    total.add(wanted[index], found)
            index += 1
        capture.release()
        out.append({**mode, "clip": name, "frames": score.frames, **score.figures()})
    out.append({**mode, "clip": "all", "frames": total.frames, **total.figures()})
    return out
