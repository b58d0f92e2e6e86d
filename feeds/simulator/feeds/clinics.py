"""Commune clinics' daily figures (ClinicDailyV1) for the simulated days.

Each clinic reports once a day around 17:00 local time: visits (more on weekdays), vaccination
doses (a vaccination session on the clinic's monthly day), and new cases of notifiable diseases,
each disease with its own small daily chance, so that now and then a commune sees a cluster, the
way a mountain district does in the rainy season.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from datetime import datetime, time, timedelta

from feeds.simulator.core import SimMessage, SimulationContext, register_feed
from feeds.simulator.payloads import message
from ioc.clock import LOCAL_TZ

# disease code -> chance of a case at one clinic on one day, largest daily count
DAILY_CASE_CHANCE = {
    "cum": (0.20, 3), "tieu-chay": (0.10, 2), "sot-xuat-huyet": (0.05, 2), "tay-chan-mieng": (0.05, 2),
    "sot-ret": (0.02, 1), "thuy-dau": (0.03, 2), "quai-bi": (0.015, 1), "soi": (0.004, 1),
}  # fmt: skip


class ClinicFeed:
    name = "clinics"

    def __init__(self, clinics: list, root: str) -> None:  # noqa: ANN001 - Clinic models of the district
        self.clinics = [c for c in clinics if c.enabled]
        self.root = root

    def _day(self, day, rng: random.Random) -> list[SimMessage]:  # noqa: ANN001 - a date
        out = []
        for number, clinic in enumerate(self.clinics):
            weekday = day.weekday() < 5
            visits = rng.randint(18, 55) if weekday else rng.randint(3, 15)
            vaccinations = rng.randint(25, 70) if day.day == 10 + number % 15 else rng.randint(0, 4)
            cases = {}
            for disease, (chance, most) in DAILY_CASE_CHANCE.items():
                if rng.random() < chance:
                    cases[disease] = rng.randint(1, most)
            at = datetime.combine(day, time(17, 0), tzinfo=LOCAL_TZ) + timedelta(minutes=rng.uniform(0, 45))
            out.append(message(
                self.root, clinic.unit, "clinic", clinic.id, "event", at, f"tyt-{day:%Y%m%d}",
                day=day.isoformat(), visits=visits, cases=cases, vaccinations=vaccinations,
            ))  # fmt: skip
        return sorted(out)

    def messages(self, start: datetime, rng: random.Random) -> Iterator[SimMessage]:
        day = start.astimezone(LOCAL_TZ).date()
        while self.clinics:
            for msg in self._day(day, rng):
                if msg.at >= start:
                    yield msg
            day += timedelta(days=1)


@register_feed
def clinic_feeds(context: SimulationContext) -> Iterable[ClinicFeed]:
    clinics = getattr(context.district, "clinics", [])
    return [ClinicFeed(clinics, context.topic_root)] if clinics else []
