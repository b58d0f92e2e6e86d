"""Fault injection: nothing accepted is lost or stored twice when the worker is SIGKILLed, when the
database goes away for 5 s, or when the broker restarts.

These tests start their own Mosquitto (unlimited queue, as config/mosquitto/ioc.conf): the
machine's Debian default drops messages beyond 1000 queued per client, and the embedded rumqttd
panics when a persistent *shared* subscriber dies holding unacknowledged messages (see
docs/broker.md). Without the ``mosquitto`` binary they are skipped.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from ingest.mosquitto import MosquittoProcess, mosquitto_binary
from ingest.testing import count, publisher, seed_devices, telemetry_payload, wait_for
from ingest.worker import Worker, WorkerConfig
from ioc.embedded.postgres import EmbeddedPostgres
from ioc.storage.migrate import migrate

ROOT = Path(__file__).resolve().parent.parent
DEVICES = 20

needs_mosquitto = pytest.mark.skipif(
    mosquitto_binary() is None,
    reason="needs the mosquitto binary (apt-get install mosquitto): the embedded rumqttd panics when a "
    "persistent shared subscriber is killed holding unacknowledged messages",
)


@pytest.fixture()
def mosquitto(tmp_path: Path) -> Iterator[MosquittoProcess]:
    if mosquitto_binary() is None:
        pytest.skip("mosquitto binary not installed")
    broker = MosquittoProcess(tmp_path / "mosquitto", persistence=True).start()
    try:
        yield broker
    finally:
        broker.stop()


def _prepare(url: str) -> tuple[str, str, list[str]]:
    p = f"f{secrets.token_hex(3)}-"
    unit = f"{p}xa"
    devices = [f"{p}s{i}" for i in range(DEVICES)]
    seed_devices(url, unit, [(d, "sensor") for d in devices])
    return f"{p}ioc/v1", unit, devices


def _publish(broker_url: str, root: str, unit: str, devices: list[str], n: int, rate: float = 0.0) -> None:
    """n QoS 1 telemetry messages, round-robin over devices, each acknowledged by the broker."""
    pub = publisher(broker_url, max_inflight=1000)
    ts = datetime.now(UTC)
    try:
        infos = []
        started = time.monotonic()
        for i in range(n):
            device = devices[i % len(devices)]
            topic = f"{root}/{unit}/sensor/{device}/telemetry"
            infos.append(pub.publish(topic, telemetry_payload(f"m{i:06d}", ts, float(i), pad=8), qos=1))
            if rate and i % 50 == 0:
                ahead = started + i / rate - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
        for info in infos:
            info.wait_for_publish(60)
    finally:
        pub.disconnect()
        pub.loop_stop()


def _stored(url: str, unit: str) -> int:
    try:
        return count(url, "SELECT count(*) FROM telemetry WHERE unit_id = %s", (unit,))
    except psycopg.OperationalError:
        return -1


def _assert_exactly_once(url: str, unit: str, n: int) -> None:
    with psycopg.connect(url) as conn:
        total, distinct = conn.execute(
            "SELECT count(*), count(DISTINCT message_id) FROM telemetry WHERE unit_id = %s", (unit,)
        ).fetchone()
        dead = conn.execute("SELECT count(*) FROM dead_letters WHERE topic LIKE %s", (f"%/{unit}/%",)).fetchone()[0]
    assert (total, distinct, dead) == (n, n, 0)


def _spawn_worker(db: str, broker: str, root: str, client_id: str, ready: Path) -> subprocess.Popen:
    ready.unlink(missing_ok=True)
    env = dict(
        os.environ,
        IOC_DATABASE_URL=db,
        IOC_MQTT_URL=broker,
        IOC_MQTT_TOPIC_ROOT=root,
        IOC_MQTT_SHARE_GROUP="ioc-ingest",
        IOC_LOG_LEVEL="WARNING",
    )
    cmd = [sys.executable, "-m", "ingest", "--client-id", client_id, "--ready-file", str(ready), "--batch-size", "500"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env)
    assert wait_for(lambda: ready.exists() or proc.poll() is not None, 30), "worker did not subscribe"
    assert proc.poll() is None, f"worker exited with {proc.returncode}"
    return proc


@needs_mosquitto
def test_20000_messages_with_the_worker_sigkilled_twice_are_stored_exactly_once(
    database_factory: Callable[..., str], mosquitto: MosquittoProcess, tmp_path: Path
) -> None:
    n = 20_000
    db = database_factory(migrated=True)
    root, unit, devices = _prepare(db)
    client_id = f"ioc-ingest-test-{secrets.token_hex(3)}"
    ready = tmp_path / "ready"
    worker = _spawn_worker(db, mosquitto.url, root, client_id, ready)
    publishing = threading.Thread(target=_publish, args=(mosquitto.url, root, unit, devices, n, 8000.0))
    publishing.start()
    kills = []
    try:
        for threshold in (4_000, 11_000):
            assert wait_for(lambda t=threshold: _stored(db, unit) >= t, 60, 0.01), f"stuck below {threshold}"
            worker.send_signal(signal.SIGKILL)
            worker.wait(10)
            kills.append(_stored(db, unit))
            worker = _spawn_worker(db, mosquitto.url, root, client_id, ready)
        publishing.join(120)
        assert not publishing.is_alive()
        assert wait_for(lambda: _stored(db, unit) >= n, 60, 0.1), f"only {_stored(db, unit)} of {n} stored"
        time.sleep(0.5)  # a late duplicate would show now
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            assert worker.wait(20) == 0
        finally:
            if worker.poll() is None:
                worker.kill()
    assert all(k < n for k in kills), f"the kills came too late to matter: {kills}"
    _assert_exactly_once(db, unit, n)


@pytest.fixture()
def own_postgres(tmp_path: Path) -> Iterator[EmbeddedPostgres]:
    server = EmbeddedPostgres(tmp_path / "pg" / "data").start()
    try:
        yield server
    finally:
        server.stop()


def test_database_stopped_for_5_s_mid_stream_loses_and_duplicates_nothing(
    own_postgres: EmbeddedPostgres, mqtt_url: str, tmp_path: Path
) -> None:
    n = 6_000
    db = own_postgres.ensure_database(f"ingest_{secrets.token_hex(3)}")
    migrate(db)
    root, unit, devices = _prepare(db)
    broker = mqtt_url
    own_broker = None
    if mosquitto_binary() is not None:  # the same test on the production-like broker when there is one
        own_broker = MosquittoProcess(tmp_path / "mosquitto").start()
        broker = own_broker.url
    config = WorkerConfig(
        database_url=db,
        mqtt_url=broker,
        topic_root=root,
        share_group="ioc-ingest" if own_broker else None,
        client_id=f"ioc-ingest-test-{secrets.token_hex(3)}",
        batch_size=200,
        buffer_size=1000,
        db_backoff_max_s=1.0,
    )
    worker = Worker(config)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        assert wait_for(lambda: worker.subscribed, 10)
        publishing = threading.Thread(target=_publish, args=(broker, root, unit, devices, n, 1000.0))
        publishing.start()
        assert wait_for(lambda: _stored(db, unit) >= 1000, 20, 0.01)
        own_postgres.stop()
        stopped_at = time.monotonic()
        time.sleep(0.5)
        assert _stored(db, unit) == -1, "the database is still answering"
        buffered_during_outage = len(worker.buffer)
        time.sleep(max(0.0, 5.0 - (time.monotonic() - stopped_at)))
        own_postgres.restart()
        publishing.join(60)
        assert wait_for(lambda: _stored(db, unit) >= n, 30, 0.1), f"only {_stored(db, unit)} of {n} stored"
        time.sleep(0.3)
    finally:
        worker.stop()
        thread.join(20)
        if own_broker is not None:
            own_broker.stop()
    assert buffered_during_outage <= config.buffer_size
    _assert_exactly_once(db, unit, n)


@needs_mosquitto
@pytest.mark.parametrize("share_group", ["ioc-ingest", None], ids=["shared", "exclusive"])
def test_broker_restart_resumes_the_session_and_loses_nothing(
    database_factory: Callable[..., str], tmp_path: Path, share_group: str | None
) -> None:
    n = 4_000
    db = database_factory(migrated=True)
    root, unit, devices = _prepare(db)
    broker = MosquittoProcess(tmp_path / "mosquitto", persistence=True).start()
    config = WorkerConfig(
        database_url=db,
        mqtt_url=broker.url,
        topic_root=root,
        share_group=share_group,
        client_id=f"ioc-ingest-test-{secrets.token_hex(3)}",
        batch_size=200,
    )
    worker = Worker(config)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        assert wait_for(lambda: worker.subscribed, 10)
        _publish(broker.url, root, unit, devices, n // 2)
        broker.stop()  # SIGTERM: Mosquitto saves its persistence file, sessions included
        broker.start()
        if share_group:
            # Mosquitto 2.0 does not restore *shared* subscriptions from its persistence file (exclusive
            # ones it does): until the worker has subscribed again, the group has no member and what is
            # published goes nowhere. See docs/broker.md.
            assert wait_for(lambda: worker.subscriptions >= 2, 15)
        _publish(broker.url, root, unit, devices[::-1], n // 2)  # ids m000000.. again on other devices
        assert wait_for(lambda: _stored(db, unit) >= n, 30, 0.1), f"only {_stored(db, unit)} of {n} stored"
        time.sleep(0.3)
    finally:
        worker.stop()
        thread.join(20)
        broker.stop()
    with psycopg.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM telemetry WHERE unit_id = %s", (unit,)).fetchone() == (n,)


@needs_mosquitto
def test_sigterm_finishes_the_batch_and_acknowledges_exactly_what_was_stored(
    database_factory: Callable[..., str], mosquitto: MosquittoProcess, tmp_path: Path
) -> None:
    import paho.mqtt.client as mqtt
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    n = 3_000
    db = database_factory(migrated=True)
    root, unit, devices = _prepare(db)
    client_id = f"ioc-ingest-test-{secrets.token_hex(3)}"
    env = dict(
        os.environ,
        IOC_DATABASE_URL=db,
        IOC_MQTT_URL=mosquitto.url,
        IOC_MQTT_TOPIC_ROOT=root,
        IOC_MQTT_SHARE_GROUP="",
        IOC_LOG_LEVEL="WARNING",
    )
    ready = tmp_path / "ready"
    cmd = [sys.executable, "-m", "ingest", "--client-id", client_id, "--ready-file", str(ready), "--batch-size", "200"]
    worker = subprocess.Popen(cmd, cwd=ROOT, env=env)
    try:
        assert wait_for(lambda: ready.exists() or worker.poll() is not None, 30)
        publishing = threading.Thread(target=_publish, args=(mosquitto.url, root, unit, devices, n, 2000.0))
        publishing.start()
        assert wait_for(lambda: _stored(db, unit) >= 1000, 30, 0.01)
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(20) == 0
        publishing.join(30)
    finally:
        if worker.poll() is None:
            worker.kill()
    stored = _stored(db, unit)
    assert 1000 <= stored < n

    # The worker's session, resumed by a plain client: everything not stored comes back (queued or
    # redelivered); nothing stored does (it was acknowledged before the worker left).
    received: set[bytes] = set()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    client.on_message = lambda c, u, msg: received.add(msg.payload)
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 60
    client.connect("127.0.0.1", mosquitto.port, clean_start=False, properties=props)
    client.loop_start()
    try:
        wait_for(lambda: len(received) >= n - stored, 10)
        time.sleep(0.5)  # anything more would be a stored message coming back
    finally:
        client.disconnect()
        client.loop_stop()
    with psycopg.connect(db) as conn:
        stored_ids = {r[0] for r in conn.execute("SELECT message_id FROM telemetry WHERE unit_id = %s", (unit,))}
    redelivered_ids = {json.loads(p)["id"] for p in received}
    stored_and_redelivered = sorted(redelivered_ids & stored_ids)
    assert not stored_and_redelivered, f"{len(stored_and_redelivered)} stored messages were not acknowledged"
    assert len(received) == n - stored
