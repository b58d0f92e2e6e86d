"""Administrative dossiers (hồ sơ thủ tục hành chính) from the one-stop (một cửa) system.

Dossiers are received on working days in office hours (Asia/Ho_Chi_Minh), mostly at the desk,
some online or by post; each gets a legal due date and, later, its steps: supplement requested,
resolved (mostly early or on time, some late), result returned, rated, paid online, digitised. Steps of
one dossier come days apart, so the feed keeps a heap of future steps and yields in time order.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta

from feeds.simulator.core import SimMessage, SimulationContext, poisson_times, register_feed
from feeds.simulator.payloads import message
from ioc.clock import LOCAL_TZ

PROCEDURES = [("1.001757", 5), ("1.003583", 3), ("2.000908", 10), ("1.004227", 15), ("2.001023", 1)]


def _office_rate(at: datetime, base_per_hour: float) -> float:
    local = at.astimezone(LOCAL_TZ)
    if local.weekday() >= 5:
        return 0.02 * base_per_hour  # online submissions at the weekend
    hour = local.hour + local.minute / 60
    return base_per_hour if 7.5 <= hour < 11.5 or 13.5 <= hour < 17 else 0.05 * base_per_hour


def _add_working_days(start: datetime, days: int) -> datetime:
    local = start.astimezone(LOCAL_TZ)
    while days > 0:
        local += timedelta(days=1)
        if local.weekday() < 5:
            days -= 1
    return local.replace(hour=17, minute=0, second=0, microsecond=0)


class DossierFeed:
    name = "dossiers"

    def __init__(self, district, root: str, source) -> None:  # noqa: ANN001 - district model and its integration
        self.root = root
        self.source = source
        self.units = [(u.id, 3.0 if "town" in u.level or u.parent is None else 0.8) for u in district.leaf_units()]

    def _event(self, at: datetime, dossier_id: str, event: str, unit_id: str, **fields) -> SimMessage:
        return message(
            self.root, self.source.unit, "dossier", self.source.id, "event", at, f"{dossier_id}-{event}",
            dossier_id=dossier_id, event=event, unit_id=unit_id, **fields,
        )  # fmt: skip

    def _life(self, at: datetime, dossier_id: str, unit_id: str, rng: random.Random) -> list[SimMessage]:
        code, legal_days = rng.choice(PROCEDURES)
        channel = rng.choices(["direct", "online", "postal"], weights=[55, 40, 5])[0]
        due = _add_working_days(at, legal_days)
        steps = [
            self._event(
                at, dossier_id, "received", unit_id, channel=channel, procedure_code=code, due_at=due.isoformat()
            )  # fmt: skip
        ]
        span = (due - at).total_seconds()
        outcome = rng.random()
        if rng.random() < 0.1:
            asked = at + timedelta(seconds=span * rng.uniform(0.1, 0.3))
            steps.append(self._event(asked, dossier_id, "supplement_requested", unit_id))
            steps.append(self._event(asked + timedelta(days=rng.uniform(0.5, 3)), dossier_id, "supplemented", unit_id))
        if outcome < 0.03:
            steps.append(self._event(at + timedelta(hours=rng.uniform(1, 24)), dossier_id, "refused", unit_id))
            return steps
        fraction = rng.uniform(0.3, 0.95) if outcome < 0.7 else rng.uniform(0.95, 1.0) if outcome < 0.9 else 1.2
        resolved = at + timedelta(seconds=span * fraction)
        steps.append(self._event(resolved, dossier_id, "resolved", unit_id))
        returned = resolved + timedelta(hours=rng.uniform(1, 48))
        steps.append(self._event(returned, dossier_id, "result_returned", unit_id))
        if rng.random() < 0.35:  # some citizens answer the satisfaction survey at the desk or online
            satisfied = rng.random() < (0.93 if fraction <= 1.0 else 0.6)
            steps.append(
                self._event(returned + timedelta(minutes=rng.uniform(1, 90)), dossier_id, "rated", unit_id,
                            satisfied=satisfied)  # fmt: skip
            )
        if channel == "online" and rng.random() < 0.5:
            steps.append(self._event(at + timedelta(minutes=rng.uniform(5, 120)), dossier_id, "paid_online", unit_id))
        if rng.random() < 0.6:
            steps.append(self._event(at + timedelta(hours=rng.uniform(1, 8)), dossier_id, "digitised", unit_id))
        return steps

    def messages(self, start: datetime, rng: random.Random) -> Iterator[SimMessage]:
        if not self.units:
            return
        total = sum(rate for _, rate in self.units)
        ids = [u for u, _ in self.units]
        weights = [r for _, r in self.units]
        future: list[SimMessage] = []
        for n, at in enumerate(poisson_times(start, rng, lambda t: _office_rate(t, total)), start=1):
            while future and future[0].at <= at:
                yield heapq.heappop(future)
            unit_id = rng.choices(ids, weights=weights)[0]
            dossier_id = f"H{at.astimezone(LOCAL_TZ):%y%m%d}-{unit_id}-{n:05d}"
            for step in self._life(at, dossier_id, unit_id, rng):
                heapq.heappush(future, step)


@register_feed
def dossier_feeds(context: SimulationContext) -> Iterable[DossierFeed]:
    sources = [i for i in context.district.integrations if i.kind == "dossier"]
    return [DossierFeed(context.district, context.topic_root, sources[0])] if sources else []
