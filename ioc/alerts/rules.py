"""Rules that turn observations (a camera rule hit, a device going offline, a water level past its
warning, a citizen report...) into alert drafts, read from ``config/alert-rules.yaml``.

A rule says which observations it matches (``when``), what alert they raise (kind, severity,
Vietnamese title template, dedup key template, escalation policy) or, with ``action: resolve``,
which open alert they close (a device back online resolves its "offline" alert). Templates use
``{field}`` placeholders filled from the observation; a missing field shows as ``?`` rather than
failing, because a rule must never stop the pipeline.
"""

from __future__ import annotations

import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from ioc.alerts.escalation import EscalationPolicy, EscalationStep
from ioc.alerts.model import AlertDraft, Severity

Source = Literal["camera_event", "presence", "telemetry", "device_event", "report", "dossier", "cap", "kpi", "mention"]
Scalar = str | int | float | bool


@dataclass(frozen=True)
class Observation:
    """Something the IOC learned, normalised for the rules. ``fields`` carries the payload's values."""

    source: str
    at: datetime
    unit_id: str | None
    device_id: str | None = None
    device_kind: str | None = None
    device_name: str | None = None
    lat: float | None = None
    lon: float | None = None
    fields: Mapping[str, Any] = field(default_factory=dict)
    levels: Mapping[str, float] | None = None  # the device's configured warning/critical levels
    ref: Mapping[str, Any] | None = None  # where it came from, kept on the alert

    def value(self, name: str) -> Any:
        if name in self.fields:
            return self.fields[name]
        return getattr(self, name, None) if name in _OBSERVATION_ATTRS else None


_OBSERVATION_ATTRS = {"source", "unit_id", "device_id", "device_kind", "device_name"}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Match(_Model):
    source: Source
    equals: dict[str, list[Scalar]] = Field(default_factory=dict, description="field -> accepted values")
    metric: str | None = Field(default=None, description="telemetry: the metric compared with a level")
    level: Literal["warning", "critical"] | None = Field(
        default=None, description="telemetry: past the device's configured level (above, or below when falling)"
    )

    def matches(self, obs: Observation) -> bool:
        if obs.source != self.source:
            return False
        for name, accepted in self.equals.items():
            if obs.value(name) not in accepted:
                return False
        if self.metric is not None:
            value = obs.fields.get(self.metric)
            if not isinstance(value, int | float):
                return False
            if self.level is not None:
                levels = obs.levels or {}
                limit = levels.get(self.level)
                if limit is None:
                    return False
                return value <= limit if levels.get("falling") else value >= limit
        return True


class AlertRule(_Model):
    id: Annotated[str, StringConstraints(pattern=r"^[a-z0-9]+(?:-[a-z0-9]+)*$")]
    when: Match
    action: Literal["raise", "resolve"] = "raise"
    kind: str = Field(description="Alert kind, e.g. camera.intrusion, device.offline")
    severity: Literal["info", "minor", "moderate", "severe", "critical"] = "moderate"
    title: str = Field(default="", description="Vietnamese title template")
    description: str | None = None
    dedup: str = Field(description="Dedup key template: one open alert per distinct key")
    policy: str | None = Field(default="default", description="Escalation policy name")


class PolicyStep(_Model):
    after_min: float = Field(gt=0)
    to_role: str


class RuleBook(_Model):
    policies: dict[str, list[PolicyStep]] = Field(default_factory=dict)
    suppress_after_dismiss_min: float = Field(default=30, ge=0)
    rules: list[AlertRule] = Field(default_factory=list)

    def escalation_policies(self) -> dict[str, EscalationPolicy]:
        return {
            name: EscalationPolicy(
                name, tuple(EscalationStep(timedelta(minutes=s.after_min), s.to_role) for s in steps)
            )
            for name, steps in self.policies.items()
        }

    @property
    def suppress_after_dismiss(self) -> timedelta:
        return timedelta(minutes=self.suppress_after_dismiss_min)


def load_rulebook(path: str | Path) -> RuleBook:
    with open(path, encoding="utf-8") as handle:
        return RuleBook.model_validate(yaml.safe_load(handle) or {})


class _Blank(dict):
    def __missing__(self, key: str) -> str:
        return "?"


def render(template: str, obs: Observation) -> str:
    values = _Blank({k: v for k, v in obs.fields.items() if isinstance(v, Scalar)})
    for name in _OBSERVATION_ATTRS:
        value = getattr(obs, name)
        if value is not None:
            values.setdefault(name, value)
    if obs.device_name is None and obs.device_id is not None:
        values["device_name"] = obs.device_id
    if "zone_label" not in values and "zone" in values:
        values["zone_label"] = values["zone"]  # an event without the label (a camera's own): its zone's name
    return string.Formatter().vformat(template, (), values)


@dataclass(frozen=True)
class Resolution:
    """An open alert to close because its cause went away."""

    dedup_key: str
    rule_id: str
    at: datetime


def evaluate(book: RuleBook, observations: Iterable[Observation]) -> tuple[list[AlertDraft], list[Resolution]]:
    """Apply every rule to every observation; a single observation may raise several alerts."""
    drafts: list[AlertDraft] = []
    resolutions: list[Resolution] = []
    for obs in observations:
        # One observation counts once per cause, even when several rules match it (a level past both
        # warning and critical): the most severe rule's draft stands for it.
        by_key: dict[str, AlertDraft] = {}
        for rule in book.rules:
            if not rule.when.matches(obs):
                continue
            key = f"{rule.kind}:{render(rule.dedup, obs)}"
            if rule.action == "resolve":
                resolutions.append(Resolution(key, rule.id, obs.at))
                continue
            evidence = {k: v for k, v in obs.fields.items() if k in EVIDENCE_FIELDS}
            if obs.device_id:
                evidence["device_id"] = obs.device_id  # the wall draws the device's readings beside the alert
            if rule.when.metric is not None and obs.fields.get(rule.when.metric) is not None:
                evidence.update(metric=rule.when.metric, value=obs.fields[rule.when.metric])
            draft = AlertDraft(
                kind=rule.kind,
                severity=Severity(rule.severity),
                title=render(rule.title, obs) or rule.kind,
                at=obs.at,
                unit_id=obs.unit_id,
                dedup_key=key,
                description=render(rule.description, obs) if rule.description else None,
                lat=obs.lat,
                lon=obs.lon,
                evidence=evidence,
                source_ref={"source": obs.source, "rule": rule.id, **(obs.ref or {})},
                policy=rule.policy,
            )
            kept = by_key.get(key)
            if kept is None or draft.severity.rank > kept.severity.rank:
                by_key[key] = draft
        drafts.extend(by_key.values())
    return drafts, resolutions


#: Observation fields worth keeping on the alert as its latest evidence.
EVIDENCE_FIELDS = frozenset(
    {"snapshot_ref", "clip_ref", "score", "object_class", "zone", "bbox", "track_id", "value", "metric", "state",
     "reason", "category", "description", "report_id", "tracking_code", "media", "count"}
)  # fmt: skip
