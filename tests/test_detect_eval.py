"""Per-box evaluation: matching by IoU, where a miss and a false positive on one frame do not cancel,
and `ioc detect eval` printing both modes, per clip and pooled, through the real pipeline on labelled
frames of two clips."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import pytest
from typer.testing import CliRunner

from detectors.evaluate import LABELS, Labelled, Score, clip_path, load_labels
from detectors.model_store import ModelUnavailable


def test_a_miss_and_a_false_positive_on_one_frame_do_not_cancel() -> None:
    truth = Labelled("clip", 0, ((100, 100, 140, 200), (300, 100, 340, 200)), (frozenset(), frozenset({"distant"})))
    score = Score()
    score.add(truth, [(102, 98, 141, 203), (500, 300, 540, 400)])  # one hit, one box on nobody
    figures = score.figures()
    assert (figures["precision"], figures["recall"], figures["count_error_per_frame"]) == (0.5, 0.5, 0.0)
    assert figures["recall_distant"] == 0.0 and figures["missed"] == 1 and figures["false_positives"] == 1


def test_a_box_overlapping_under_half_is_not_a_match() -> None:
    truth = Labelled("clip", 0, ((100, 100, 140, 200),), (frozenset(),))
    score = Score()
    score.add(truth, [(120, 150, 160, 250)])
    assert score.tp == 0 and score.fp == 1 and score.fn == 1


def test_the_labelled_set_has_30_frames_from_two_clips_with_occluded_and_distant_people() -> None:
    clips, frames = load_labels()
    assert len(frames) >= 30
    per_clip = {name: [f for f in frames if f.clip == name] for name in clips}
    assert len(per_clip) >= 2 and all(len(labelled) >= 15 for labelled in per_clip.values()), {
        name: len(labelled) for name, labelled in per_clip.items()}
    tags = [t for f in frames for tagset in f.tags for t in tagset]
    assert tags.count("occluded") >= 10 and tags.count("distant") >= 5 and tags.count("truncated") >= 5


def test_every_labelled_clip_is_on_this_machine_and_has_its_labelled_frames() -> None:
    """The shipped clip matches its pinned sha256, and every labelled frame index exists in its clip
    (labels past the end of a clip would silently never be scored)."""
    clips, frames = load_labels()
    for name, spec in clips.items():
        path = clip_path(clips, name)
        capture = cv2.VideoCapture(str(path))
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        capture.release()
        assert count > max(f.frame for f in frames if f.clip == name), (name, spec)


def test_a_changed_shipped_clip_is_refused_by_name() -> None:
    from detectors.media import shipped_clip

    clips, _ = load_labels()
    spec = clips["one-by-one"]
    with pytest.raises(ModelUnavailable, match="does not match its pinned sha256"):
        shipped_clip(spec["path"], "0" * 64)


def _subset(tmp_path: Path, keep: dict[str, tuple[int, ...]]) -> Path:
    doc = json.loads(LABELS.read_text())
    doc["frames"] = [f for f in doc["frames"] if f["frame"] in keep.get(f["clip"], ())]
    small = tmp_path / "labels.json"
    small.write_text(json.dumps(doc))
    return small


def test_ioc_detect_eval_prints_both_modes_per_clip_and_pooled(tmp_path: Path) -> None:
    from ioc.cli.main import app

    # vtest's first two labelled frames; the second clip's empty first frame (nobody yet: only false
    # positives can count there) and a woman entering across the bottom edge (head and shoulders).
    small = _subset(tmp_path, {"vtest": (0, 24), "one-by-one": (40, 64)})
    result = CliRunner().invoke(app, ["detect", "eval", "--labels", str(small), "--json"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]
    assert [(r["mode"], r["clip"]) for r in lines] == [
        (mode, clip) for mode in ("full_frame", "regions") for clip in ("vtest", "one-by-one", "all")]
    for r in lines:
        assert 0 <= r["recall"] <= 1 and r["count_error_per_frame"] >= 0
        assert {"precision", "true_positives", "false_positives", "missed"} <= r.keys()
    by = {(r["mode"], r["clip"]): r for r in lines}
    for mode in ("full_frame", "regions"):
        vtest, other, pooled = by[mode, "vtest"], by[mode, "one-by-one"], by[mode, "all"]
        assert (vtest["frames"], other["frames"], pooled["frames"]) == (2, 2, 4)
        for key in ("true_positives", "false_positives", "missed"):
            assert pooled[key] == vtest[key] + other[key], (mode, key)
        assert {"recall_occluded"} <= vtest.keys() and {"recall_truncated"} <= other.keys()
        assert 0 < pooled["recall"] <= 1 and 0 < pooled["precision"] <= 1
        assert pooled["recall"] == round(pooled["true_positives"] / (pooled["true_positives"] + pooled["missed"]), 3)
