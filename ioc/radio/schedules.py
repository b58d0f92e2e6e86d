"""Programmes of the loudspeakers: weekly times in Asia/Ho_Chi_Minh, conflicts, and the week each
cluster stores.

A programme plays a recording ``repeat`` times from ``start_local`` on the listed ``days`` (all
seven: a daily programme). It may run past midnight: 23:50 for 20 minutes ends at 00:10 the next
day, and that next day may be the next week (Sunday into Monday); conflicts are found on the
weekly circle, so such a programme collides with one at 00:05 on Monday. Two programmes conflict
when they share a cluster and their plays overlap.

Each cluster gets its whole week with ``sync_schedule`` (:func:`cluster_week`) and plays it from its
own clock, so a cluster that loses its link still plays its day; :func:`starts_between` is the
same arithmetic a device (and the simulator) uses to know what is due.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import psycopg

from ioc.clock import LOCAL_TZ
from ioc.contract.radio import AudioRef, ScheduleItem

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
WEEK_S = 7 * 86_400


@dataclass(frozen=True)
class Programme:
    id: int
    title: str
    days: tuple[str, ...]
    start: time
    length_s: float
    clusters: frozenset[str]


def weekly_spans(days: Iterable[str], start: time, length_s: float) -> list[tuple[float, float]]:
    """Plays as (begin, end) seconds from Monday 00:00 local; ``end`` may pass the end of the week."""
    offset = start.hour * 3600 + start.minute * 60 + start.second
    return sorted((DAYS.index(d) * 86_400 + offset, DAYS.index(d) * 86_400 + offset + length_s) for d in set(days))


def _overlap(a: tuple[float, float], b: tuple[float, float]) -> bool:
    # On the weekly circle: compare b shifted by a week either way too (Sunday night into Monday).
    return any(a[0] < b[1] + shift and b[0] + shift < a[1] for shift in (-WEEK_S, 0, WEEK_S))


def conflicts(new: Programme, others: Iterable[Programme]) -> list[tuple[Programme, str]]:
    """The programmes that ``new`` collides with, and the first shared cluster of each."""
    spans = weekly_spans(new.days, new.start, new.length_s)
    found = []
    for other in others:
        if other.id == new.id:
            continue
        shared = sorted(new.clusters & other.clusters)
        if not shared:
            continue
        theirs = weekly_spans(other.days, other.start, other.length_s)
        if any(_overlap(a, b) for a in spans for b in theirs):
            found.append((other, shared[0]))
    return found


def starts_between(
    items: Sequence[ScheduleItem], after: datetime, until: datetime
) -> list[tuple[datetime, ScheduleItem]]:
    """Items due to start in ``(after, until]`` (aware datetimes), in order, with their start (UTC).

    Local days are walked one by one, so the day before ``after`` counts as well: an item is found
    by the day it starts on, whatever day it ends on.
    """
    found: list[tuple[datetime, ScheduleItem]] = []
    first: date = after.astimezone(LOCAL_TZ).date()
    last: date = until.astimezone(LOCAL_TZ).date()
    day = first
    while day <= last:
        weekday = DAYS[day.weekday()]
        for item in items:
            if weekday in item.days:
                at = datetime.combine(day, item.start, tzinfo=LOCAL_TZ).astimezone(UTC)
                if after < at <= until:
                    found.append((at, item))
        day += timedelta(days=1)
    return sorted(found, key=lambda pair: (pair[0], pair[1].item))


# -- storage ----------------------------------------------------------------------------------------

_PROGRAMMES = """
SELECT s.id, s.title, s.days, s.start_local, a.duration_s * s.repeat,
       ARRAY(SELECT DISTINCT c FROM (
           SELECT unnest(s.cluster_ids) AS c
           UNION SELECT d.id FROM devices d WHERE d.kind = 'radio' AND d.enabled AND d.unit_id = ANY(s.unit_ids)) t)
FROM radio_schedules s JOIN radio_audio a ON a.id = s.audio_id
WHERE s.enabled
"""


def programmes(conn: psycopg.Connection) -> list[Programme]:
    """Every enabled programme with the clusters it plays on."""
    return [Programme(r[0], r[1], tuple(r[2]), r[3], float(r[4]), frozenset(r[5])) for r in conn.execute(_PROGRAMMES)]


def clusters_of(conn: psycopg.Connection, unit_ids: Sequence[str], cluster_ids: Sequence[str]) -> set[str]:
    rows = conn.execute(
        "SELECT id FROM devices WHERE kind = 'radio' AND enabled AND (unit_id = ANY(%s) OR id = ANY(%s))",
        (list(unit_ids), list(cluster_ids)),
    ).fetchall()
    return {r[0] for r in rows}


def audio_ref(audio_id: int, sha256: str, duration_s: float) -> AudioRef:
    return AudioRef(id=audio_id, sha256=sha256, url=f"/api/radio/audio/{audio_id}/file", duration_s=duration_s)


def cluster_week(conn: psycopg.Connection, cluster_id: str) -> tuple[str, list[ScheduleItem]]:
    """The programmes ``cluster_id`` stores, and their version (a hash: equal weeks, equal versions)."""
    rows = conn.execute(
        """SELECT s.id, s.title, s.days, s.start_local, s.repeat, a.id, a.sha256, a.duration_s
           FROM radio_schedules s JOIN radio_audio a ON a.id = s.audio_id
           JOIN devices d ON d.id = %(c)s
           WHERE s.enabled AND (%(c)s = ANY(s.cluster_ids) OR d.unit_id = ANY(s.unit_ids))
           ORDER BY s.id""",
        {"c": cluster_id},
    ).fetchall()
    items = [
        ScheduleItem(
            item=f"s-{r[0]}",
            schedule_id=r[0],
            title=r[1][:200],
            days=list(r[2]),
            start=r[3],
            audio=audio_ref(r[5], r[6], float(r[7])),
            repeat=r[4],
        )  # fmt: skip
        for r in rows
    ]
    canonical = json.dumps([i.model_dump(mode="json") for i in items], sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16], items
