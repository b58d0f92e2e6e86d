"""One camera's path from frame to events, and the batching of gated frames across cameras.

frame -> tamper check + motion gate -> (batched across cameras) detector -> tracker -> rules -> events
with evidence. The detector is any :class:`detectors.interface.Detector`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from detectors.interface import Detection, Detector
from detectors.motion import MotionGate
from detectors.rules import Event, Rule, build_rule
from detectors.tamper import TamperDetector
from detectors.tracking import IouTracker, Track


@dataclass
class CameraEvent:
    camera_id: str
    event: Event
    frame: np.ndarray
    tracks: list[Track]
    frame_time: float  # monotonic time the frame was read, for latency


@dataclass
class CameraPipeline:
    camera_id: str
    rules: list[Rule] = field(default_factory=list)
    gate: MotionGate = field(default_factory=MotionGate)
    tracker: IouTracker = field(default_factory=IouTracker)
    tamper: TamperDetector | None = field(default_factory=TamperDetector)
    tracks: list[Track] = field(default_factory=list)
    frames: int = 0  # frames offered
    inferences: int = 0  # frames that passed the gate and went to the detector

    @classmethod
    def from_specs(cls, camera_id: str, rules: Iterable[Mapping[str, Any]], mask: np.ndarray | None = None,
                   tz: Any = None) -> CameraPipeline:
        return cls(camera_id, [build_rule(r, tz) for r in rules], MotionGate(mask=mask))

    def pre(self, frame: np.ndarray, now: float, frame_time: float) -> tuple[bool, list[CameraEvent]]:
        """Tamper events for this frame, and whether it should go to the detector."""
        self.frames += 1
        events = []
        if self.tamper is not None:
            for kind in self.tamper.update(frame, now):
                events.append(CameraEvent(self.camera_id, Event(kind, "tamper", now, details={"condition": kind}),
                                          frame, [], frame_time))
        return self.gate.moved(frame), events

    def post(self, frame: np.ndarray, detections: list[Detection], now: float, frame_time: float) -> list[CameraEvent]:
        self.tracks = self.tracker.update(detections, now)
        out = []
        for rule in self.rules:
            for event in rule.update(self.tracks, now):
                out.append(CameraEvent(self.camera_id, event, frame, self.tracks, frame_time))
        return out


BatchItem = tuple[CameraPipeline, np.ndarray, float, float]  # pipeline, frame, now, frame_time


def run_batch(detector: Detector, items: Sequence[BatchItem]) -> list[CameraEvent]:
    """Gate each (pipeline, frame, now, frame_time), run one batched inference on the survivors, apply rules."""
    events: list[CameraEvent] = []
    chosen = []
    for pipe, frame, now, frame_time in items:
        moved, tamper_events = pipe.pre(frame, now, frame_time)
        events += tamper_events
        if moved:
            pipe.inferences += 1
            chosen.append((pipe, frame, now, frame_time))
    if chosen:
        results = detector.detect([c[1] for c in chosen])
        for (pipe, frame, now, frame_time), dets in zip(chosen, results, strict=True):
            events += pipe.post(frame, dets, now, frame_time)
    return events
