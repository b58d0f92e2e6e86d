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


def test_a_report_over_mqtt_becomes_one_routed_report_with_its_alert(database_factory, mqtt_url: str) -> None:
    from shapely.geometry import shape

    from ioc.district.bootstrap import load_district_into
    from ioc.district.loader import load_district
    from ioc.settings import Settings

    db = database_factory(migrated=True)
    config = RULES.parent / "district.yaml"
    load_district_into(db, Settings(_env_file=None, database_url=db), environ={})  # type: ignore[call-arg]
    kot = next(u for u in load_district(config).units if u.id == "tra-kot")
    point = shape(kot.polygon.model_dump()).representative_point()
    root = f"t{secrets.token_hex(3)}/v1"
    config_values = dict(
        database_url=db, mqtt_url=mqtt_url, topic_root=root, share_group=None, session_expiry_s=0,
        client_id=f"test-reports-{secrets.token_hex(4)}", batch_wait_s=0.02, presence_flush_s=0.0,
        alert_rules=RULES, district_config=config,
    )  # fmt: skip
    w = Worker(WorkerConfig(**config_values))
    thread = threading.Thread(target=w.run, daemon=True)
    thread.start()
    client = publisher(mqtt_url)
    try:
        assert wait_for(lambda: w.subscribed, 10)
        topic = f"{root}/bac-tra-my/report/int-tong-dai-1022/event"
        report = _event("hotline-000871", category="thien-tai", description="Sạt lở taluy trên ĐT616, thôn 2.",
                        lat=point.y, lon=point.x, reporter_phone="0905 111 222", consent=True)  # fmt: skip
        for _ in range(3):  # the hotline system retries: one report
            client.publish(topic, report, qos=1)
        odd = _event("hotline-000872", category="loai-moi", description="Cây đổ chắn đường vào trường.",
                     lat=point.y, lon=point.x)  # fmt: skip
        client.publish(topic, odd, qos=1)
        dossier_topic = f"{root}/bac-tra-my/dossier/int-mot-cua/event"
        resolved = _event("H-1-resolved", dossier_id="H-1", event="resolved", unit_id="tra-kot")
        received = _event("H-1-received", dossier_id="H-1", event="received", unit_id="tra-kot", channel="online",
                          due_at="2026-12-01T17:00:00+07:00")  # fmt: skip
        client.publish(dossier_topic, resolved, qos=1)  # out of order: resolved before received
        client.publish(dossier_topic, received, qos=1)
        assert wait_for(lambda: count(db, "SELECT count(*) FROM reports WHERE source = 'mqtt:int-tong-dai-1022'") == 2,
                        10)  # fmt: skip
        assert wait_for(lambda: count(db, "SELECT count(*) FROM dossiers WHERE id = 'H-1' AND status = 'resolved'"
                                          " AND channel = 'online' AND unit_id = 'tra-kot'") == 1, 10)  # fmt: skip
    finally:
        w.stop()
        thread.join(15)
        client.loop_stop()
        client.disconnect()
    with psycopg.connect(db) as conn:
        rows = conn.execute(
            "SELECT r.source_ref, r.category, r.unit_id, a.kind, a.unit_id, r.attributes FROM reports r"
            " JOIN alerts a ON a.id = r.alert_id ORDER BY r.source_ref"
        ).fetchall()
    assert rows == [
        ("hotline-000871", "thien-tai", "tra-kot", "report.new", "tra-kot", {}),
        ("hotline-000872", "khac", "tra-kot", "report.new", "tra-kot", {"sent_category": "loai-moi"}),
    ]
