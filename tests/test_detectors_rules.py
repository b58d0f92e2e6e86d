"""Tracking and rules on synthetic detections: one object is one track, and one event, not one per frame."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from detectors.interface import Detection
from detectors.rules import CountRule, Event, LineCrossingRule, LoiteringRule, Schedule, build_rule
from detectors.tracking import IouTracker

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
ZONE = [(100, 100), (300, 100), (300, 300), (100, 300)]


def person(x: float, y: float = 150, score: float = 0.9) -> Detection:
    return Detection("person", score, (x, y, x + 20, y + 60))


def walk(rule: Any, xs: list[float], tracker: IouTracker | None = None, start: float = 0.0) -> list[Event]:
    tracker = tracker or IouTracker()
    events = []
    for i, x in enumerate(xs):
        events += rule.update(tracker.update([person(x)], start + i * 0.2), start + i * 0.2)
    return events


def test_a_walking_person_keeps_one_track_id() -> None:
    tracker = IouTracker()
    ids = {t.track_id for i in range(30) for t in tracker.update([person(50 + 4 * i)], i * 0.2)}
    assert ids == {1}


def test_low_score_detection_keeps_an_existing_track_but_never_starts_one() -> None:
    tracker = IouTracker(high=0.5)
    tracker.update([person(50)], 0.0)
    assert [t.track_id for t in tracker.update([person(53, score=0.3)], 0.2)] == [1]
    assert tracker.update([person(400, score=0.3)], 0.4) == []


def test_intrusion_fires_once_per_track_and_only_inside_the_schedule() -> None:
    night = datetime(2026, 11, 24, 22, 0, tzinfo=TZ).timestamp()
    day = datetime(2026, 11, 24, 10, 0, tzinfo=TZ).timestamp()
    rule = build_rule({"type": "intrusion", "name": "school", "zone": ZONE, "schedule": ["18:00-06:00"]}, TZ)
    assert walk(rule, [150 + i for i in range(20)], start=day) == []
    events = walk(rule, [150 + i for i in range(20)], start=night)
    assert len(events) == 1 and events[0].kind == "intrusion" and events[0].track_ids == (1,)


def test_schedule_wraps_midnight() -> None:
    s = Schedule.parse(["18:00-06:00"])
    assert s.active(datetime(2026, 1, 1, 2, 0)) and not s.active(datetime(2026, 1, 1, 12, 0))


def test_line_crossing_counts_each_direction_once() -> None:
    line, tracker = LineCrossingRule("gate", [(200, 0), (200, 400)]), IouTracker()
    going = walk(line, [150 + 5 * i for i in range(30)], tracker)
    assert len(going) == 1 and going[0].details["direction"] == "out"  # a->b points down: rightwards is "out"
    assert line.counts == {"in": 0, "out": 1}
    back = walk(line, [300 - 5 * i for i in range(30)], tracker, start=100.0)
    assert len(back) == 1 and back[0].details["direction"] == "in"
    assert line.counts == {"in": 1, "out": 1}


def test_line_crossing_outside_the_segment_is_not_counted() -> None:
    line = LineCrossingRule("short", [(200, 0), (200, 50)])
    assert walk(line, [150 + 5 * i for i in range(30)]) == [] and line.counts == {"in": 0, "out": 0}


def test_loitering_fires_after_dwell_time_only() -> None:
    rule = LoiteringRule("bench", ZONE, seconds=3.0)
    events = walk(rule, [150] * 10)  # 1.8 s
    assert events == []
    events = walk(rule, [150] * 30)  # 5.8 s, new tracker, new track
    assert len(events) == 1 and events[0].kind == "loitering"


def test_crowd_needs_the_count_for_the_duration_and_respects_cooldown() -> None:
    rule = CountRule("market", "crowd", None, min_count=3, seconds=1.0, cooldown=10.0)
    tracker = IouTracker()
    fired = []
    for i in range(40):
        now = i * 0.2
        fired += rule.update(tracker.update([person(50 + 60 * k) for k in range(3)], now), now)
    assert len(fired) == 1 and fired[0].details["count"] == 3


def test_schedule_days_apply_to_the_day_a_night_window_started() -> None:
    s = Schedule.parse([{"days": ["fri"], "start": "22:00", "end": "06:00"}])
    friday_night, saturday_early = datetime(2026, 11, 27, 23, 0), datetime(2026, 11, 28, 3, 0)
    thursday_night = datetime(2026, 11, 26, 23, 0)
    assert s.active(friday_night) and s.active(saturday_early) and not s.active(thursday_night)


def test_intrusion_waits_for_min_seconds_inside_the_zone() -> None:
    rule = build_rule({"type": "intrusion", "zone": ZONE, "seconds": 2.0})
    assert walk(rule, [150] * 8) == []  # 1.4 s
    assert len(walk(rule, [150] * 15)) == 1


def test_every_camera_of_the_sample_district_builds_its_rules() -> None:
    from pathlib import Path

    from detectors.pipeline import CameraPipeline
    from ioc.cli.detect_cmd import rule_specs
    from ioc.district.loader import load_district

    district = load_district(Path(__file__).resolve().parent.parent / "config" / "district.yaml")
    for camera in district.cameras:
        pipe = CameraPipeline.from_specs(camera.id, rule_specs(camera), tz=TZ)
        assert len(pipe.rules) == len([r for r in camera.rules if r.enabled and r.kind != "tamper"])


def test_congestion_counts_only_slow_vehicles() -> None:
    rule = build_rule({"type": "congestion", "min_count": 2, "seconds": 1.0, "max_speed": 5.0})
    tracker, fired = IouTracker(), []
    for i in range(20):  # two cars crawling (2 px/s) and one flowing (100 px/s)
        now = i * 0.2
        cars = [Detection("car", 0.9, (x, 300, x + 80, 350)) for x in (100 + 0.4 * i, 300 + 0.4 * i)]
        flowing = Detection("car", 0.9, (500 + 20 * i, 100, 580 + 20 * i, 150))
        fired += rule.update(tracker.update([*cars, flowing], now), now)
    assert len(fired) == 1 and fired[0].details["count"] == 2
