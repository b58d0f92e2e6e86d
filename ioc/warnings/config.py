"""The warning policy of the district (``config/warnings.yaml``): categories, channels, recipients.

Only categories listed here can drive loudspeakers and public channels: a warning of any other
category (a CAP message of an unknown kind, an alert that is not a hazard) stays with the staff.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, HttpUrl

Channel = Literal["radio", "wall", "console", "push", "email", "webhook"]
PUBLIC_CHANNELS = frozenset({"radio", "webhook"})  # reach the public: never for Test/Exercise/Draft


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Category(_Model):
    label: str
    label_en: str | None = None
    cap_category: str = "Met"
    events: list[str] = Field(default_factory=list)
    channels: list[Channel] = Field(default_factory=lambda: ["wall", "console"])


class AreaThresholds(_Model):
    min_share: float = Field(default=0.10, gt=0, le=1)
    min_km2: float = Field(default=2.0, gt=0)


class Email(_Model):
    district: list[str] = Field(default_factory=list)
    units: dict[str, list[str]] = Field(default_factory=dict)


class Webhook(_Model):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")
    url: HttpUrl
    secret_env: str = Field(description="Environment variable holding the HMAC secret (never in this file)")
    categories: list[str] = Field(default_factory=list, description="Empty: every category")

    def secret(self) -> bytes | None:
        value = os.environ.get(self.secret_env)
        return value.encode() if value else None


class WarningsConfig(_Model):
    second_person: Literal["never", "actual_public"] = "actual_public"
    area: AreaThresholds = Field(default_factory=AreaThresholds)
    categories: dict[str, Category] = Field(default_factory=dict)
    email: Email = Field(default_factory=Email)
    webhooks: list[Webhook] = Field(default_factory=list)
    retry_delays_s: list[float] = Field(default_factory=lambda: [5, 30, 120, 600], min_length=0, max_length=20)

    def radio_categories(self) -> frozenset[str]:
        return frozenset(k for k, c in self.categories.items() if "radio" in c.channels)

    def category_for(self, cap_category: str | None, event: str | None) -> str | None:
        """The configured category of a received CAP message: its event first, then its CAP category."""
        folded = (event or "").strip().casefold()
        for key, cat in self.categories.items():
            if folded and folded in (e.casefold() for e in cat.events):
                return key
        for key, cat in self.categories.items():
            if cap_category and cat.cap_category == cap_category:
                return key
        return None


def load_warnings_config(path: Path | str | None) -> WarningsConfig:
    """The file at ``path``; a missing file means no public warning category at all (safe default)."""
    if path is None or not Path(path).is_file():
        return WarningsConfig()
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    return WarningsConfig.model_validate(data)
