"""A person standing still, through the whole path on real footage: motion gate -> YOLO -> tracker -> rules.

The still scene is built from the sample clip: a person walks in (real frames of vtest.avi), then the
frame is held for ten minutes with a little sensor noise, as a fixed camera sees someone who stopped.
Time is the frames' own (5 fps), not the wall clock. Issue #18: with the gate closed the model used to
see a frame every 5.2 s while tracks died after 2 s, so dwell timers restarted and loitering never fired.
"""

from __future__ import annotations

from collections.abc import Iterator

import cv2
import numpy as np
import pytest

from detectors.media import vtest_video
from detectors.onnx_yolo import OnnxYoloDetector
from detectors.pipeline import CameraEvent, CameraPipeline, run_batch

FPS = 5.0
START = 1_800_000_000.0
HELD = 400  # in this frame a person (box about 687,297-739,410) has walked into the zone below
ZONE = [(600, 380), (740, 380), (740, 470), (600, 470)]  # the walker stops in it; others stay out
DWELL = 60.0
RULES = [
    {"type": "intrusion", "name": "yard", "zone": ZONE},
    {"type": "loitering", "name": "corner", "zone": ZONE, "seconds": DWELL},
]


@pytest.fixture(scope="module")
def detector() -> OnnxYoloDetector:
    return OnnxYoloDetector()


@pytest.fixture(scope="module")
def clip() -> list[np.ndarray]:
    capture, frames = cv2.VideoCapture(str(vtest_video())), []
    while len(frames) <= HELD:
        ok, frame = capture.read()
        assert ok
        frames.append(frame)
    return frames


def still_scene(clip: list[np.ndarray], walk_in: int, minutes: float) -> Iterator[np.ndarray]:
    """``walk_in`` real frames up to ``HELD`` (every 2nd frame of the 10 fps clip: 5 fps), then ``HELD``
    held with sensor noise (a few fixed noise patterns, so the cost stays in the pipeline)."""
    yield from clip[HELD - 2 * walk_in + 2 : HELD + 1 : 2]
    rng = np.random.default_rng(18)
    held = clip[HELD].astype(np.int16)
    noisy = [np.clip(held + rng.normal(0, 2.5, held.shape).round().astype(np.int16), 0, 255).astype(np.uint8)
             for _ in range(7)]  # fmt: skip
    for i in range(int(minutes * 60 * FPS)):
        yield noisy[i % len(noisy)]


def play(detector: OnnxYoloDetector, frames: Iterator[np.ndarray]) -> tuple[list[CameraEvent], CameraPipeline]:
    pipe = CameraPipeline.from_specs("cam-still", RULES, frame_size=(768, 576))
    events: list[CameraEvent] = []
    for i, frame in enumerate(frames):
        events += run_batch(detector, [(pipe, frame, START + i / FPS, 0.0)])
    return events, pipe


def test_a_person_who_walks_in_and_stands_still_is_one_intrusion_and_one_loitering(detector, clip) -> None:
    walk_in = 15  # 3 s of real walking
    events, pipe = play(detector, still_scene(clip, walk_in, minutes=10))
    kinds = [e.event.kind for e in events]
    assert sorted(kinds) == ["intrusion", "loitering"], [(e.event.kind, e.event.at - START) for e in events]
    intrusion, loitering = sorted((e.event for e in events), key=lambda e: e.at)
    assert intrusion.kind == "intrusion" and loitering.kind == "loitering"
    assert intrusion.track_ids == loitering.track_ids  # the same track all along
    dwell = loitering.at - intrusion.at
    assert DWELL <= dwell <= DWELL + pipe.check_s + 1 / FPS, dwell
    assert loitering.details["stationary"] is True
    # the gate kept the model away from most frames: only the track re-checks and periodic full frames ran
    assert pipe.inferences < pipe.frames / 3, (pipe.inferences, pipe.frames)
    stood = pipe.tracker.alive()
    assert any(t.track_id == loitering.track_ids[0] and t.stationary for t in stood)


def test_a_person_already_there_when_the_stream_starts_gets_an_event(detector, clip) -> None:
    events, _ = play(detector, still_scene(clip, walk_in=1, minutes=1.2))
    assert [e.event.kind for e in events][:1] == ["intrusion"]
    assert events[0].event.at == START  # the stream's first frame went to the model
    assert [e.event.kind for e in events] == ["intrusion", "loitering"]
