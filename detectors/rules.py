"""Per-camera rules over tracks: intrusion (with a schedule), line crossing, loitering, crowd, congestion.

Rules are built from plain dicts (the shape of a camera's ``rules`` list in the district YAML) so this
module does not depend on the configuration models. Every rule keys its state by track id, so one
person in a zone is one event, not one per frame; count rules (crowd, congestion) use a cooldown.
Points are tested at the track's foot (bottom-centre of its box), where the object meets the ground.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time
from typing import Any

import cv2
import numpy as np

from detectors.tracking import Track

VEHICLES = frozenset({"car", "bus", "truck", "motorbike", "bicycle"})
Point = tuple[float, float]


@dataclass(frozen=True)
class Event:
    """One rule firing, carrying what the wall and the evidence need."""

    rule: str  # rule name from config
    kind: str  # intrusion | line_crossing | loitering | crowd | congestion | tamper
    at: float  # unix seconds of the frame
    track_ids: tuple[int, ...] = ()
    class_name: str | None = None
    score: float | None = None
    box: tuple[float, float, float, float] | None = None
    zone: Sequence[Point] | None = None
    details: Mapping[str, Any] = field(default_factory=dict)


def inside(polygon: Sequence[Point], point: Point) -> bool:
    contour = np.asarray(polygon, np.float32).reshape(-1, 1, 2)
    return cv2.pointPolygonTest(contour, (float(point[0]), float(point[1])), False) >= 0


def _event_for(rule: str, kind: str, now: float, track: Track, **kw: Any) -> Event:
    d = track.detection
    return Event(rule, kind, now, (track.track_id,), d.class_name, d.score, d.box, **kw)


_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass
class Schedule:
    """Weekly windows in local time; an item is ``"18:00-06:00"`` (every day) or
    ``{"days": ["sat", "sun"], "start": "00:00", "end": "23:59"}``. A window whose end is before its start
    runs past midnight and belongs to the day it started. Empty means always armed."""

    windows: list[tuple[frozenset[int], time, time]] = field(default_factory=list)

    @classmethod
    def parse(cls, spec: Iterable[str | Mapping[str, Any]] | None) -> Schedule:
        out = []
        for item in spec or []:
            if isinstance(item, str):
                a, b = item.split("-")
                days = frozenset(range(7))
            else:
                a, b = str(item["start"]), str(item["end"])
                days = frozenset(_DAYS.index(d) for d in item.get("days", _DAYS))
            out.append((days, time.fromisoformat(a.strip()), time.fromisoformat(b.strip())))
        return cls(out)

    def active(self, at: datetime) -> bool:
        if not self.windows:
            return True
        t, today, yesterday = at.time(), at.weekday(), (at.weekday() - 1) % 7
        for days, a, b in self.windows:
            if a <= b:
                if today in days and a <= t < b:
                    return True
            elif (today in days and t >= a) or (yesterday in days and t < b):
                return True
        return False


class IntrusionRule:
    """A tracked object of a watched class inside the zone for ``min_seconds`` while the schedule is armed:
    once per track (a person crossing a corner of the zone for one frame does not count)."""

    def __init__(self, name: str, zone: Sequence[Point], classes: Iterable[str] = ("person",),
                 schedule: Iterable[str | Mapping[str, Any]] | None = None, tz: Any = None,
                 min_seconds: float = 0.0) -> None:
        self.name, self.zone, self.classes = name, list(zone), frozenset(classes)
        self.schedule, self.tz, self.min_seconds = Schedule.parse(schedule), tz, min_seconds
        self._entered: dict[int, float] = {}
        self._fired: set[int] = set()

    def update(self, tracks: Sequence[Track], now: float) -> list[Event]:
        if not self.schedule.active(datetime.fromtimestamp(now, self.tz)):
            return []
        events = []
        for t in tracks:
            if t.class_name not in self.classes or t.track_id in self._fired:
                continue
            if not inside(self.zone, t.detection.foot):
                self._entered.pop(t.track_id, None)
                continue
            if now - self._entered.setdefault(t.track_id, now) >= self.min_seconds:
                self._fired.add(t.track_id)
                events.append(_event_for(self.name, "intrusion", now, t, zone=self.zone))
        return events


def _side(a: Point, b: Point, p: Point) -> float:
    return (b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0])


class LineCrossingRule:
    """Counts tracks whose foot crosses the segment a->b; ``in`` is left-to-right of a->b (positive side)."""

    def __init__(self, name: str, line: Sequence[Point], classes: Iterable[str] = ("person",),
                 direction: str = "both") -> None:
        self.name, self.a, self.b = name, tuple(line[0]), tuple(line[1])
        self.classes, self.direction = frozenset(classes), direction
        self.counts = {"in": 0, "out": 0}
        self._last: dict[int, float] = {}

    def _within_segment(self, p: Point, q: Point) -> bool:
        # the movement p->q must intersect the segment, not just its infinite line
        return _side(p, q, self.a) * _side(p, q, self.b) <= 0

    def update(self, tracks: Sequence[Track], now: float) -> list[Event]:
        events = []
        for t in tracks:
            if t.class_name not in self.classes:
                continue
            foot = t.detection.foot
            side = _side(self.a, self.b, foot)
            prev = self._last.get(t.track_id)
            self._last[t.track_id] = side if side != 0 else (prev or 0.0)
            if prev is None or prev == 0 or side == 0 or (prev > 0) == (side > 0) or len(t.history) < 2:
                continue
            if not self._within_segment(t.history[-2], foot):
                continue
            way = "in" if side > 0 else "out"
            self.counts[way] += 1
            if self.direction in ("both", way):
                events.append(_event_for(self.name, "line_crossing", now, t,
                                         details={"direction": way, "counts": dict(self.counts)}))
        return events


class LoiteringRule:
    """A person inside the zone for longer than ``seconds``: once per track."""

    def __init__(self, name: str, zone: Sequence[Point], seconds: float = 60.0,
                 classes: Iterable[str] = ("person",)) -> None:
        self.name, self.zone, self.seconds, self.classes = name, list(zone), seconds, frozenset(classes)
        self._entered: dict[int, float] = {}
        self._fired: set[int] = set()

    def update(self, tracks: Sequence[Track], now: float) -> list[Event]:
        events = []
        for t in tracks:
            if t.class_name not in self.classes:
                continue
            if not inside(self.zone, t.detection.foot):
                self._entered.pop(t.track_id, None)
                continue
            since = self._entered.setdefault(t.track_id, now)
            if now - since >= self.seconds and t.track_id not in self._fired:
                self._fired.add(t.track_id)
                events.append(_event_for(self.name, "loitering", now, t, zone=self.zone,
                                         details={"seconds": round(now - since, 1)}))
        return events


class CountRule:
    """Crowd (persons) or congestion (vehicles): at least ``min_count`` in the zone for ``seconds``.

    For congestion only slow vehicles count (``max_speed`` in pixels/s of the track's box centre), so
    a busy but flowing road is not a jam."""

    def __init__(self, name: str, kind: str, zone: Sequence[Point] | None, min_count: int,
                 seconds: float = 0.0, cooldown: float = 300.0, classes: Iterable[str] | None = None,
                 max_speed: float | None = None) -> None:
        self.name, self.kind, self.zone = name, kind, list(zone) if zone else None
        self.max_speed = max_speed
        self.min_count, self.seconds, self.cooldown = min_count, seconds, cooldown
        self.classes = frozenset(classes or (("person",) if kind == "crowd" else VEHICLES))
        self._since: float | None = None
        self._last_fired = float("-inf")

    def update(self, tracks: Sequence[Track], now: float) -> list[Event]:
        members = [t for t in tracks if t.class_name in self.classes
                   and (self.zone is None or inside(self.zone, t.detection.foot))
                   and (self.max_speed is None or float(np.hypot(*t.velocity)) <= self.max_speed)]
        if len(members) < self.min_count:
            self._since = None
            return []
        self._since = self._since if self._since is not None else now
        if now - self._since < self.seconds or now - self._last_fired < self.cooldown:
            return []
        self._last_fired = now
        return [Event(self.name, self.kind, now, tuple(t.track_id for t in members), zone=self.zone,
                      details={"count": len(members)})]


Rule = IntrusionRule | LineCrossingRule | LoiteringRule | CountRule


def build_rule(spec: Mapping[str, Any], tz: Any = None) -> Rule:
    """A rule from a plain dict: ``{"type": "intrusion", "name": ..., "zone": [[x, y], ...], ...}``."""
    kind, name = spec["type"], spec.get("name", spec["type"])
    classes = spec.get("classes")
    if kind == "intrusion":
        return IntrusionRule(name, spec["zone"], classes or ("person",), spec.get("schedule"), tz,
                             float(spec.get("seconds", 0)))
    if kind == "line_crossing":
        return LineCrossingRule(name, spec["line"], classes or ("person",), spec.get("direction", "both"))
    if kind == "loitering":
        return LoiteringRule(name, spec["zone"], float(spec.get("seconds", 60)), classes or ("person",))
    if kind in ("crowd", "congestion"):
        return CountRule(name, kind, spec.get("zone"), int(spec.get("min_count", 10 if kind == "crowd" else 8)),
                         float(spec.get("seconds", 0 if kind == "crowd" else 60)),
                         float(spec.get("cooldown", 300)), classes,
                         None if spec.get("max_speed") is None else float(spec["max_speed"]))
    raise ValueError(f"unknown rule type {kind!r}")
