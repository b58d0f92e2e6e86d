"""The ingest worker against the real broker (``mqtt_url``) and database: every feed lands, every
hostile payload becomes a dead letter with its precise reason while the valid ones around it are
stored, and presence follows Last Wills and silences."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import psycopg
import pytest

from ingest.mosquitto import MosquittoProcess, mosquitto_binary
from ingest.testing import count, publisher, seed_devices, telemetry_payload, wait_for
from ingest.worker import Worker, WorkerConfig
from ioc.clock import Clock, ManualClock, SystemClock
from ioc.mqtt import BrokerAddress


@pytest.fixture(scope="module")
def ingest_db(database_factory: Callable[..., str]) -> str:
    return database_factory(migrated=True)


@contextmanager
def running_worker(config: WorkerConfig, clock: Clock | None = None) -> Iterator[Worker]:
    worker = Worker(config, clock)
    thread = threading.Thread(target=worker.run, name="ingest-worker", daemon=True)
    thread.start()
    try:
        assert wait_for(lambda: worker.subscribed, 10), "worker did not subscribe"
        yield worker
    finally:
        worker.stop()
        thread.join(15)
        assert not thread.is_alive(), "worker did not stop"


def _config(db: str, broker: str, root: str, **overrides: object) -> WorkerConfig:
    values: dict[str, object] = {
        "database_url": db,
        "mqtt_url": broker,
        "topic_root": root,
        # rumqttd (the embedded broker) panics when a persistent *shared* subscriber disconnects with
        # unacknowledged messages: in-process tests use an exclusive subscription and no session.
        "share_group": None,
        "session_expiry_s": 0,
        "client_id": f"test-ingest-{secrets.token_hex(4)}",
        "batch_wait_s": 0.02,
        "presence_check_s": 0.1,
        "presence_flush_s": 0.0,
    }
    values.update(overrides)
    return WorkerConfig(**values)  # type: ignore[arg-type]


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _msg(mid: str, **fields: object) -> bytes:
    return json.dumps({"v": 1, "id": mid, "ts": _now(), **fields}).encode()


JPEG = b"\xff\xd8\xff\xe0" + b"\x00\x10JFIF" + bytes(200) + b"\xff\xd9"


def _corpus(root: str, unit: str, p: str) -> list[tuple[str, bytes, str, str]]:
    """(topic, payload, expected reason code, expected text in the reason)."""
    t = f"{root}/{unit}/sensor/{p}s1/telemetry"
    ts = _now()
    big = b'{"v":1,"id":"big","ts":"' + ts.encode() + b'","metrics":{"x":1},"pad":"' + b"x" * (10 * 1024 * 1024) + b'"}'
    deep = '{"v":1,"id":"deep","ts":"' + ts + '","type":"a.b","data":' + '{"a":' * 20 + "1" + "}" * 20 + "}"
    return [
        (t, b'{"v":1,"id":"trunc","ts":', "invalid_json", "EOF"),
        (t, b"", "invalid_json", "EOF"),
        (t, _msg("trail", metrics={"x": 1}) + b"garbage", "invalid_json", "trailing"),
        (t, b"[1, 2, 3]", "schema_violation", "JSON object"),
        (t, b'"just a string"', "schema_violation", "JSON object"),
        (t, b"null", "schema_violation", "JSON object"),
        (t, _msg("str-num", metrics={"x": "12.5"}), "schema_violation", "metrics.x"),
        (t, _msg("ver", metrics={"x": 1}).replace(b'"v": 1', b'"v": 2'), "unsupported_version", "supported: 1"),
        (t, json.dumps({"v": 1, "ts": ts, "metrics": {"x": 1}}).encode(), "schema_violation", "id: Field required"),
        (t, json.dumps({"v": 1, "id": "nots", "metrics": {"x": 1}}).encode(), "schema_violation", "ts: Field required"),
        (t, _msg("naive", metrics={"x": 1}).replace(ts[-6:].encode(), b""), "schema_violation", "ts"),
        (
            t,
            json.dumps({"v": 1, "id": "future", "ts": "2099-01-01T00:00:00Z", "metrics": {"x": 1}}).encode(),
            "ts_out_of_range",
            "ahead of the IOC clock",
        ),
        (
            t,
            json.dumps({"v": 1, "id": "old", "ts": "1999-01-01T00:00:00Z", "metrics": {"x": 1}}).encode(),
            "ts_out_of_range",
            "retention",
        ),
        (t, _msg("nan", metrics={"x": 0}).replace(b'"x": 0', b'"x": NaN'), "non_finite_number", "metrics.x"),
        (t, _msg("inf", metrics={"x": 0}).replace(b'"x": 0', b'"x": Infinity'), "non_finite_number", "metrics.x"),
        (t, _msg("ovf", metrics={"x": 0}).replace(b'"x": 0', b'"x": 1e400'), "non_finite_number", "metrics.x"),
        (
            f"{root}/{unit}/sensor/{p}s1/event",
            _msg("ninf", type="threshold.exceeded", data={"x": 0}).replace(b'"x": 0', b'"x": -Infinity'),
            "non_finite_number",
            "data",
        ),
        (t, b'{"v":1,"id":"u\xff\xfe","ts":"' + ts.encode() + b'"}', "invalid_utf8", "offset 14"),
        (t, b'{"v":1,"id":"sur\xed\xa0\x80"}', "invalid_utf8", "0xed"),
        (t, _msg("nul", metrics={"x": 1}, seq=1).replace(b'"seq": 1', b'"note": "a\\u0000b"'), "nul_character", ""),
        (t, big, "payload_too_large", "16384-byte limit"),
        (t, _msg("17k", metrics={f"m{i}": 1.0 for i in range(128)}) + b" " * 17000, "payload_too_large", "16384"),
        (f"{root}/{unit}/sensor/{p}ghost/telemetry", _msg("g", metrics={"x": 1}), "unknown_device", "ghost"),
        (f"{root}/other-unit/sensor/{p}s1/telemetry", _msg("um", metrics={"x": 1}), "unit_mismatch", "other-unit"),
        (f"{root}/{unit}/radio/{p}s1/telemetry", _msg("km", metrics={"x": 1}), "kind_mismatch", "'radio'"),
        (f"{root}/{unit}/sensor/{p}off/telemetry", _msg("dis", metrics={"x": 1}), "device_disabled", "disabled"),
        (f"{root}/{unit}/sensor/{p}s1/bogus", _msg("ch", metrics={"x": 1}), "unknown_channel", "bogus"),
        (f"{root}/{unit}/sensor/{p}s1/telemetry/extra", _msg("ch2", metrics={"x": 1}), "unknown_channel", "extra"),
        (f"{root}/{unit}/sensor/{p}s1';DROP TABLE devices;--/telemetry", _msg("inj"), "bad_topic", "device_id"),
        (f"{root}/{unit}/sensor/{p}s 1/telemetry", _msg("sp"), "bad_topic", "device_id"),
        (f"{root}/{unit}/sensor/{p}s1\u202egnp.exe/telemetry", _msg("rtl"), "bad_topic", "device_id"),
        (f"{root}/{unit}/../{p}s1/telemetry", _msg("dots"), "bad_topic", "kind"),
        (f"{root}/{unit}/sensor", _msg("short"), "bad_topic", "segments"),
        (f"{root}/{unit}/sensor/{p}s1/$SYS", _msg("sys"), "unknown_channel", "$SYS"),
        (t, _msg("extra", metrics={"x": 1}, evil=True), "schema_violation", "evil"),
        (t, _msg("empty", metrics={}), "schema_violation", "metrics"),
        (t, _msg("Upper", metrics={"X": 1.0}), "schema_violation", "metrics"),
        (t, _msg("bigint", metrics={"x": 1}, seq=2**64), "schema_violation", "seq"),
        (t, _msg("bad id with spaces", metrics={"x": 1}), "schema_violation", "id"),
        (f"{root}/{unit}/sensor/{p}s1/event", deep.encode(), "schema_violation", "nested deeper"),
        (f"{root}/{unit}/sensor/{p}s1/status", _msg("st", state="maybe"), "schema_violation", "state"),
        (
            f"{root}/{unit}/camera/{p}cam1/event",
            _msg("bbox", rule="intrusion", bbox=[0.5, 0.5, 0.2, 1.7]),
            "schema_violation",
            "bbox",
        ),
        (f"{root}/{unit}/camera/{p}cam1/event", _msg("rule", rule="alien"), "schema_violation", "rule"),
        (
            f"{root}/{unit}/dossier/{p}mc1/event",
            _msg("dz", dossier_id="H1-1", event="received", unit_id="atlantis"),
            "unknown_unit",
            "atlantis",
        ),
        (f"{root}/{unit}/camera/{p}cam1/snapshot", b"GIF89a not a jpeg", "not_jpeg", "JPEG"),
        (t, b"\xef\xbb\xbf" + _msg("bom", metrics={"x": 1}), "invalid_json", ""),
    ]


def _valid(root: str, unit: str, p: str) -> list[tuple[str, bytes, str]]:
    """One valid message per feed: (topic, payload, table)."""
    return [
        (
            f"{root}/{unit}/camera/{p}cam1/event",
            _msg("cam-ok", rule="tamper", score=0.9, bbox=[0.1, 0.1, 0.5, 0.6], zone="gate"),
            "camera_events",
        ),
        (f"{root}/{unit}/camera/{p}cam1/snapshot", JPEG, "device_events"),
        (
            f"{root}/{unit}/radio/{p}r1/status",
            _msg("r-st", state="online", info={"firmware": "2.4.1", "volume": 70}),
            "device_events",
        ),
        (f"{root}/{unit}/radio/{p}r1/telemetry", _msg("r-tm", metrics={"signal_dbm": -71.0}), "telemetry"),
        (f"{root}/{unit}/radio/{p}r1/event", _msg("r-ev", type="playback.finished", data={"id": 4}), "device_events"),
        (f"{root}/{unit}/radio/{p}r1/cmd/ack", _msg("r-ack", correlation_id="c-1", accepted=True), "device_events"),
        (
            f"{root}/{unit}/report/{p}app1/event",
            _msg("rep-1", category="road_damage", description="Sạt lở taluy trên ĐT616", lat=15.27, lon=108.14),
            "device_events",
        ),
        (
            f"{root}/{unit}/dossier/{p}mc1/event",
            _msg("ds-1", dossier_id="H12.34-1", event="received", channel="online"),
            "dossier_events",
        ),
    ]


@pytest.fixture(scope="module")
def district(ingest_db: str) -> tuple[str, str]:
    p = f"t{secrets.token_hex(3)}-"
    unit = f"{p}xa"
    seed_devices(
        ingest_db,
        unit,
        [(f"{p}s1", "sensor"), (f"{p}cam1", "camera"), (f"{p}r1", "radio"), (f"{p}app1", "report"),
         (f"{p}mc1", "dossier")],
    )  # fmt: skip
    seed_devices(ingest_db, unit, [(f"{p}off", "sensor")], enabled=False)
    return p, unit


def test_hostile_corpus_is_dead_lettered_with_reasons_and_valid_messages_around_it_are_stored(
    ingest_db: str, mqtt_url: str, district: tuple[str, str]
) -> None:
    p, unit = district
    root = f"{p}ioc/v1"
    corpus = _corpus(root, unit, p)
    assert len(corpus) >= 30
    valid = _valid(root, unit, p)
    before_dead = count(ingest_db, "SELECT count(*) FROM dead_letters")
    with running_worker(_config(ingest_db, mqtt_url, root)):
        pub = publisher(mqtt_url)
        try:
            for i, (topic, payload, _, _) in enumerate(corpus):
                pub.publish(f"{root}/{unit}/sensor/{p}s1/telemetry", telemetry_payload(f"ok-{i}", datetime.now(UTC)), 1)
                pub.publish(topic, payload, qos=1).wait_for_publish(10)
            for topic, payload, _ in valid:
                pub.publish(topic, payload, qos=1).wait_for_publish(10)
        finally:
            pub.disconnect()
            pub.loop_stop()
        expected_dead = before_dead + len(corpus)
        assert wait_for(lambda: count(ingest_db, "SELECT count(*) FROM dead_letters") >= expected_dead, 20)
        assert wait_for(
            lambda: count(ingest_db, "SELECT count(*) FROM telemetry WHERE device_id = %s", (f"{p}s1",)) == len(corpus),
            10,
        )
        assert wait_for(lambda: count(ingest_db, "SELECT count(*) FROM dossier_events WHERE unit_id = %s", (unit,)), 10)

    with psycopg.connect(ingest_db) as conn:
        rows = conn.execute(
            "SELECT topic, payload, reason, detail FROM dead_letters WHERE id > 0 ORDER BY id"
        ).fetchall()[before_dead:]
        letters = {(topic, bytes(payload)): (reason, detail) for topic, payload, reason, detail in rows}
        assert len(rows) == len(corpus), [r[2] for r in rows]
        for topic, payload, code, text in corpus:
            key_topic = topic  # stored as received
            if len(payload) > 256 * 1024:
                found = [v for (t, pl), v in letters.items() if t == key_topic and pl == payload[: 64 * 1024]]
                assert found, f"no dead letter for the {len(payload)}-byte payload"
                reason, detail = found[0]
                assert detail["bytes"] == len(payload) and detail["truncated"] is True
            else:
                assert (key_topic, payload) in letters, f"no dead letter for {topic!r} {payload[:60]!r}"
                reason, detail = letters[(key_topic, payload)]
            assert reason.startswith(code + ": "), (code, reason)
            assert text in reason, (text, reason)
            assert detail["code"] == code

        # Every feed landed in its table.
        for table, column in (("camera_events", "camera_id"), ("dossier_events", "unit_id")):
            wanted = f"{p}cam1" if table == "camera_events" else unit
            assert conn.execute(f"SELECT count(*) FROM {table} WHERE {column} = %s", (wanted,)).fetchone() == (1,)
        types = dict(
            conn.execute(
                "SELECT event_type, count(*) FROM device_events WHERE unit_id = %s "
                "AND event_type NOT LIKE 'presence.%%' GROUP BY 1",
                (unit,),
            ).fetchall()
        )
        assert types == {"snapshot": 1, "status": 1, "playback.finished": 1, "cmd.ack": 1, "report.submitted": 1}
        status = conn.execute("SELECT state, status FROM device_presence WHERE device_id = %s", (f"{p}r1",)).fetchone()
        assert status == ("online", {"firmware": "2.4.1", "volume": 70})


def _device(url: str, client_id: str, will_topic: str, will_payload: bytes) -> mqtt.Client:
    address = BrokerAddress.from_url(url)
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    client.will_set(will_topic, will_payload, qos=1, retain=True)
    client.connect(address.host, address.port, keepalive=30)
    client.loop_start()
    assert wait_for(client.is_connected, 5)
    return client


def _presence(url: str, device_id: str) -> str | None:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT state FROM device_presence WHERE device_id = %s", (device_id,)).fetchone()
        return row[0] if row else None


def test_device_whose_last_will_fires_is_offline_within_two_seconds(
    ingest_db: str, mqtt_url: str, district: tuple[str, str]
) -> None:
    p, unit = district
    root = f"{p}lwt/v1"
    device_id = f"{p}r1"
    status_topic = f"{root}/{unit}/radio/{device_id}/status"
    will = _msg("lwt-1", state="offline", reason="last_will")
    with running_worker(_config(ingest_db, mqtt_url, root)):
        device = _device(mqtt_url, f"dev-{device_id}", status_topic, will)
        device.publish(status_topic, _msg("online-1", state="online"), qos=1, retain=True).wait_for_publish(5)
        assert wait_for(lambda: _presence(ingest_db, device_id) == "online", 5)
        # The device drops off without a DISCONNECT: the broker publishes its Last Will.
        device.loop_stop()
        sock = device.socket()
        assert sock is not None
        dropped_at = time.monotonic()
        sock.close()
        assert wait_for(lambda: _presence(ingest_db, device_id) == "offline", 2.0, 0.02), "not offline within 2 s"
        assert time.monotonic() - dropped_at < 2.0
    with psycopg.connect(ingest_db) as conn:
        reason = conn.execute("SELECT reason FROM device_presence WHERE device_id = %s", (device_id,)).fetchone()
        assert reason == ("last_will",)
        events = conn.execute(
            "SELECT payload->>'reason' FROM device_events WHERE device_id = %s AND event_type = 'presence.offline'",
            (device_id,),
        ).fetchall()
        assert ("last_will",) in events


def test_silent_device_goes_offline_after_its_interval_on_the_injected_clock(
    ingest_db: str, mqtt_url: str, district: tuple[str, str]
) -> None:
    p, unit = district
    root = f"{p}silent/v1"
    quiet, chatty = f"{p}q1", f"{p}q2"
    seed_devices(ingest_db, unit, [(quiet, "sensor"), (chatty, "sensor")], expected_interval_s=600)
    clock = ManualClock(datetime.now(UTC))

    def send(device_id: str, mid: str) -> None:
        topic = f"{root}/{unit}/sensor/{device_id}/telemetry"
        pub.publish(topic, telemetry_payload(mid, clock.now()), qos=1).wait_for_publish(5)

    with running_worker(_config(ingest_db, mqtt_url, root), clock):
        pub = publisher(mqtt_url)
        try:
            send(quiet, "a1")
            send(chatty, "b1")
            assert wait_for(lambda: _presence(ingest_db, quiet) == _presence(ingest_db, chatty) == "online", 5)
            clock.advance(timedelta(seconds=400))
            send(chatty, "b2")
            assert wait_for(
                lambda: count(ingest_db, "SELECT count(*) FROM telemetry WHERE device_id = %s", (chatty,)) == 2, 5
            )
            time.sleep(0.3)  # several presence checks at +400 s: nobody is overdue yet
            assert _presence(ingest_db, quiet) == "online"
            clock.advance(timedelta(seconds=201))  # quiet: 601 s silent; chatty: 201 s
            assert wait_for(lambda: _presence(ingest_db, quiet) == "offline", 3)
            time.sleep(0.3)
            assert _presence(ingest_db, chatty) == "online"
            # It speaks again: online again.
            send(quiet, "a2")
            assert wait_for(lambda: _presence(ingest_db, quiet) == "online", 5)
        finally:
            pub.disconnect()
            pub.loop_stop()
    with psycopg.connect(ingest_db) as conn:
        events = conn.execute(
            "SELECT event_type, payload->>'reason' FROM device_events WHERE device_id = %s "
            "AND event_type LIKE 'presence.%%' ORDER BY time, received_at",
            (quiet,),
        ).fetchall()
        assert events == [
            ("presence.online", "message"),
            ("presence.offline", "silent"),
            ("presence.online", "message"),
        ]


def test_system_clock_is_the_default(ingest_db: str, mqtt_url: str) -> None:
    worker = Worker(_config(ingest_db, mqtt_url, "x/v1"))
    assert isinstance(worker.clock, SystemClock)


def _doc_example() -> str:
    text = (Path(__file__).resolve().parent.parent / "docs" / "mqtt.md").read_text(encoding="utf-8")
    section = text.split("## Try it with `mosquitto_pub`", 1)[1]
    return section.split("```sh\n", 1)[1].split("```", 1)[0]


@pytest.mark.skipif(
    not (shutil.which("mosquitto_pub") and shutil.which("mosquitto_sub") and mosquitto_binary()),
    reason="needs mosquitto, mosquitto_pub and mosquitto_sub (apt-get install mosquitto mosquitto-clients)",
)
def test_mosquitto_pub_examples_of_the_contract_run_as_written_and_are_stored(
    database_factory: Callable[..., str], tmp_path: Path
) -> None:
    db = database_factory(migrated=True)
    seed_devices(db, "tra-my", [("sensor-tra-my-bridge-water", "sensor"), ("radio-tra-my-1", "radio"),
                                ("cam-tra-my-centre-01", "camera")])  # fmt: skip
    seed_devices(db, "bac-tra-my", [("int-phan-anh", "report"), ("int-mot-cua", "dossier")])
    (tmp_path / "frame.jpg").write_bytes(JPEG)
    broker = MosquittoProcess(tmp_path / "mosquitto").start()
    try:
        with running_worker(_config(db, broker.url, "ioc/v1", share_group="ioc-ingest")):
            env = dict(os.environ, H="127.0.0.1", P=str(broker.port))
            run = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", _doc_example()],
                cwd=tmp_path,
                env=env,
                capture_output=True,
                timeout=30,
            )
            assert run.returncode == 0, run.stderr.decode()
            assert wait_for(lambda: count(db, "SELECT count(*) FROM device_events WHERE event_type = 'snapshot'"), 5)
            assert wait_for(lambda: _presence(db, "radio-tra-my-1") == "offline", 5)
    finally:
        broker.stop()
    with psycopg.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM dead_letters").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM telemetry").fetchone() == (1,)
        assert conn.execute("SELECT count(*) FROM camera_events").fetchone() == (1,)
        assert conn.execute("SELECT count(*) FROM dossier_events").fetchone() == (1,)
        types = {r[0] for r in conn.execute("SELECT event_type FROM device_events").fetchall()}
        assert {"status", "report.submitted", "snapshot", "presence.offline"} <= types
