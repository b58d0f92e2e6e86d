"""How well the rules group signals: a labelled scenario in, raw signals -> incidents, false and
missed merges out (``ioc incidents eval``).

The scenario is replayed through :func:`ioc.incidents.correlate.choose`, the decision the database
path takes, over an in-memory list of incidents kept the way :mod:`ioc.incidents.store` keeps them
(units, points, causes, first and last signal). A *false merge* is a labelled incident folded into
another one (for each incident the engine made, its distinct labels beyond the first); a *missed
merge* is a labelled incident the engine broke up (for each label, its engine incidents beyond the
first). A signal labelled ``null`` is one that should join no incident (a radio warning with nothing
to warn of); attaching it counts as a false merge, leaving out a labelled one as a missed merge.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from ioc.incidents.correlate import Candidate, Signal, choose
from ioc.incidents.rules import RuleSet


@dataclass(frozen=True)
class LabelledSignal:
    signal: Signal
    label: str | None


@dataclass(frozen=True)
class Result:
    signals: int
    incidents: int
    labelled_incidents: int
    false_merges: int
    missed_merges: int
    by_rule: dict[str, int]

    def as_json(self) -> str:
        reduction = round(self.signals / self.incidents, 2) if self.incidents else None
        return json.dumps({"signals": self.signals, "incidents": self.incidents,
                           "labelled_incidents": self.labelled_incidents, "false_merges": self.false_merges,
                           "missed_merges": self.missed_merges, "signals_per_incident": reduction,
                           "incidents_by_rule": self.by_rule}, ensure_ascii=False)  # fmt: skip


def _offset(text: str) -> timedelta:
    """``+90s``, ``+15m``, ``+2h``: the signal's time after the scenario's start."""
    text = str(text).strip().lstrip("+")
    units = {"s": "seconds", "m": "minutes", "h": "hours"}
    if not text or text[-1] not in units:
        raise ValueError(f"offset {text!r}: expected +<number>s|m|h")
    return timedelta(**{units[text[-1]]: float(text[:-1])})


def load_scenario(path: str | Path) -> list[LabelledSignal]:
    raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    start = datetime.fromisoformat(str(raw["start"]))
    out = []
    for i, item in enumerate(raw["signals"], start=1):
        units = item.get("units") or ([item["unit"]] if item.get("unit") else [])
        signal = Signal(kind=item.get("kind", "alert"), ref=i, topic=item["topic"], at=start + _offset(item["at"]),
                        unit_ids=tuple(units), lat=item.get("lat"), lon=item.get("lon"), cause=item.get("cause"),
                        severity=item.get("severity", "minor"))  # fmt: skip
        out.append(LabelledSignal(signal, item.get("incident")))
    return sorted(out, key=lambda s: s.signal.at)


def replay(rules: RuleSet, signals: list[Signal]) -> dict[int, int | None]:
    """Signal ref -> engine incident id (None: attached nowhere), in time order."""
    incidents: list[Candidate] = []
    placed: dict[int, int | None] = {}
    for signal in sorted(signals, key=lambda s: s.at):
        decision = choose(rules, signal, incidents)
        target: Candidate | None = None
        if decision.join is not None:
            target = next(c for c in incidents if c.id == decision.join)
        elif decision.open_rule is not None:
            target = Candidate(len(incidents) + 1, decision.open_rule.id, signal.at, signal.at)
            incidents.append(target)
        if target is None:
            placed[signal.ref] = None
            continue
        target.first_signal_at = min(target.first_signal_at, signal.at)
        target.last_signal_at = max(target.last_signal_at, signal.at)
        target.unit_ids |= set(signal.unit_ids)
        if signal.point:
            target.points.append(signal.point)
        if signal.cause:
            target.causes.add(signal.cause)
        placed[signal.ref] = target.id
    return placed


def evaluate(rules: RuleSet, scenario: list[LabelledSignal]) -> Result:
    placed = replay(rules, [s.signal for s in scenario])
    labels_of_incident: dict[int, set[str]] = defaultdict(set)
    incidents_of_label: dict[str, set[int]] = defaultdict(set)
    false_merges = missed = 0
    for item in scenario:
        got = placed[item.signal.ref]
        if item.label is None:
            false_merges += got is not None
            continue
        if got is None:
            missed += 1
            continue
        labels_of_incident[got].add(item.label)
        incidents_of_label[item.label].add(got)
    false_merges += sum(len(labels) - 1 for labels in labels_of_incident.values())
    missed += sum(len(ids) - 1 for ids in incidents_of_label.values())
    rule_of: dict[int, str] = {}
    for item in scenario:
        got = placed[item.signal.ref]
        if got is not None and got not in rule_of:
            decision = rules.rule_opening(item.signal.topic)
            rule_of[got] = decision.id if decision else "?"
    by_rule: dict[str, int] = defaultdict(int)
    for rule_id in rule_of.values():
        by_rule[rule_id] += 1
    engine_incidents = {v for v in placed.values() if v is not None}
    return Result(len(scenario), len(engine_incidents), len(incidents_of_label), false_merges, missed,
                  dict(sorted(by_rule.items())))  # fmt: skip


def signals_from_database(conn: Any, start: datetime, end: datetime) -> list[Signal]:
    """Every alert raised between ``start`` and ``end``, as the correlation saw it (unlabelled)."""
    from ioc.incidents.store import topic_of_alert

    rows = conn.execute(
        """SELECT id, kind, evidence, unit_id, lat, lon, first_seen, dedup_key, severity FROM alerts
           WHERE first_seen >= %s AND first_seen < %s ORDER BY first_seen, id""",
        (start, end),
    ).fetchall()
    return [Signal("alert", r[0], topic_of_alert(r[1], r[2]), r[6], (r[3],) if r[3] else (), r[4], r[5], r[7], r[8])
            for r in rows]  # fmt: skip
