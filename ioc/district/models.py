"""The district configuration as pydantic models that mirror the YAML file (docs/configuration.md).

Each section of ``config/district.yaml`` is one model, so a validation error names the exact path
(``cameras[4].rules[1].zone``). Every model forbids unknown keys: a misspelt key is an error, not a
silently ignored setting. These models check each item on its own; the checks that need the whole file
(references between sections, duplicate ids, geometry) are in :mod:`ioc.district.loader`.

Nothing here assumes a district or a number of units: units form a tree of any depth through
``parent``, and ``level`` is free text (``province``, ``district``, ``commune``, ``town``...).
"""

from __future__ import annotations

from datetime import date, time
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from ioc.text import nfc

SLUG_PATTERN = r"^[a-z0-9]+(?:-[a-z0-9]+)*$"
Slug = Annotated[str, StringConstraints(pattern=SLUG_PATTERN, max_length=64)]
"""An id: lower-case ASCII words joined by ``-`` (``tra-kot``, ``cam-tra-my-school-01``).

Ids travel in MQTT topics and URLs, so they stay ASCII; the Vietnamese name is a separate field."""

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), AfterValidator(nfc)]
"""Human text, stored in NFC whatever form the file was typed in."""

Role = Literal["admin", "operator", "leader", "commune_officer"]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
Pixel = Annotated[float, Field(ge=0)]
PixelPoint = tuple[Pixel, Pixel]


class Model(BaseModel):
    """Base of every section: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")


class Position(Model):
    """A WGS84 point. Named fields rather than a pair, so latitude and longitude cannot be swapped."""

    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)


class Geometry(Model):
    """A GeoJSON Polygon or MultiPolygon geometry (lon, lat order, as GeoJSON requires).

    Only the shape of the document is checked here; whether the rings form a valid polygon is checked
    with shapely by the loader, which can then name the offending unit.
    """

    type: Literal["Polygon", "MultiPolygon"]
    coordinates: list[Any]


class FormerName(Model):
    """A name the unit had before, kept so records show the name of their time."""

    name: Name
    valid_from: date | None = None
    valid_to: date | None = None


class Unit(Model):
    """An administrative unit: a node of the unit tree.

    A unit renamed from a date lists its old name under ``former_names``. A unit merged into another
    keeps its entry with ``valid_to`` (the first day it no longer exists) and ``successor`` (the unit
    its records roll up to); the successor has ``valid_from``.
    """

    id: Slug
    name: Name
    name_en: Name | None = None
    level: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=40)]
    parent: Slug | None = None
    code: str | None = Field(default=None, description="Official administrative code, when known.")
    aliases: list[Name] = Field(
        default_factory=list,
        description="Other names the unit goes by in sheets and messages (agency names such as 'UBND xã Trà Sơn').",
    )
    polygon: Geometry | None = None
    valid_from: date | None = None
    valid_to: date | None = None
    successor: Slug | None = None
    former_names: list[FormerName] = Field(default_factory=list)
    properties: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check_dates(self) -> Unit:
        if self.valid_from and self.valid_to and self.valid_to <= self.valid_from:
            raise ValueError("valid_to must be after valid_from")
        if self.successor and not self.valid_to:
            raise ValueError("a unit with a successor needs valid_to (the day its records move)")
        return self

    def valid_on(self, day: date | None) -> bool:
        """Whether the unit exists on ``day``; ``None`` means "today's structure" (not yet ended)."""
        if day is None:
            return self.valid_to is None
        return (self.valid_from is None or self.valid_from <= day) and (self.valid_to is None or day < self.valid_to)


class Zone(Model):
    """An area of a camera's frame, in pixels of the frame (x right, y down from the top-left corner)."""

    name: Slug
    label: Name | None = None
    kind: Annotated[str, StringConstraints(pattern=r"^[a-z0-9_]+$")] = Field(
        description="What the area is: school_yard, gate, lane, crowd_area, parking, river_bank..."
    )
    polygon: list[PixelPoint] = Field(min_length=3)


class TimeWindow(Model):
    """A weekly time window (local time, Asia/Ho_Chi_Minh). ``end`` before ``start`` runs past midnight."""

    days: list[Weekday] = Field(default_factory=lambda: ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], min_length=1)
    start: time
    end: time

    @field_validator("start", "end", mode="before")
    @classmethod
    def _quoted(cls, value: Any) -> Any:
        # YAML 1.1 reads an unquoted 18:30 as the base-60 integer 1110: refuse it instead of guessing.
        if isinstance(value, int):
            raise ValueError("write times in quotes, e.g. '18:30'")
        return value

    @model_validator(mode="after")
    def _not_empty(self) -> TimeWindow:
        if self.start == self.end:
            raise ValueError("start and end are the same time")
        return self


class RuleBase(Model):
    id: Slug
    severity: Literal["info", "minor", "moderate", "severe", "critical"] = "moderate"
    enabled: bool = True
    schedule: list[TimeWindow] = Field(default_factory=list, description="When the rule is armed; empty means always.")


class IntrusionRule(RuleBase):
    """A person (or ``objects``) inside ``zone`` while the schedule is armed (e.g. a school yard at night)."""

    kind: Literal["intrusion"]
    zone: Slug
    objects: list[str] = Field(default_factory=lambda: ["person"], min_length=1)
    min_duration_s: float = Field(default=2.0, ge=0)


class LineCrossingRule(RuleBase):
    """An object crossing a line (two pixel points); ``direction`` relative to the line's left side."""

    kind: Literal["line_crossing"]
    line: tuple[PixelPoint, PixelPoint]
    direction: Literal["any", "left_to_right", "right_to_left"] = "any"
    objects: list[str] = Field(default_factory=lambda: ["person"], min_length=1)


class LoiteringRule(RuleBase):
    """An object staying in ``zone`` longer than ``dwell_s``."""

    kind: Literal["loitering"]
    zone: Slug
    dwell_s: float = Field(gt=0)
    objects: list[str] = Field(default_factory=lambda: ["person"], min_length=1)


class CrowdRule(RuleBase):
    """At least ``min_people`` people in ``zone`` for ``min_duration_s``."""

    kind: Literal["crowd"]
    zone: Slug
    min_people: int = Field(ge=2)
    min_duration_s: float = Field(default=30.0, ge=0)


class CongestionRule(RuleBase):
    """A lane holding at least ``min_vehicles`` vehicles moving slowly for ``min_duration_s``."""

    kind: Literal["congestion"]
    zone: Slug
    min_vehicles: int = Field(ge=1)
    min_duration_s: float = Field(default=120.0, ge=0)
    max_speed_px_s: float = Field(default=5.0, gt=0)


class TamperRule(RuleBase):
    """The camera covered, defocused or moved: the frame differs from its reference for ``min_duration_s``."""

    kind: Literal["tamper"]
    sensitivity: float = Field(default=0.5, ge=0, le=1)
    min_duration_s: float = Field(default=10.0, ge=0)


Rule = Annotated[
    IntrusionRule | LineCrossingRule | LoiteringRule | CrowdRule | CongestionRule | TamperRule,
    Field(discriminator="kind"),
]
RULE_KINDS = ("intrusion", "line_crossing", "loitering", "crowd", "congestion", "tamper")


class Frame(Model):
    """The size of the frames the zones are drawn on; detectors scale zones if a stream differs."""

    width: int = Field(gt=0)
    height: int = Field(gt=0)


class Camera(Model):
    """A camera: where it is, how to read it, and what to watch in its frame."""

    id: Slug
    name: Name
    unit: Slug
    position: Position
    site: Annotated[str, StringConstraints(pattern=r"^[a-z0-9_]+$")] = Field(
        description="What it looks at: school, market, junction, bridge, town_centre, office, health_station..."
    )
    stream_url: Annotated[str, StringConstraints(pattern=r"^(rtsp|rtsps|http|https|file):.+")]
    snapshot_url: str | None = None
    frame: Frame = Field(default_factory=lambda: Frame(width=1280, height=720))
    fps: float = Field(default=5.0, gt=0, le=60)
    expected_interval_s: int = Field(default=60, gt=0)
    enabled: bool = True
    zones: list[Zone] = Field(default_factory=list)
    rules: list[Rule] = Field(default_factory=list)


class RadioCluster(Model):
    """A loudspeaker cluster ("cụm loa"): one IP receiver box driving a few horns.

    The box, not the horn, is what the IOC addresses: it has the MQTT client, takes commands, plays
    audio and reports playback, so each cluster is one ``devices`` row of kind ``radio``.
    """

    id: Slug
    name: Name
    unit: Slug
    position: Position
    horns: int = Field(default=3, ge=1, le=64, description="Loudspeaker horns the box drives (information).")
    expected_interval_s: int = Field(default=300, gt=0)
    enabled: bool = True


class RadioPolicy(Model):
    """How the radio service treats urgent broadcasts and CAP alerts (docs/radio.md)."""

    second_confirmation: Literal["never", "urgent", "always"] = Field(
        default="never",
        description="Which broadcasts wait for a second person (another operator, a leader or an admin) to confirm.",
    )
    cap: Literal["off", "propose", "start"] = Field(
        default="propose",
        description="What an Actual CAP alert covering communes does: nothing, propose an urgent broadcast "
        "(an operator starts it), or start it at once.",
    )
    cap_repeat: int = Field(default=2, ge=1, le=10, description="Times a CAP broadcast is played.")


class SensorLevels(Model):
    """Alert levels of a measured value: ``warning`` then ``critical``, rising unless ``falling`` is set."""

    warning: float
    critical: float
    falling: bool = False

    @model_validator(mode="after")
    def _ordered(self) -> SensorLevels:
        worse = self.critical < self.warning if self.falling else self.critical > self.warning
        if not worse:
            raise ValueError("critical must be beyond warning (above it, or below it when falling)")
        return self


class Sensor(Model):
    """A measuring device: water level at a bridge, rain gauge, landslide tilt meter..."""

    id: Slug
    name: Name
    unit: Slug
    position: Position
    kind: Annotated[str, StringConstraints(pattern=r"^[a-z0-9_]+$")] = Field(
        description="water_level, rain_gauge, tilt, air_quality, ..."
    )
    measure: Annotated[str, StringConstraints(min_length=1)] = Field(description="Unit of the value: cm, mm/h, ...")
    levels: SensorLevels | None = None
    expected_interval_s: int = Field(default=600, gt=0)
    enabled: bool = True


class Integration(Model):
    """An outside system that publishes on MQTT like a device: the citizen-report app and website, the
    one-stop dossier system, news monitoring, school or clinic systems.

    ``kind`` is the topic's kind (``ioc/v1/<unit>/<kind>/<id>/event``): ``report``, ``dossier``,
    ``mention``, ``school``, ``clinic``...; ``unit`` is the unit its messages are published under
    (usually the district; each message may name a more precise unit or position).
    """

    id: Slug
    name: Name
    kind: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*$", max_length=32)]
    unit: Slug
    expected_interval_s: int = Field(default=3600, gt=0, description="Silence after which it is shown offline.")
    enabled: bool = True
    properties: dict[str, Any] = Field(default_factory=dict)


class School(Model):
    """A school (trường học) that sends its daily attendance register (``school`` kind on MQTT)."""

    id: Slug
    name: Name
    unit: Slug
    position: Position
    level: Literal["preschool", "primary", "lower_secondary", "upper_secondary", "multi_level"] = "primary"
    pupils: int | None = Field(default=None, ge=0, description="Enrolment, for the simulator and the wall's labels.")
    expected_interval_s: int = Field(default=86400, gt=0, description="One register a school day.")
    enabled: bool = True


class Clinic(Model):
    """A commune clinic (trạm y tế) that sends its daily figures (``clinic`` kind on MQTT)."""

    id: Slug
    name: Name
    unit: Slug
    position: Position
    expected_interval_s: int = Field(default=86400, gt=0, description="One report a day.")
    enabled: bool = True


class ReportCategory(Model):
    """A category of citizen report ("phản ánh, kiến nghị") and how fast it must be handled."""

    id: Slug
    name: Name
    name_en: Name
    sla_hours: float = Field(gt=0)
    severity: Literal["info", "minor", "moderate", "severe", "critical"] = "minor"
    privacy: Literal["public_hidden", "ioc_only"] = Field(
        default="public_hidden",
        description="public_hidden: the commune's staff and the district see the reporter; ioc_only: only district "
        "staff see the report at all (reports about local officials must not reach them).",
    )
    public_listing: Literal["public", "coarse", "ioc_only"] = Field(
        default="coarse",
        description="What public lists (Open311, maps) show of its reports: public: the place as given; coarse: "
        "the place rounded to about 1 km, no address; ioc_only: not listed at all (implied by privacy: ioc_only).",
    )
    sensitive: bool = Field(default=False, description="Public lists never show the text of its reports.")


class Escalation(Model):
    """Who is notified when an alert is still unacknowledged ``after_min`` minutes after it opened."""

    after_min: int = Field(gt=0)
    to_role: Role


class Thresholds(Model):
    """Platform-wide limits; device-specific values live on the device."""

    offline_grace_factor: float = Field(
        default=2.0, ge=1, description="A device is offline after expected_interval_s × this factor."
    )
    escalation: list[Escalation] = Field(
        default_factory=lambda: [
            Escalation(after_min=15, to_role="operator"),
            Escalation(after_min=60, to_role="leader"),
        ]
    )
    alert_merge_window_s: int = Field(default=300, gt=0, description="Repeated detections within this are one alert.")
    dossier_due_soon_days: int = Field(default=3, ge=0)
    negative_mentions_per_hour: int = Field(default=10, gt=0)
    report_duplicate_radius_m: float = Field(default=50.0, gt=0)


class KpiTarget(Model):
    """A target the leaders watch (share of dossiers on time, report resolution within SLA...)."""

    id: Slug
    name: Name
    name_en: Name | None = None
    target: float
    measure: Literal["percent", "minutes", "hours", "count", "score"] = "percent"
    direction: Literal["higher_is_better", "lower_is_better"] = "higher_is_better"


class SeedUser(Model):
    """A user created at start-up. The password is never in the file: only the name of an env variable."""

    username: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._-]{1,63}$")]
    display_name: Name
    role: Role
    unit: Slug | None = None
    password_env: Annotated[str, StringConstraints(pattern=r"^[A-Z_][A-Z0-9_]*$")] | None = None

    @model_validator(mode="after")
    def _officer_has_unit(self) -> SeedUser:
        if self.role == "commune_officer" and not self.unit:
            raise ValueError("a commune_officer needs a unit")
        return self


class District(Model):
    """The root of the file: the organisation the IOC serves, its units, devices and settings.

    ``geometry_file`` (relative to the YAML file) is a GeoJSON FeatureCollection whose features carry
    ``properties.unit_id``; the loader copies each feature's geometry onto that unit's ``polygon``, so
    real boundaries can replace the synthetic ones without editing the YAML.
    """

    id: Slug
    name: Name
    timezone: str = "Asia/Ho_Chi_Minh"
    geometry_file: str | None = None
    units: list[Unit] = Field(min_length=1)
    cameras: list[Camera] = Field(default_factory=list)
    radio_clusters: list[RadioCluster] = Field(default_factory=list)
    sensors: list[Sensor] = Field(default_factory=list)
    integrations: list[Integration] = Field(default_factory=list)
    schools: list[School] = Field(default_factory=list)
    clinics: list[Clinic] = Field(default_factory=list)
    report_categories: list[ReportCategory] = Field(default_factory=list)
    thresholds: Thresholds = Field(default_factory=Thresholds)
    radio: RadioPolicy = Field(default_factory=RadioPolicy)
    kpi_targets: list[KpiTarget] = Field(default_factory=list)
    users: list[SeedUser] = Field(default_factory=list)

    @model_validator(mode="after")
    def _sites_are_placed(self) -> District:
        """Schools and clinics name a unit of the file and an id no other device has (the loader's cross
        checks do this for the older sections; the path is in the message)."""
        units = {u.id for u in self.units}
        taken = {c.id for c in self.cameras} | {r.id for r in self.radio_clusters} | {s.id for s in self.sensors}
        taken |= {i.id for i in self.integrations}
        problems: list[str] = []
        for section in ("schools", "clinics"):
            for index, site in enumerate(getattr(self, section)):
                if site.unit not in units:
                    problems.append(f"{section}[{index}].unit: unknown unit '{site.unit}'")
                if site.id in taken:
                    problems.append(f"{section}[{index}].id: duplicate id '{site.id}'")
                taken.add(site.id)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def unit(self, unit_id: str) -> Unit | None:
        """The unit with ``unit_id``, or None."""
        return next((u for u in self.units if u.id == unit_id), None)

    def children(self, unit_id: str | None) -> list[Unit]:
        """The units whose parent is ``unit_id`` (``None``: the roots), in file order."""
        return [u for u in self.units if u.parent == unit_id]

    def leaf_units(self, on: date | None = None) -> list[Unit]:
        """Units without children that exist on ``on`` (``None``: today's structure).

        A child that ended does not make its parent a non-leaf for a later day only if it ended
        before ``on``; parents are judged against the children that exist on the same day.
        """
        alive = [u for u in self.units if u.valid_on(on)]
        parents = {u.parent for u in alive}
        return [u for u in alive if u.id not in parents]

    def device_count(self) -> int:
        """Cameras, loudspeaker clusters, sensors, integrations, schools and clinics: the rows of the devices table."""
        sites = len(self.schools) + len(self.clinics)
        return len(self.cameras) + len(self.radio_clusters) + len(self.sensors) + len(self.integrations) + sites
