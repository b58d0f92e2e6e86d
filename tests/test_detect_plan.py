"""What the pipeline sends to the model and when (first frame, still scene, stream back, new size),
how tracks live by model runs rather than seconds, region crops, and tamper sensitivity from config."""

from __future__ import annotations

import numpy as np

from detectors.interface import Detection
from detectors.pipeline import CameraPipeline
from detectors.regions import View, merge, plan_views
from detectors.tamper import TamperDetector
from detectors.tracking import IouTracker

FRAME = np.random.default_rng(0).integers(0, 255, (240, 320, 3), dtype=np.uint8)
ZONE = [(20, 20), (300, 20), (300, 220), (20, 220)]


def test_first_frame_goes_whole_a_still_scene_only_on_the_clock_and_again_after_a_drop() -> None:
    pipe = CameraPipeline.from_specs("cam", [], tamper=None, check_s=2.0, full_every_s=5.0)
    plans = [pipe.pre(FRAME, t * 0.2, 0.0)[0] for t in range(30)]  # 6 s of a still scene at 5 fps, no track
    assert plans[0] == [View(0, 0, 320, 240)]
    assert [i for i, p in enumerate(plans) if p] == [0, 25]  # the first frame, then the periodic whole frame
    assert pipe.pre(FRAME, 6.0, 0.0)[0] is None
    pipe.restart()  # the stream came back
    assert pipe.pre(FRAME, 6.2, 0.0)[0] == [View(0, 0, 320, 240)]


def test_live_tracks_are_rechecked_with_the_gate_closed() -> None:
    pipe = CameraPipeline.from_specs("cam", [], tamper=None, check_s=2.0, full_every_s=60.0)
    assert pipe.pre(FRAME, 0.0, 0.0)[0]
    pipe.tracker.update([Detection("person", 0.9, (100, 60, 130, 140))], 0.0)
    sent = [t for t in range(1, 30) if pipe.pre(FRAME, t * 0.2, 0.0)[0]]
    assert sent == [10, 20]  # every check_s while the track lives


def test_zones_follow_a_new_stream_size() -> None:
    pipe = CameraPipeline.from_specs("cam", [{"type": "intrusion", "name": "yard", "zone": ZONE}], tamper=None,
                                     frame_size=(320, 240))  # fmt: skip
    pipe.plan(np.zeros((480, 640, 3), np.uint8), 0.0)
    assert pipe.rules[0].zone == [(40.0, 40.0), (600.0, 40.0), (600.0, 440.0), (40.0, 440.0)]


def test_a_track_dies_after_missed_model_runs_over_its_place_not_after_seconds() -> None:
    tracker = IouTracker(max_misses=3, min_age=2.0)
    [track] = tracker.update([Detection("person", 0.9, (100, 60, 130, 140))], 0.0)
    for t in (10.0, 20.0, 30.0):  # runs that looked elsewhere: no miss however long
        tracker.update([], t, regions=[(200, 0, 320, 100)])
    assert tracker.alive() == [track] and track.misses == 0
    for t in (40.0, 50.0, 60.0):
        tracker.update([], t)
    assert tracker.alive() == [track]  # three misses: still there
    tracker.update([], 70.0)
    assert tracker.alive() == []


def test_a_person_who_stops_is_found_where_they_stopped_and_flagged_stationary() -> None:
    tracker = IouTracker(stationary_s=5.0)
    for i in range(5):  # walking right at 50 px/s
        tracker.update([Detection("person", 0.9, (100 + 10 * i, 60, 130 + 10 * i, 140))], i * 0.2)
    # stopped; the next model run is 6 s later: the stale velocity would predict 300 px further
    [again] = tracker.update([Detection("person", 0.9, (142, 60, 172, 140))], 6.8)
    assert again.track_id == 1 and again.stationary  # at that spot since 0.8 s
    [moving] = tracker.update([Detection("person", 0.9, (152, 60, 182, 140))], 7.0)
    assert moving.track_id == 1 and not moving.stationary


def test_region_crops_are_squares_at_native_resolution_and_merge_back() -> None:
    views = plan_views([(100, 100, 120, 150), (600, 400, 620, 450)], 1280, 720, 416)
    assert views is not None and len(views) == 2
    assert all(v.x1 - v.x0 == v.y1 - v.y0 == 416 for v in views)
    a, b = views
    in_a = Detection("person", 0.8, (100 - a.x0, 100 - a.y0, 120 - a.x0, 150 - a.y0))
    in_b = Detection("person", 0.7, (600 - b.x0, 400 - b.y0, 620 - b.x0, 450 - b.y0))
    found = merge([(a, [in_a]), (b, [in_b])], 1280, 720)
    assert sorted(d.box for d in found) == [(100, 100, 120, 150), (600, 400, 620, 450)]


def test_tamper_sensitivity_from_config_moves_the_thresholds() -> None:
    low, mid, high = (TamperDetector.from_sensitivity(s, hold_seconds=10) for s in (0.0, 0.5, 1.0))
    assert low.covered_std < mid.covered_std < high.covered_std
    assert low.blur_ratio < mid.blur_ratio < high.blur_ratio
    assert low.moved_share > mid.moved_share > high.moved_share
    assert mid.covered_std == TamperDetector().covered_std and high.hold_seconds == 10
