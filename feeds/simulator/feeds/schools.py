"""Schools' daily attendance registers (SchoolAttendanceV1) for the simulated days.

Each school sends its register once a school day (Monday to Friday, and Saturday morning classes in
some) between 08:00 and 09:30 local time. Most days 88-99 % of pupils are present; on a few days a
school has many absent (heavy rain, a festival, the harvest), which is what the attendance
threshold is there to catch.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from datetime import datetime, time, timedelta

from feeds.simulator.core import SimMessage, SimulationContext, register_feed
from feeds.simulator.payloads import message
from ioc.clock import LOCAL_TZ

LOW_DAY_CHANCE = 0.03


class SchoolFeed:
    name = "schools"

    def __init__(self, schools: list, root: str) -> None:  # noqa: ANN001 - School models of the district
        self.schools = [s for s in schools if s.enabled]
        self.root = root

    def _day(self, day, rng: random.Random) -> list[SimMessage]:  # noqa: ANN001 - a date
        out = []
        for school in self.schools:
            if day.weekday() == 6 or (day.weekday() == 5 and rng.random() < 0.7):
                continue
            enrolled = school.pupils or rng.randrange(150, 450)
            share = rng.uniform(0.55, 0.78) if rng.random() < LOW_DAY_CHANCE else rng.uniform(0.88, 0.995)
            at = datetime.combine(day, time(8, 0), tzinfo=LOCAL_TZ) + timedelta(minutes=rng.uniform(0, 90))
            out.append(message(
                self.root, school.unit, "school", school.id, "event", at, f"dd-{day:%Y%m%d}",
                day=day.isoformat(), pupils_enrolled=enrolled, pupils_present=round(enrolled * share),
            ))  # fmt: skip
        return sorted(out)

    def messages(self, start: datetime, rng: random.Random) -> Iterator[SimMessage]:
        day = start.astimezone(LOCAL_TZ).date()
        while self.schools:
            for msg in self._day(day, rng):
                if msg.at >= start:
                    yield msg
            day += timedelta(days=1)


@register_feed
def school_feeds(context: SimulationContext) -> Iterable[SchoolFeed]:
    schools = getattr(context.district, "schools", [])
    return [SchoolFeed(schools, context.topic_root)] if schools else []
