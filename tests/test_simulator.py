"""The simulated day: every message follows the MQTT contract, feeds are in time order, a seed
gives the same day, and the day covers every kind of source."""

from __future__ import annotations

import itertools
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from feeds.simulator.core import SimulationContext, merge
from feeds.simulator.runner import build_feeds
from ioc.contract.schemas import model_for
from ioc.contract.topics import parse_topic
from ioc.district.loader import load_district

ROOT = Path(__file__).resolve().parent.parent
START = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)  # a Monday, 07:00 in Bắc Trà My


@pytest.fixture(scope="module")
def day() -> list:
    district = load_district(ROOT / "config" / "district.yaml")
    feeds = build_feeds(SimulationContext(district=district, topic_root="ioc/v1"))
    end = START + timedelta(hours=12)
    return list(itertools.takewhile(lambda m: m.at < end, merge(feeds, START, seed=7)))


def test_every_message_follows_the_contract(day: list) -> None:
    kinds: Counter[str] = Counter()
    for msg in day:
        topic = parse_topic(msg.topic)
        model = model_for(topic.kind, topic.channel)
        assert model is not None, msg.topic
        payload = model.model_validate_json(msg.payload)
        assert abs((payload.ts - msg.at).total_seconds()) < 0.01
        assert msg.qos == 1
        assert msg.retain == (topic.channel.value == "status")
        kinds[f"{topic.kind}/{topic.channel.value}"] += 1
    for expected in ("camera/status", "camera/telemetry", "camera/event", "radio/status", "radio/telemetry",
                     "sensor/telemetry", "report/event", "dossier/event"):  # fmt: skip
        assert kinds[expected] > 0, f"no {expected} in half a simulated day: {dict(kinds)}"


def test_messages_come_in_time_order_and_ids_are_unique_per_device(day: list) -> None:
    assert [m.at for m in day] == sorted(m.at for m in day)
    keys = [(parse_topic(m.topic).device_id, m.payload.split(b'"id":"')[1].split(b'"')[0]) for m in day]
    assert len(keys) == len(set(keys))


def test_same_seed_same_day_other_seed_other_day() -> None:
    district = load_district(ROOT / "config" / "district.yaml")

    def first(seed: int) -> list[bytes]:
        feeds = build_feeds(SimulationContext(district=district, topic_root="ioc/v1"))
        return [m.payload for m in itertools.islice(merge(feeds, START, seed=seed), 300)]

    assert first(1) == first(1)
    assert first(1) != first(2)


def test_a_fast_simulation_never_sends_a_time_ahead_of_the_clock(mqtt_url: str) -> None:
    import json
    import threading

    import paho.mqtt.client as mqtt

    from feeds.simulator.runner import run_simulator
    from ioc.mqtt import BrokerAddress
    from ioc.settings import Settings

    root = f"simtest{datetime.now(UTC):%H%M%S%f}/v1"
    address = BrokerAddress.from_url(mqtt_url)
    stamps: list[datetime] = []
    subscribed = threading.Event()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.on_subscribe = lambda *a: subscribed.set()
    client.on_message = lambda c, u, m: stamps.append(datetime.fromisoformat(json.loads(m.payload)["ts"]))
    client.connect(address.host, address.port)
    client.subscribe(f"{root}/#", qos=0)
    client.loop_start()
    assert subscribed.wait(10)
    settings = Settings(_env_file=None, mqtt_url=mqtt_url, mqtt_topic_root=root)  # type: ignore[call-arg]
    started = datetime.now(UTC)
    run_simulator(settings, speed=3600, seed=3, duration_s=2.0)
    client.loop_stop()
    client.disconnect()
    assert len(stamps) > 100
    assert max(stamps) <= datetime.now(UTC) + timedelta(seconds=1)
    assert min(stamps) < started - timedelta(hours=20)  # it replayed the past day
