"""Payloads of the sector feeds: school attendance, clinic daily figures, online mentions.

They travel on the ``event`` channel of their own kinds (``school``, ``clinic``, ``mention``) and are
stored like any device event (``device_events``, keyed by device and message id, so a redelivery
lands once); the ingest worker then derives the sector rows from them in the same transaction
(:mod:`ingest.sectors`). Daily figures name the **local day** they describe (Asia/Ho_Chi_Minh)
apart from ``ts`` (when the report was sent): a school that sends yesterday's register this morning
still counts for yesterday, and a corrected report for the same day replaces the earlier one.

Disease codes are checked only for their shape here: the list of notifiable diseases (codes and
Vietnamese names) is configuration (``config/sector-thresholds.yaml``), and a code it does not list
is stored and shown but raises no cluster alert.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, ClassVar

from pydantic import ConfigDict, Field, StringConstraints, model_validator

from ioc.clock import LOCAL_TZ
from ioc.contract.schemas import REGISTRY, Envelope, Identifier, JsonObject, ShortText
from ioc.contract.topics import Channel

DiseaseCode = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{0,47}$")]
Count = Annotated[int, Field(ge=0, le=1_000_000)]


class _Daily(Envelope):
    """A report about one local day, which cannot be later than the day it is sent."""

    day: dt.date = Field(description="The local day (Asia/Ho_Chi_Minh) the figures describe, `YYYY-MM-DD`.")

    @model_validator(mode="after")
    def _day_not_after_ts(self) -> _Daily:
        sent_on = self.ts.astimezone(LOCAL_TZ).date()
        if self.day > sent_on:
            raise ValueError(f"day {self.day} is after the local day the report was sent ({sent_on})")
        return self


class SchoolAttendanceV1(_Daily):
    """A school's attendance register for one day (trường học: sĩ số, có mặt). Stored in
    `device_events` as `school.attendance`, then as the row of (school, day) in
    `school_attendance`; a later message for the same day replaces it (a corrected register)."""

    max_bytes: ClassVar[int] = 16 * 1024
    event_type: ClassVar[str] = "school.attendance"
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "v": 1,
                    "id": "dd-20260302",
                    "ts": "2026-03-02T09:15:00+07:00",
                    "day": "2026-03-02",
                    "pupils_enrolled": 312,
                    "pupils_present": 287,
                }
            ]
        }
    )

    pupils_enrolled: Count = Field(description="Pupils on the school's roll that day (sĩ số).")
    pupils_present: Count = Field(description="Pupils present that day (có mặt); at most `pupils_enrolled`.")
    data: JsonObject = Field(default_factory=dict, description="Other details (by class, reasons of absence...).")

    @model_validator(mode="after")
    def _present_within_enrolled(self) -> SchoolAttendanceV1:
        if self.pupils_present > self.pupils_enrolled:
            raise ValueError(
                f"pupils_present ({self.pupils_present}) is more than pupils_enrolled ({self.pupils_enrolled})"
            )
        return self


class ClinicDailyV1(_Daily):
    """A clinic's figures for one day (trạm y tế): visits, new cases of notifiable diseases by
    disease code, vaccination doses given. Stored in `device_events` as `clinic.daily`, then as the
    row of (clinic, day) in `clinic_daily` and its cases in `disease_cases`; a later message for the
    same day replaces them."""

    max_bytes: ClassVar[int] = 16 * 1024
    event_type: ClassVar[str] = "clinic.daily"
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "v": 1,
                    "id": "tyt-20260302",
                    "ts": "2026-03-02T17:30:00+07:00",
                    "day": "2026-03-02",
                    "visits": 41,
                    "cases": {"sot-xuat-huyet": 2, "tay-chan-mieng": 1},
                    "vaccinations": 18,
                }
            ]
        }
    )

    visits: Count = Field(description="Patient visits (lượt khám) that day.")
    cases: dict[DiseaseCode, Count] = Field(
        default_factory=dict,
        max_length=64,
        description="New cases of notifiable diseases that day by disease code (`sot-xuat-huyet`, "
        "`tay-chan-mieng`, `soi`...; the list is in config/sector-thresholds.yaml). A disease "
        "with no case may be left out.",
    )
    vaccinations: Count = Field(default=0, description="Vaccination doses given that day (tiêm chủng).")
    data: JsonObject = Field(default_factory=dict, description="Other details of the clinic's system.")


class MentionV1(Envelope):
    """A mention of the district found online (news site, social network, forum) by the monitoring
    system. `ts` is when it was published. Stored in `device_events` as `mention`, then in
    `mentions` once per URL, with its sentiment (negative/neutral/positive, from the Vietnamese
    lexicon of `ioc.sentiment`), topic tags and the unit it is about. Also accepted by
    `POST /api/sectors/mentions`."""

    max_bytes: ClassVar[int] = 64 * 1024
    event_type: ClassVar[str] = "mention"
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "v": 1,
                    "id": "bqn-20260302-118",
                    "ts": "2026-03-02T07:05:00+07:00",
                    "source": "baoquangnam.vn",
                    "url": "https://baoquangnam.vn/bac-tra-my-thong-tuyen-dt616-118.html",
                    "title": "Bắc Trà My thông tuyến ĐT616 sau sạt lở",
                    "text": "Sau hai ngày khắc phục, tuyến ĐT616 qua xã Trà Kót đã thông xe an toàn.",
                }
            ]
        }
    )

    source: ShortText = Field(min_length=1, description="Where it was found (site or page name).")
    url: Annotated[str, StringConstraints(max_length=2000, pattern=r"^https?://[^\s]+$")] = Field(
        description="Address of the mention (http or https); the same URL is one mention."
    )
    title: Annotated[str, StringConstraints(max_length=500)] = Field(default="", description="Headline or title.")
    text: Annotated[str, StringConstraints(max_length=20000)] = Field(
        default="", description="Text of the mention (or its excerpt)."
    )
    unit_id: Identifier | None = Field(
        default=None,
        description="The unit it is about, when the source knows; otherwise found from the commune names in "
        "the title and text, else the unit in the topic.",
    )

    @model_validator(mode="after")
    def _has_words(self) -> MentionV1:
        if not (self.title.strip() or self.text.strip()):
            raise ValueError("a mention needs a title or a text")
        return self


#: The sector entries of :data:`ioc.contract.schemas.REGISTRY`. schemas.py imports this module at its
#: end, so the registry is complete whichever of the two modules is imported first.
SECTOR_PAYLOADS: dict[tuple[str, Channel], type[Envelope]] = {
    ("school", Channel.EVENT): SchoolAttendanceV1,
    ("clinic", Channel.EVENT): ClinicDailyV1,
    ("mention", Channel.EVENT): MentionV1,
}
REGISTRY.update(SECTOR_PAYLOADS)

__all__ = ["SECTOR_PAYLOADS", "ClinicDailyV1", "MentionV1", "SchoolAttendanceV1"]
