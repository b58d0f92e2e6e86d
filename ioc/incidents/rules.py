"""Correlation rules: which signals are one incident (config/incident-rules.yaml, docs/incidents.md)."""

from __future__ import annotations

import fnmatch
import threading
from datetime import timedelta
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

#: The rule that takes any signal no configured rule matches: one incident per cause.
FALLBACK_ID = "khac"


class Step(BaseModel):
    """One standard step of an incident category's checklist."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$", max_length=64)
    text: str = Field(min_length=1, max_length=200)
    text_en: str | None = Field(default=None, max_length=200)


class Rule(BaseModel):
    """Signals matching ``signals`` (shell patterns over topics) group by place and time."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$", max_length=64)
    name: str = Field(min_length=1, max_length=200)
    name_en: str | None = None
    signals: tuple[str, ...] = Field(min_length=1)
    joins: tuple[str, ...] = ()
    place: Literal["unit", "radius", "cause"] = "unit"
    radius_m: float | None = Field(default=None, gt=0, le=100_000)
    window_min: float | None = Field(default=None, gt=0, le=60 * 24 * 30)
    checklist: tuple[Step, ...] = ()

    @model_validator(mode="after")
    def _radius_when_needed(self) -> Rule:
        if self.place == "radius" and self.radius_m is None:
            raise ValueError("place: radius needs radius_m")
        ids = [s.id for s in self.checklist]
        if len(ids) != len(set(ids)):
            raise ValueError("checklist step ids must be unique")
        return self

    def opens(self, topic: str) -> bool:
        return any(fnmatch.fnmatchcase(topic, p) for p in self.signals)

    def accepts(self, topic: str) -> bool:
        return self.opens(topic) or any(fnmatch.fnmatchcase(topic, p) for p in self.joins)


class RuleSet(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    default_window_min: float = Field(default=60, gt=0, le=60 * 24 * 30)
    rules: tuple[Rule, ...] = ()

    @model_validator(mode="after")
    def _unique_and_fallback(self) -> RuleSet:
        ids = [r.id for r in self.rules]
        if len(ids) != len(set(ids)):
            raise ValueError("rule ids must be unique")
        if not any(r.id == FALLBACK_ID for r in self.rules):
            fallback = Rule(id=FALLBACK_ID, name="Sự việc khác", name_en="Other", signals=("*",), place="cause")
            object.__setattr__(self, "rules", (*self.rules, fallback))
        return self

    def window(self, rule: Rule) -> timedelta:
        return timedelta(minutes=rule.window_min or self.default_window_min)

    def rule_opening(self, topic: str) -> Rule | None:
        """The rule an incident opened by ``topic`` follows (None: the topic only joins: a topic some
        rule lists under ``joins`` never opens a catch-all incident of its own)."""
        rule = next((r for r in self.rules if r.opens(topic)), None)
        if rule is not None and rule.id == FALLBACK_ID and any(
            fnmatch.fnmatchcase(topic, p) for r in self.rules for p in r.joins
        ):
            return None
        return rule

    def rules_accepting(self, topic: str) -> list[Rule]:
        """Rules whose incidents ``topic`` may join, in order of preference."""
        return [r for r in self.rules if r.accepts(topic) and (r.id != FALLBACK_ID or r.opens(topic))]

    def get(self, rule_id: str) -> Rule | None:
        return next((r for r in self.rules if r.id == rule_id), None)


class RulesError(ValueError):
    """The rules file cannot be used; the message names the file and the problem."""


def load_rules(path: str | Path) -> RuleSet:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise RulesError(f"{path}: cannot read: {exc}") from exc
    except yaml.YAMLError as exc:
        raise RulesError(f"{path}: not YAML: {exc}") from exc
    try:
        return RuleSet.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise RulesError(f"{path}: {problems}") from exc


_cache: dict[tuple[str, float], RuleSet] = {}
_cache_lock = threading.Lock()


def configured() -> RuleSet:
    """The rules named by the settings (``IOC_INCIDENT_RULES``), re-read when the file changes.

    Alerts are raised deep inside ingest, reports, CAP and radio code that does not carry settings;
    reading them here keeps one source of truth without threading a parameter through every caller.
    No file configured: only the fallback (one incident per cause)."""
    from ioc.settings import get_settings

    path = get_settings().incident_rules
    if path is None:
        return RuleSet()
    try:
        key = (str(path), Path(path).stat().st_mtime)
    except OSError as exc:
        raise RulesError(f"{path}: cannot read: {exc}") from exc
    with _cache_lock:
        if key not in _cache:
            _cache.clear()
            _cache[key] = load_rules(path)
        return _cache[key]
