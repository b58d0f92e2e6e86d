"""Alerts raised by the ingest worker in the batch's transaction: a camera rule hit repeated 500
times is one alert with count 500 (redeliveries add nothing), a sensor past its level raises one,
a device going offline raises one and coming back resolves it."""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from psycopg.types.json import Jsonb

from ingest.testing import count, publisher, seed_devices, wait_for
from ingest.worker import Worker, WorkerConfig

RULES = Path(__file__).resolve().parent.parent / "config" / "alert-rules.yaml"


@pytest.fixture(scope="module")
def alert_db(database_factory: Callable[..., str]) -> str:
    return database_factory(migrated=True)


@contextmanager
def worker(db: str, broker: str, root: str) -> Iterator[Worker]:
    config = WorkerConfig(
        database_url=db, mqtt_url=broker, topic_root=root, share_group=None, session_expiry_s=0,
        client_id=f"test-alerts-{secrets.token_hex(4)}", batch_wait_s=0.02, presence_check_s=0.1,
        presence_flush_s=0.0, alert_rules=RULES,
    )  # fmt: skip
    w = Worker(config)
    thread = threading.Thread(target=w.run, daemon=True)
    thread.start()
    try:
        assert wait_for(lambda: w.subscribed, 10)
        yield w
    finally:
        w.stop()
        thread.join(15)


def _event(mid: str, **fields: object) -> bytes:
    return json.dumps({"v": 1, "id": mid, "ts": datetime.now(UTC).isoformat(), **fields}).encode()


def test_camera_rule_hits_sensor_levels_and_presence_become_alerts(alert_db: str, mqtt_url: str) -> None:
    root = f"t{secrets.token_hex(3)}/v1"
    unit = "xa-canh-bao"
    seed_devices(alert_db, unit, [("cam-al-1", "camera"), ("wl-al-1", "sensor"), ("loa-al-1", "radio")])
    with psycopg.connect(alert_db) as conn:
        conn.execute(
            "UPDATE devices SET name = 'Cầu Trà Kót', properties = %s WHERE id = 'wl-al-1'",
            (Jsonb({"levels": {"warning": 300.0, "critical": 400.0, "falling": False}}),),
        )
    client = publisher(mqtt_url)
    with worker(alert_db, mqtt_url, root):
        cam = f"{root}/{unit}/camera/cam-al-1/event"
        for i in range(500):
            payload = _event(f"hit-{i}", rule="intrusion", zone="san-truong", object_class="person", score=0.9)
            client.publish(cam, payload, qos=1)
            if i < 50:  # the same messages again, as after a crash before the ack: stored and counted once
                client.publish(cam, payload, qos=1)
        client.publish(cam, _event("motion-1", rule="motion", score=0.4), qos=1)  # no rule: no alert
        sensor = f"{root}/{unit}/sensor/wl-al-1/telemetry"
        client.publish(sensor, _event("wl-1", metrics={"water_level_cm": 120.0}), qos=1)
        client.publish(sensor, _event("wl-2", metrics={"water_level_cm": 420.0}), qos=1)
        radio = f"{root}/{unit}/radio/loa-al-1/status"
        client.publish(radio, _event("st-1", state="offline", reason="last_will"), qos=1, retain=False)

        def alert_count(kind: str) -> int:
            return count(alert_db, "SELECT coalesce(sum(count), 0) FROM alerts WHERE kind = %s AND unit_id = %s",
                         (kind, unit))  # fmt: skip

        assert wait_for(lambda: alert_count("camera.intrusion") == 500, 20), alert_count("camera.intrusion")
        assert count(alert_db, "SELECT count(*) FROM alerts WHERE kind = 'camera.intrusion' AND unit_id = %s",
                     (unit,)) == 1  # fmt: skip
        assert wait_for(lambda: alert_count("sensor.level") == 1, 10)
        assert count(alert_db, "SELECT count(*) FROM alerts WHERE kind = 'sensor.level' AND severity = 'severe'"
                     " AND title LIKE '%%Cầu Trà Kót%%'") == 1  # fmt: skip
        assert wait_for(lambda: alert_count("device.offline") == 1, 10)

        client.publish(radio, _event("st-2", state="online"), qos=1)
        assert wait_for(
            lambda: count(alert_db, "SELECT count(*) FROM alerts WHERE kind = 'device.offline' AND unit_id = %s"
                          " AND status = 'resolved'", (unit,)) == 1, 10)  # fmt: skip
    client.loop_stop()
    client.disconnect()
