"""Per-box evaluation: matching by IoU, where a miss and a false positive on one frame do not cancel,
and `ioc detect eval` printing both modes through the real pipeline on labelled frames."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from detectors.evaluate import LABELS, Labelled, Score, load_labels


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


def test_the_labelled_set_has_30_frames_with_occluded_and_distant_people() -> None:
    clips, frames = load_labels()
    assert len(frames) >= 30
    tags = [t for f in frames for tagset in f.tags for t in tagset]
    assert tags.count("occluded") >= 10 and tags.count("distant") >= 5


def test_ioc_detect_eval_prints_both_modes(tmp_path: Path) -> None:
    from ioc.cli.main import app

    doc = json.loads(LABELS.read_text())
    doc["frames"] = [f for f in doc["frames"] if f["frame"] in (0, 24)]
    small = tmp_path / "labels.json"
    small.write_text(json.dumps(doc))
    result = CliRunner().invoke(app, ["detect", "eval", "--labels", str(small), "--json"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]
    assert [r["mode"] for r in lines] == ["full_frame", "regions"]
    for r in lines:
        assert r["frames"] == 2 and 0 < r["recall"] <= 1 and 0 < r["precision"] <= 1
        assert {"count_error_per_frame", "recall_occluded"} <= r.keys()
