"""``config/sector-thresholds.yaml`` as pydantic models: what raises an education, health or
online-information alert. Unknown keys are errors, so a misspelt threshold is not silently ignored."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from ioc.text import nfc

SeverityName = Literal["info", "minor", "moderate", "severe", "critical"]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), AfterValidator(nfc)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Education(_Model):
    attendance_min_pct: float = Field(default=80.0, gt=0, le=100)
    min_enrolled: int = Field(default=10, ge=1)
    severity: SeverityName = "moderate"


class Disease(_Model):
    id: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{0,47}$")]
    name: Name
    name_en: Name
    cluster_cases: int | None = Field(default=None, ge=1)
    cluster_days: int | None = Field(default=None, ge=1, le=365)
    severity: SeverityName | None = None


class Health(_Model):
    default_cluster_cases: int = Field(default=3, ge=1)
    default_cluster_days: int = Field(default=7, ge=1, le=365)
    severity: SeverityName = "severe"
    notifiable_diseases: list[Disease] = Field(default_factory=list)

    def disease(self, code: str) -> Disease | None:
        return next((d for d in self.notifiable_diseases if d.id == code), None)

    def cluster_rule(self, code: str) -> tuple[int, int, SeverityName] | None:
        """(cases, days, severity) of a notifiable disease; None for a code the list does not name."""
        disease = self.disease(code)
        if disease is None:
            return None
        return (
            disease.cluster_cases or self.default_cluster_cases,
            disease.cluster_days or self.default_cluster_days,
            disease.severity or self.severity,
        )


class Mentions(_Model):
    spike_min_negative: int = Field(default=5, ge=1)
    window_hours: float = Field(default=6.0, gt=0, le=24 * 14)
    baseline_days: float = Field(default=7.0, ge=0, le=90)
    baseline_factor: float = Field(default=2.0, ge=0)
    severity: SeverityName = "moderate"


class SectorThresholds(_Model):
    policy: str | None = "default"
    education: Education = Field(default_factory=Education)
    health: Health = Field(default_factory=Health)
    mentions: Mentions = Field(default_factory=Mentions)


def load_thresholds(path: str | Path) -> SectorThresholds:
    """The thresholds of the YAML file at ``path``; pydantic's ValidationError names a bad key's path."""
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    return SectorThresholds.model_validate(data)
