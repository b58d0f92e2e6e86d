"""The simulated days include the sector feeds: every school and clinic reports on a weekday, mentions
come through the monitoring integration, and all of it follows the contract."""

from __future__ import annotations

import itertools
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

from feeds.simulator.core import SimulationContext, merge
from feeds.simulator.runner import build_feeds
from ioc.contract.schemas import model_for
from ioc.contract.sectors import ClinicDailyV1, MentionV1, SchoolAttendanceV1
from ioc.contract.topics import parse_topic
from ioc.district.loader import load_district

ROOT = Path(__file__).resolve().parent.parent
START = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)  # Monday 07:00 in Bắc Trà My


def test_a_simulated_weekday_has_every_schools_register_every_clinics_report_and_mentions() -> None:
    district = load_district(ROOT / "config" / "district.yaml")
    feeds = build_feeds(SimulationContext(district=district, topic_root="ioc/v1"))
    end = START + timedelta(hours=24)
    senders: dict[str, set[str]] = {"school": set(), "clinic": set(), "mention": set()}
    labels: Counter[str] = Counter()
    for msg in itertools.takewhile(lambda m: m.at < end, merge(feeds, START, seed=7)):
        topic = parse_topic(msg.topic)
        if topic.kind not in senders:
            continue
        payload = model_for(topic.kind, topic.channel).model_validate_json(msg.payload)  # type: ignore[union-attr]
        assert isinstance(payload, SchoolAttendanceV1 | ClinicDailyV1 | MentionV1)
        senders[topic.kind].add(topic.device_id)
        if isinstance(payload, MentionV1):
            from ioc.sentiment import analyse

            labels[analyse(payload.title).label] += 1
    assert senders["school"] == {s.id for s in district.schools}
    assert senders["clinic"] == {c.id for c in district.clinics}
    assert senders["mention"] == {"int-giam-sat-mang"}
    assert labels["neutral"] > 0 and labels["positive"] > 0 and labels["negative"] > 0, labels
