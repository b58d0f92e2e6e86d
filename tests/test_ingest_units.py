"""Ingest building blocks: topics, the bounded buffer, acknowledgement per connection, the writer's
isolation of rows PostgreSQL refuses, the generated contract, and the bench's JSON line."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime

import psycopg
import pytest

from ingest import docgen
from ingest.testing import seed_devices
from ingest.validate import Inbound
from ingest.worker import Buffer, Worker, WorkerConfig
from ingest.writer import BatchWriter, DeadLetter
from ioc.contract.topics import Channel, TopicError, build_topic, parse_topic, subscription


def _inbound(mid: int, generation: int = 1, qos: int = 1) -> Inbound:
    return Inbound(
        b"ioc/v1/u/sensor/d/telemetry", b"{}", mid, qos, False, generation, datetime.now(UTC), time.monotonic()
    )


def test_topic_round_trip_and_subscriptions() -> None:
    topic = build_topic("tra-kot", "radio", "r-01", Channel.CMD_ACK)
    assert topic == "ioc/v1/tra-kot/radio/r-01/cmd/ack"
    parsed = parse_topic(topic)
    assert (parsed.unit_id, parsed.kind, parsed.device_id, parsed.channel) == (
        "tra-kot",
        "radio",
        "r-01",
        Channel.CMD_ACK,
    )
    assert subscription() == "$share/ioc-ingest/ioc/v1/#"
    assert subscription("x/v2", None) == "x/v2/#"
    with pytest.raises(TopicError) as info:
        parse_topic("ioc/v1/u/sensor/+/telemetry")
    assert info.value.code == "bad_topic"
    with pytest.raises(ValueError):
        subscription(share_group="a/b")


def test_full_buffer_blocks_the_reader_until_the_writer_takes_a_batch() -> None:
    buffer = Buffer(capacity=3)
    stop = threading.Event()
    for i in range(3):
        buffer.put(_inbound(i), stop)
    done = threading.Event()

    def reader() -> None:
        buffer.put(_inbound(99), stop)
        done.set()

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    assert not done.wait(0.3), "put() returned although the buffer was full"
    batch = buffer.take(2, 0.01, stop)
    assert [m.mid for m in batch] == [0, 1]
    assert done.wait(2)
    assert [m.mid for m in buffer.take(10, 0.01, stop)] == [2, 99]
    assert buffer.take(10, 0.01, stop, idle_s=0.01) == []


def test_batch_is_released_by_size_or_by_time() -> None:
    buffer = Buffer(capacity=100)
    stop = threading.Event()
    for i in range(5):
        buffer.put(_inbound(i), stop)
    started = time.monotonic()
    assert len(buffer.take(5, 10.0, stop)) == 5  # full batch: no waiting
    assert time.monotonic() - started < 1.0
    buffer.put(_inbound(7), stop)
    started = time.monotonic()
    assert len(buffer.take(5, 0.1, stop)) == 1  # one message: released after batch_wait_s
    assert 0.05 <= time.monotonic() - started < 1.0


def test_an_urgent_message_ends_the_batch_wait_and_the_rest_still_batches() -> None:
    """An event (a camera's alarm) is committed with what is queued, not after the batch window."""
    buffer = Buffer(capacity=100)
    stop = threading.Event()
    for i in range(3):
        buffer.put(_inbound(i), stop)
    threading.Timer(0.2, lambda: buffer.put(replace(_inbound(9), urgent=True), stop)).start()
    started = time.monotonic()
    batch = buffer.take(50, 10.0, stop)  # a 10 s window: only the urgent message can end it early
    assert [m.mid for m in batch] == [0, 1, 2, 9]
    assert 0.15 <= time.monotonic() - started < 2.0
    buffer.put(_inbound(10), stop)
    started = time.monotonic()
    assert [m.mid for m in buffer.take(50, 0.3, stop)] == [10]  # telemetry alone waits out the window
    assert time.monotonic() - started >= 0.25


class _FakeClient:
    def __init__(self) -> None:
        self.acked: list[int] = []

    def ack(self, mid: int, qos: int) -> None:
        self.acked.append(mid)


def test_only_messages_of_the_current_connection_are_acknowledged() -> None:
    worker = Worker(WorkerConfig(database_url="postgresql:///x", mqtt_url="mqtt://127.0.0.1:1"))
    fake = _FakeClient()
    worker.client = fake  # type: ignore[assignment]
    worker._generation = 2
    worker._ack([_inbound(1, generation=1), _inbound(2, generation=2), _inbound(3, generation=2, qos=0)])
    assert fake.acked == [2]  # mid 1 belongs to a dead connection; QoS 0 needs no ack


def test_rows_postgresql_refuses_become_dead_letters_and_the_rest_is_stored(
    database_factory: Callable[..., str],
) -> None:
    url = database_factory(migrated=True)
    seed_devices(url, "xa-w", [("w1", "sensor")])
    now = datetime.now(UTC)
    # Text that is not JSON: PostgreSQL refuses its cast to jsonb (22P02) on both backends. (A row
    # from 1999 is refused by native partitions only; the validator dead-letters it before.)
    values = [
        (now, "w1", "xa-w", "sensor", f"m{i}", "{not json" if i in (3, 7) else json.dumps({"i": i}), now)
        for i in range(10)
    ]
    writer = BatchWriter(lambda: psycopg.connect(url))

    def refused(key: int, reason: str, detail: dict) -> DeadLetter:
        return DeadLetter(now, f"t/{key}", b"raw", reason, detail)

    result, _ = writer.write({"telemetry": list(enumerate(values))}, [], refused=refused)
    assert result.inserted == {"telemetry": 8}
    assert sorted(key for key, _, _ in result.rejected) == [3, 7]
    # The same batch again (a redelivery): nothing new is stored.
    again, _ = writer.write(
        {"telemetry": [(i, v) for i, v in enumerate(values) if i not in (3, 7)]}, [], refused=refused
    )
    assert again.inserted == {"telemetry": 0}
    writer.close()
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT count(*) FROM telemetry").fetchone() == (8,)
        reasons = [r[0] for r in conn.execute("SELECT reason FROM dead_letters ORDER BY topic").fetchall()]
    assert len(reasons) == 2 and all(
        r.startswith("db_rejected: telemetry: invalid input syntax for type json") for r in reasons
    ), reasons


def test_mqtt_doc_payload_section_is_generated_from_the_models() -> None:
    assert not docgen.is_stale(), "docs/mqtt.md payload section is stale: run `python -m ingest.docgen`"
    schema = json.loads(docgen.render_schema())
    assert {"any/telemetry", "any/status", "camera/event", "dossier/event", "report/event"} <= set(schema["payloads"])


def test_bench_prints_one_flat_json_line_with_both_baselines_and_ratios(pg_admin_url: str) -> None:
    from ingest.bench import run_bench
    from ioc.settings import Settings

    settings = Settings(_env_file=None, database_url=pg_admin_url, mqtt_url=None)  # type: ignore[call-arg]
    result = run_bench(settings, messages=2000, workers=1, batch_size=500)
    line = json.dumps(result)
    assert "\n" not in line and all(not isinstance(v, dict | list) for v in result.values())
    for key in (
        "committed_msgs_per_s",
        "publish_to_commit_p50_ms",
        "publish_to_commit_p99_ms",
        "bare_subscriber_msgs_per_s",
        "copy_rows_per_s",
        "ratio_to_bare_subscriber",
        "ratio_to_copy",
    ):
        assert isinstance(result[key], float) and result[key] > 0, (key, result[key])
    assert result["lost_messages"] == 0


def test_ingest_and_bench_commands_register_on_a_typer_app() -> None:
    import typer
    from typer.testing import CliRunner

    from ioc.cli.ingest_cmd import bench_ingest, register

    app = typer.Typer()
    register(app)
    app.command("bench-ingest")(bench_ingest)
    runner = CliRunner()
    result = runner.invoke(app, ["ingest", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0 and "--worker-id" in result.output
    result = runner.invoke(app, ["bench-ingest", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0 and "--workers" in result.output and "--json" in result.output
