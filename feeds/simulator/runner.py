"""Publish the simulated day on MQTT at the pace of a simulated clock."""

from __future__ import annotations

import logging
import signal
import threading
import time
from datetime import UTC, datetime, timedelta

from feeds.simulator.core import SimulationContext, feed_factories, merge
from ioc.settings import Settings

log = logging.getLogger("feeds.simulator")


def build_feeds(context: SimulationContext) -> list:
    # Importing the feed modules registers their factories.
    import feeds.simulator.feeds  # noqa: F401

    feeds = []
    for factory in feed_factories():
        feeds.extend(factory(context))
    return feeds


def run_simulator(settings: Settings, *, speed: float, seed: int, duration_s: float | None = None) -> int:
    """Publish until stopped (SIGINT/SIGTERM) or ``duration_s`` real seconds have passed."""
    from ioc.district.loader import load_district
    from ioc.mqtt import broker_address, connect_properties, make_client

    district = load_district(settings.district_config)
    context = SimulationContext(district=district, topic_root=settings.mqtt_topic_root)
    feeds = build_feeds(context)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    address = broker_address(settings.mqtt_url or "")
    client = make_client(address, client_id=f"ioc-simulator-{seed}")
    client.reconnect_delay_set(1, 30)
    client.max_queued_messages_set(10_000)  # while the broker is away, publications wait here
    client.connect_async(
        address.host,
        address.port,
        keepalive=30,
        clean_start=True,
        properties=connect_properties(),
    )
    client.loop_start()
    # The loudspeaker clusters are live devices (feeds/radio): they answer the radio service's commands
    # and publish their own retained status, so the scripted day's radio status is left out below.
    from feeds.radio.fleet import RadioFleet

    radios = RadioFleet.from_district(district, address, root=settings.mqtt_topic_root)
    radios.start()

    wall_start = time.monotonic()
    now = datetime.now(UTC).replace(microsecond=0)
    # Faster than real time, the simulated day starts in the past and catches up with the clock,
    # then goes on at real time: no message ever carries a time ahead of the IOC's clock.
    sim_start = now - timedelta(hours=24) if speed > 1 else now
    published = 0
    log.info("simulating %d feeds from %s at %.0fx (seed %d)", len(feeds), sim_start.isoformat(), speed, seed)
    try:
        for message in merge(feeds, sim_start, seed):
            due_wall = wall_start + (message.at - sim_start) / timedelta(seconds=1) / speed
            if duration_s is not None and due_wall - wall_start > duration_s:
                break
            not_before = (message.at - datetime.now(UTC)) / timedelta(seconds=1)
            if stop.wait(max(0.0, due_wall - time.monotonic(), not_before)):
                break
            if "/radio/" in message.topic and message.topic.endswith("/status"):
                continue
            client.publish(message.topic, message.payload, qos=message.qos, retain=message.retain)
            published += 1
            if published % 1000 == 0:
                log.info("published %d messages (simulated time %s)", published, message.at.isoformat())
    finally:
        radios.stop()
        client.loop_stop()
        client.disconnect()
        log.info("simulator stopped after %d messages", published)
    return 0
