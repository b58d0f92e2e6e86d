"""Helpers shared by the ingest tests and the bench: seed units/devices, publish, wait for rows."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from datetime import datetime

import paho.mqtt.client as mqtt
import psycopg

from ioc.mqtt import BrokerAddress


def seed_devices(
    url: str, unit_id: str, devices: Iterable[tuple[str, str]], *, expected_interval_s: int = 300, enabled: bool = True
) -> None:
    """Insert a unit and ``(device_id, kind)`` devices (idempotent)."""
    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO units (id, name, name_search, level) VALUES (%s, %s, %s, 'commune') "
            "ON CONFLICT (id) DO NOTHING",
            (unit_id, unit_id, unit_id),
        )
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO devices (id, kind, unit_id, name, expected_interval_s, enabled) "
                "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO NOTHING",
                [(d, k, unit_id, d, expected_interval_s, enabled) for d, k in devices],
            )


def publisher(url: str, client_id: str = "", *, max_inflight: int = 1000) -> mqtt.Client:
    """A connected MQTT 5 client with its network loop running."""
    address = BrokerAddress.from_url(url)
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    if address.username:
        client.username_pw_set(address.username, address.password)
    client.max_inflight_messages_set(max_inflight)
    client.max_queued_messages_set(0)
    client.connect(address.host, address.port, keepalive=30)
    client.loop_start()
    deadline = time.monotonic() + 10
    while not client.is_connected():
        if time.monotonic() > deadline:
            raise TimeoutError(f"could not connect to {url}")
        time.sleep(0.01)
    return client


def telemetry_payload(message_id: str, ts: datetime, value: float = 1.0, pad: int = 0) -> bytes:
    body = {"v": 1, "id": message_id, "ts": ts.isoformat(), "metrics": {"water_level_cm": value}}
    if pad:
        body["metrics"].update({f"m{i:02d}": float(i) for i in range(pad)})
    return json.dumps(body).encode()


def wait_for(predicate: Callable[[], bool], timeout_s: float, interval_s: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval_s)
    return predicate()


def count(url: str, sql: str, params: tuple = ()) -> int:
    with psycopg.connect(url, autocommit=True, connect_timeout=3) as conn:
        row = conn.execute(sql, params).fetchone()
        return int(row[0]) if row else 0
