"""The correlation decision: does a signal join an incident, open one, or neither?

Pure: the database path (:mod:`ioc.incidents.store`) and the evaluation on a labelled scenario
(:mod:`ioc.incidents.evaluate`) both call :func:`choose` with the candidates they found, so the
figures `ioc incidents eval` prints are those of the code that runs in production.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from ioc.incidents.rules import Rule, RuleSet

EARTH_RADIUS_M = 6_371_008.8


@dataclass(frozen=True)
class Signal:
    """One thing that happened: an alert (a camera hit, a sensor level, a citizen's report...) or a
    radio warning. ``cause`` is the alert's dedup key: the same cause re-opening is the same case."""

    kind: str  # "alert" or "broadcast"
    ref: int
    topic: str
    at: datetime
    unit_ids: tuple[str, ...] = ()
    lat: float | None = None
    lon: float | None = None
    cause: str | None = None
    severity: str = "minor"

    @property
    def point(self) -> tuple[float, float] | None:
        return (self.lat, self.lon) if self.lat is not None and self.lon is not None else None


@dataclass
class Candidate:
    """What the decision needs to know of an incident that is not closed."""

    id: int
    rule_id: str
    first_signal_at: datetime
    last_signal_at: datetime
    unit_ids: set[str] = field(default_factory=set)
    points: list[tuple[float, float]] = field(default_factory=list)
    causes: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class Decision:
    join: int | None = None
    open_rule: Rule | None = None
    reason: str = ""


def distance_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle distance in metres (haversine; plenty for a district's few kilometres)."""
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


def _near(signal: Signal, candidate: Candidate, radius_m: float) -> bool:
    point = signal.point
    return point is not None and any(distance_m(point, p) <= radius_m for p in candidate.points)


def _same_unit(signal: Signal, candidate: Candidate) -> bool:
    return bool(set(signal.unit_ids) & candidate.unit_ids)


def same_place(rule: Rule, signal: Signal, candidate: Candidate) -> bool:
    if rule.place == "cause":
        return False
    if rule.place == "unit":
        return _same_unit(signal, candidate) or (rule.radius_m is not None and _near(signal, candidate, rule.radius_m))
    # place: radius - by distance when both have points, else by commune.
    assert rule.radius_m is not None
    if signal.point is not None and candidate.points:
        return _near(signal, candidate, rule.radius_m)
    return _same_unit(signal, candidate)


def _in_window(rules: RuleSet, rule: Rule, signal: Signal, candidate: Candidate) -> bool:
    window = rules.window(rule)
    return candidate.first_signal_at - window <= signal.at <= candidate.last_signal_at + window


def choose(rules: RuleSet, signal: Signal, candidates: Iterable[Candidate]) -> Decision:
    """Join the newest fitting incident, else open one under the first rule the topic opens."""
    # A signal with no commune (district-level, IOC-only such as a complaint about an official) never
    # shares an incident with a commune's signals: the commune would read it through the incident.
    pool: Sequence[Candidate] = sorted(
        (c for c in candidates if bool(c.unit_ids) == bool(signal.unit_ids)),
        key=lambda c: c.last_signal_at,
        reverse=True,
    )
    if signal.cause:
        for candidate in pool:
            rule = rules.get(candidate.rule_id)
            if rule and signal.cause in candidate.causes and _in_window(rules, rule, signal, candidate):
                return Decision(join=candidate.id, reason="same cause")
    for rule in rules.rules_accepting(signal.topic):
        for candidate in pool:
            if candidate.rule_id == rule.id and _in_window(rules, rule, signal, candidate) and same_place(
                rule, signal, candidate
            ):
                return Decision(join=candidate.id, reason=f"rule {rule.id}")
    rule = rules.rule_opening(signal.topic)
    return Decision(open_rule=rule, reason=f"new under {rule.id}" if rule else "joins only")


def max_window_min(rules: RuleSet) -> float:
    """The widest window of any rule: how far back the database looks for candidates."""
    return max([r.window_min or rules.default_window_min for r in rules.rules] + [rules.default_window_min])
