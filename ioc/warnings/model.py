"""What a warning says (its CAP ``info``), as the API receives it and the database keeps it."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from ioc.cap.model import Area

LatLon = tuple[Annotated[float, Field(ge=-90, le=90)], Annotated[float, Field(ge=-180, le=180)]]
Ring = Annotated[list[LatLon], Field(min_length=4, max_length=5000)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Circle(_Strict):
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    radius_km: float = Field(ge=0, le=500)


class Geocode(_Strict):
    name: str = Field(default="VN-ADMIN", min_length=1, max_length=64, description="CAP geocode valueName")
    value: str = Field(min_length=1, max_length=64, description="The unit's official administrative code")


class AreaIn(_Strict):
    description: str = Field(min_length=1, max_length=500)
    polygons: list[Ring] = Field(default_factory=list, max_length=50,
                                         description="Closed rings of [lat, lon] (CAP order)")  # fmt: skip
    circles: list[Circle] = Field(default_factory=list, max_length=50)
    geocodes: list[Geocode] = Field(default_factory=list, max_length=500)

    @field_validator("polygons")
    @classmethod
    def _closed(cls, rings: list[list[LatLon]]) -> list[list[LatLon]]:
        for i, ring in enumerate(rings):
            if tuple(ring[0]) != tuple(ring[-1]):
                raise ValueError(f"polygon {i + 1}: the first and last points must be the same (a closed ring)")
        return rings

    def to_cap(self) -> Area:
        return Area(self.description, [list(r) for r in self.polygons],
                    [(c.lat, c.lon, c.radius_km) for c in self.circles],
                    [(g.name, g.value) for g in self.geocodes])  # fmt: skip


class Content(_Strict):
    """One warning's text and area; an Update replaces all of it."""

    event: str = Field(min_length=1, max_length=200)
    headline: str = Field(min_length=1, max_length=160)
    description: str | None = Field(default=None, max_length=8000)
    instruction: str | None = Field(default=None, max_length=4000)
    severity: Literal["Extreme", "Severe", "Moderate", "Minor", "Unknown"] = "Severe"
    urgency: Literal["Immediate", "Expected", "Future", "Past", "Unknown"] = "Immediate"
    certainty: Literal["Observed", "Likely", "Possible", "Unlikely", "Unknown"] = "Likely"
    expires: AwareDatetime | None = None
    areas: list[AreaIn] = Field(min_length=1, max_length=20)
    audio_id: int | None = Field(default=None, description="A recording for the loudspeakers (else text-to-speech)")

    def cap_areas(self) -> list[Area]:
        return [a.to_cap() for a in self.areas]


def expires_of(content: Content) -> datetime | None:
    return content.expires
