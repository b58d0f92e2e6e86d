"""Motion gating, tamper checks, evidence, and the whole path (gate -> batch -> track -> rules) on vtest.avi."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from detectors.bench import run as run_bench
from detectors.evidence import make_evidence
from detectors.media import vtest_video
from detectors.motion import MotionGate
from detectors.rules import Event
from detectors.tamper import TamperDetector
from detectors.tracking import IouTracker


def scene(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = cv2.resize(rng.integers(0, 255, (36, 48, 3), dtype=np.uint8), (640, 480), interpolation=cv2.INTER_NEAREST)
    return cv2.GaussianBlur(img, (3, 3), 0)


def test_static_scene_is_gated_out_and_a_moving_object_is_not() -> None:
    gate, base = MotionGate(max_skip=1000), scene()
    assert gate.moved(base)  # first frame always goes
    assert not any(gate.moved(base) for _ in range(10))
    moving = base.copy()
    cv2.rectangle(moving, (300, 200), (360, 330), (255, 255, 255), -1)
    assert gate.moved(moving)


def test_motion_outside_the_mask_is_ignored() -> None:
    mask = np.zeros((480, 640), np.uint8)
    mask[:, :320] = 255
    gate, base = MotionGate(max_skip=1000, mask=mask), scene()
    gate.moved(base)
    right = base.copy()
    cv2.rectangle(right, (400, 200), (500, 330), (255, 255, 255), -1)
    assert not gate.moved(right)


def test_static_frames_are_still_sent_periodically_to_keep_tracks() -> None:
    gate, base = MotionGate(max_skip=5), scene()
    assert sum(gate.moved(base) for _ in range(13)) == 3


@pytest.mark.parametrize(
    ("condition", "spoil"),
    [
        ("covered", lambda f: np.full_like(f, 20)),
        ("blurred", lambda f: cv2.GaussianBlur(f, (41, 41), 0)),
        ("moved", lambda f: np.roll(f, 120, axis=1)),
    ],
)
def test_tamper_conditions_are_reported_once_after_hold_time(condition, spoil) -> None:
    tamper, base = TamperDetector(hold_seconds=1.0, frozen_seconds=1000), scene()
    noise = np.random.default_rng(1)
    for i in range(12):  # learn the reference on a live (slightly noisy) scene
        frame = np.clip(base.astype(int) + noise.integers(-2, 3, base.shape), 0, 255).astype(np.uint8)
        assert tamper.update(frame, i * 0.5) == []
    bad = spoil(base)
    reported = [tamper.update(bad, 10 + i * 0.5) for i in range(6)]
    assert [c for r in reported for c in r] == [condition]


def test_frozen_stream_is_reported() -> None:
    tamper, base = TamperDetector(hold_seconds=0, frozen_seconds=2.0), scene()
    reported = [c for i in range(10) for c in tamper.update(base, i * 0.5)]
    assert reported == ["frozen"]


def test_evidence_has_snapshot_and_crop_jpegs() -> None:
    from detectors.interface import Detection

    frame = scene()
    tracks = IouTracker().update([Detection("person", 0.9, (100, 100, 140, 200))], 0.0)
    ev = Event("school", "intrusion", 0.0, (1,), "person", 0.9, (100, 100, 140, 200), [(50, 50), (300, 50), (300, 300)])
    evidence = make_evidence(frame, tracks, ev)
    snap = cv2.imdecode(np.frombuffer(evidence.snapshot_jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert snap.shape == frame.shape and evidence.crop_jpeg is not None
    crop = cv2.imdecode(np.frombuffer(evidence.crop_jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert crop.shape[0] > 100 and crop.shape[1] > 40


def test_bench_runs_the_full_path_with_baselines() -> None:
    result = run_bench(vtest_video(), cameras=2, frames=12)
    for key in (
        "fps_total",
        "fps_per_camera",
        "inferences_per_s",
        "gated_out_share",
        "cpu_percent",
        "decode_only_fps",
        "bare_inference_per_s",
        "ratio_to_decode_only",
        "ratio_to_bare_inference",
    ):
        assert isinstance(result[key], float), key
    assert result["cameras"] == 2 and result["fps_total"] > 0
    # the bare baseline ran on exactly the images the pipeline's model saw, step by step
    assert result["gpu_path"].startswith(("measured", "unmeasured"))
    assert result["labelled_frames_scored"] >= 1 and result["recall"] is not None
