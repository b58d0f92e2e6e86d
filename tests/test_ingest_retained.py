"""Retained junk is dead-lettered once, not again at every ingest restart (issue #14)."""

from __future__ import annotations

import secrets
from collections.abc import Callable

from test_ingest_pipeline import _config, running_worker

from ingest.testing import count, publisher, wait_for


def test_the_same_retained_junk_is_dead_lettered_once_across_restarts(
    database_factory: Callable[..., str], mqtt_url: str
) -> None:
    db = database_factory(migrated=True)
    root = f"rr{secrets.token_hex(3)}/v1"
    client = publisher(mqtt_url)
    topics = [f"{root}/tra-kot/radio/made-up-{n}/status" for n in range(50)]
    topics.append(f"{root}/tra-kot/sensor/made-up-x/telemetry")  # retained where only status may be
    for topic in topics:
        client.publish(topic, b'{"v": 1, "junk": true}', qos=1, retain=True).wait_for_publish(5)
    sql = "SELECT count(*) FROM dead_letters WHERE source = 'mqtt' AND topic LIKE %s"
    for restart in range(3):
        with running_worker(_config(db, mqtt_url, root)):
            # A live (not retained) message after the subscription: once it is dead-lettered, the
            # retained ones the broker sent before it have been handled too.
            sentinel = f"{root}/tra-kot/radio/sentinel-{restart}/status"
            client.publish(sentinel, b"{}", qos=1).wait_for_publish(5)
            assert wait_for(lambda s=sentinel: count(db, sql, (s,)) == 1, 15)
            assert count(db, sql + " AND retained_key IS NOT NULL", (f"{root}/%",)) == len(topics)
            assert count(db, sql, (f"{root}/%",)) == len(topics) + restart + 1
    for topic in topics:  # leave the broker clean
        client.publish(topic, b"", qos=1, retain=True).wait_for_publish(5)
    client.disconnect()
