"""One camera's path from frame to events, and the batching of model inputs across cameras.

frame -> tamper check + motion gate -> plan (what the model looks at) -> (batched across cameras)
detector -> tracker -> rules -> events with evidence. The detector is any
:class:`detectors.interface.Detector`.

What goes to the model, per frame (``CameraPipeline.plan``):
- the first frame of a stream, and the first after its size changed: the whole frame, so a person
  already standing there when the worker starts is found at once;
- motion: the whole frame (``regions=False``) or square crops around the moving areas and the live
  tracks (``regions=True``, see ``detectors.regions``);
- no motion but live tracks: their places are re-checked every ``check_s`` (the whole frame, or crops
  around the tracks), so a still person keeps their track and their dwell timers run on;
- nothing at all for ``full_every_s``: a whole frame, for what arrived without moving.
The tracker's lifetime counts missed model runs, not seconds (``detectors.tracking``), so it follows
this cadence.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from detectors.interface import Detection, Detector
from detectors.motion import MotionGate
from detectors.regions import View, full_view, merge, plan_views
from detectors.rules import Event, Rule, build_rule
from detectors.tamper import TamperDetector
from detectors.tracking import IouTracker, Track

log = logging.getLogger(__name__)

@dataclass
class CameraEvent:
    camera_id: str
    event: Event
    frame: np.ndarray
    tracks: list[Track]
    frame_time: float  # monotonic time the frame was read, for latency


def scale_spec(spec: Mapping[str, Any], sx: float, sy: float) -> dict[str, Any]:
    """A rule spec with its zone and line (pixels of the configured frame) scaled to another frame size."""
    out = dict(spec)
    for key in ("zone", "line"):
        if out.get(key):
            out[key] = [(float(x) * sx, float(y) * sy) for x, y in out[key]]
    if out.get("max_speed") is not None:
        out["max_speed"] = float(out["max_speed"]) * sx
    return out


@dataclass
class CameraPipeline:
    camera_id: str
    rules: list[Rule] = field(default_factory=list)
    gate: MotionGate = field(default_factory=lambda: MotionGate(max_skip=1 << 62))
    tracker: IouTracker = field(default_factory=IouTracker)
    tamper: TamperDetector | None = field(default_factory=TamperDetector)
    tracks: list[Track] = field(default_factory=list)
    check_s: float = 2.0  # live tracks re-checked at least this often while the gate is closed
    full_every_s: float = 5.0  # a whole frame at least this often
    regions: bool = False  # crops around motion and tracks instead of whole frames
    input_size: int = 416  # the model's input: the smallest crop side
    specs: list[dict[str, Any]] = field(default_factory=list)  # rule specs in pixels of ``frame_size``
    frame_size: tuple[int, int] | None = None  # (width, height) the zones were drawn on
    tz: Any = None
    frames: int = 0  # frames offered
    inferences: int = 0  # frames that went to the detector (whole or in crops)
    model_inputs: int = 0  # images the detector got (a frame in 3 crops counts 3)
    force: bool = False  # the next frame goes to the model whatever the gate says (evaluation, bench)
    detections: list[Detection] = field(default_factory=list)  # the last model run's, in frame pixels
    _size: tuple[int, int] | None = None
    _last_check: float = float("-inf")
    _last_full: float = float("-inf")

    @classmethod
    def from_specs(cls, camera_id: str, rules: Iterable[Mapping[str, Any]], mask: np.ndarray | None = None,
                   tz: Any = None, frame_size: tuple[int, int] | None = None, **options: Any) -> CameraPipeline:
        specs = [dict(r) for r in rules]
        return cls(camera_id, [build_rule(r, tz) for r in specs], MotionGate(mask=mask, max_skip=1 << 62),
                   specs=specs, frame_size=frame_size, tz=tz, **options)  # fmt: skip

    def _resized(self, width: int, height: int) -> None:
        """The stream's size changed (or is first seen): zones follow it, state starts afresh."""
        self._size = (width, height)
        self.gate.reset()
        self.tracker = IouTracker(self.tracker.high, self.tracker.match_iou, self.tracker.max_misses,
                                  self.tracker.min_age, self.tracker.history, self.tracker.stationary_s,
                                  self.tracker.stationary_px)  # fmt: skip
        self.tracks = []
        self._last_full = self._last_check = float("-inf")
        if self.specs and self.frame_size and self.frame_size != (width, height):
            sx, sy = width / self.frame_size[0], height / self.frame_size[1]
            log.info("camera %s: stream is %dx%d, zones drawn on %dx%d are rescaled", self.camera_id, width, height,
                     *self.frame_size)  # fmt: skip
            self.rules = [build_rule(scale_spec(s, sx, sy), self.tz) for s in self.specs]
        elif self.specs:
            self.rules = [build_rule(s, self.tz) for s in self.specs]

    def restart(self) -> None:
        """The stream came back: its next frame goes to the model whole."""
        self._size = None

    def plan(self, frame: np.ndarray, now: float) -> list[View] | None:
        """What the model should look at in this frame (None: nothing)."""
        height, width = frame.shape[:2]
        first = self._size != (width, height)
        if first:
            self._resized(width, height)
        moved = self.gate.moved(frame)
        live = self.tracker.alive()
        due_full = first or now - self._last_full >= self.full_every_s
        due_check = bool(live) and now - self._last_check >= self.check_s
        forced, self.force = self.force, False
        if not (moved or due_full or due_check or forced):
            return None
        if due_full or not self.regions:
            return [full_view(frame)]
        boxes = [t.predicted_box(now) for t in live] + (list(self.gate.regions) if moved else [])
        views = plan_views(boxes, width, height, self.input_size)
        return [full_view(frame)] if views is None else views

    def pre(self, frame: np.ndarray, now: float, frame_time: float) -> tuple[list[View] | None, list[CameraEvent]]:
        """Tamper events for this frame, and what of it goes to the detector."""
        self.frames += 1
        events = []
        if self.tamper is not None:
            for kind in self.tamper.update(frame, now):
                events.append(CameraEvent(self.camera_id, Event(kind, "tamper", now, details={"condition": kind}),
                                          frame, [], frame_time))
        views = self.plan(frame, now)
        if views is not None:
            self.inferences += 1
            self.model_inputs += len(views)
            self._last_check = now
            if len(views) == 1 and views[0] == full_view(frame):
                self._last_full = now
        return views, events

    def post(self, frame: np.ndarray, detections: list[Detection], now: float, frame_time: float,
             looked: Sequence[View] | None = None) -> list[CameraEvent]:
        """Track and apply the rules after a model run; ``looked`` are the views the model saw (None: all)."""
        height, width = frame.shape[:2]
        whole = looked is None or any(v == View(0, 0, width, height) for v in looked)
        self.detections = detections
        self.tracks = self.tracker.update(detections, now, None if whole else [v.box for v in looked or []])
        by_id = {t.track_id: t for t in self.tracks}
        out = []
        for rule in self.rules:
            for event in rule.update(self.tracks, now):
                track = by_id.get(event.track_ids[0]) if len(event.track_ids) == 1 else None
                if track is not None:
                    event = dataclasses.replace(event, details={**event.details, "stationary": track.stationary})
                out.append(CameraEvent(self.camera_id, event, frame, self.tracks, frame_time))
        return out


BatchItem = tuple[CameraPipeline, np.ndarray, float, float]  # pipeline, frame, now, frame_time


def run_batch(detector: Detector, items: Sequence[BatchItem]) -> list[CameraEvent]:
    """Plan each (pipeline, frame, now, frame_time), run one batched inference on every view of every
    camera, map the boxes back to their frames, track and apply the rules."""
    events: list[CameraEvent] = []
    chosen: list[tuple[CameraPipeline, np.ndarray, float, float, list[View]]] = []
    inputs: list[np.ndarray] = []
    for pipe, frame, now, frame_time in items:
        views, tamper_events = pipe.pre(frame, now, frame_time)
        events += tamper_events
        if views:
            chosen.append((pipe, frame, now, frame_time, views))
            inputs += [v.cut(frame) for v in views]
    if chosen:
        results = iter(detector.detect(inputs))
        for pipe, frame, now, frame_time, views in chosen:
            per_view = [(v, next(results)) for v in views]
            dets = merge(per_view, frame.shape[1], frame.shape[0])
            events += pipe.post(frame, dets, now, frame_time, views)
    return events
