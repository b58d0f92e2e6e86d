"""``ioc bench alerts``: from a camera event published on MQTT to the alert on every wall screen.

One run, one machine, one JSON line. The system runs as in production, each part its own process:
a private Mosquitto (or ``IOC_MQTT_URL``), PostgreSQL (``IOC_DATABASE_URL`` or an embedded one; a
fresh database, dropped at the end), one ``ioc ingest`` worker raising alerts from
``config/alert-rules.yaml``, and ``ioc serve`` with the websocket hub. A client process holds N
websocket connections (plus ``--stalled`` ones that never read); a publisher process sends M
camera intrusion events at R per second, each a new cause, so each becomes one new alert.

Reported: publish-to-receipt latency p50/p99/max over every (alert, client) pair, messages lost
(expected N x M receipts), resyncs, the hub's memory per client (RSS growth of the ``serve``
process while the clients connect, divided by N), and in the same run the baseline: bare MQTT
publish-to-subscriber latency of the same events at the same rate (a paho subscriber in its own
process), with ``ratio_to_bare_mqtt_p99``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing as mp
import os
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

ROOT_DIR = Path(__file__).resolve().parent.parent.parent
UNIT = "bench-canh-bao"
CAMERA = "cam-bench-01"
ZONE_RE = re.compile(r"khu vực z(\d+) ")


def _event(i: int) -> bytes:
    now = datetime.now(UTC)
    body = {"v": 1, "id": f"ab-{i:07d}", "ts": now.isoformat(), "rule": "intrusion", "zone": f"z{i}",
            "object_class": "person", "score": 0.9, "data": {"sent_at": time.time()}}  # fmt: skip
    return json.dumps(body).encode()


# -- processes ---------------------------------------------------------------------------------------
def _publisher_main(url: str, topic: str, m: int, rate: float, go: Any, out: Any) -> None:
    from ingest.testing import publisher

    client = publisher(url, max_inflight=100)
    sent: list[float] = []
    go.wait()
    start = time.perf_counter()
    for i in range(m):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        sent.append(time.time())
        client.publish(topic, _event(i), qos=1)
    time.sleep(0.5)
    client.loop_stop()
    client.disconnect()
    out.put(sent)


def _bare_subscriber_main(url: str, topic: str, m: int, ready: Any, out: Any) -> None:
    import paho.mqtt.client as mqtt

    from ioc.mqtt import BrokerAddress

    address = BrokerAddress.from_url(url)
    got: dict[int, float] = {}

    def on_message(client, userdata, msg) -> None:  # noqa: ANN001
        now = time.time()
        body = json.loads(msg.payload)
        got[int(body["zone"][1:])] = now - body["data"]["sent_at"]

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.on_message = on_message
    client.on_subscribe = lambda *a: ready.set()
    client.connect(address.host, address.port)
    client.subscribe(topic, qos=1)
    client.loop_start()
    deadline = time.time() + 30 + m / 10
    while len(got) < m and time.time() < deadline:
        time.sleep(0.05)
    client.loop_stop()
    out.put(list(got.values()))


def _clients_main(ws_url: str, n: int, stalled: int, m: int, ready: Any, done: Any, out: Any) -> None:
    asyncio.run(_clients(ws_url, n, stalled, m, ready, done, out))


async def _clients(ws_url: str, n: int, stalled: int, m: int, ready: Any, done: Any, out: Any) -> None:
    from websockets.asyncio.client import connect

    receipts: list[tuple[float, int]] = []  # (receipt time, event index)
    received = [0] * n
    resyncs = 0

    async def reader(index: int, ws: Any) -> None:
        nonlocal resyncs
        async for text in ws:
            now = time.time()
            message = json.loads(text)
            for frame in message["items"] if message.get("type") == "batch" else [message]:
                if frame.get("type") == "resync":
                    resyncs += 1
                elif frame.get("type") == "event" and frame["event"]["type"] == "alert.created":
                    match = ZONE_RE.search(frame["event"]["data"].get("title", ""))
                    if match:
                        receipts.append((now, int(match.group(1))))
                        received[index] += 1
            if received[index] >= m:
                return

    connections = []
    for _ in range(n + stalled):
        ws = await connect(ws_url, max_queue=4, open_timeout=30, ping_interval=None)
        while json.loads(await ws.recv())["type"] != "snapshot_end":
            pass
        connections.append(ws)
    ready.set()
    tasks = [asyncio.create_task(reader(i, ws)) for i, ws in enumerate(connections[:n])]
    deadline = time.time() + 60 + m / 5
    while time.time() < deadline and not all(t.done() for t in tasks):
        await asyncio.sleep(0.05)
    for task in tasks:
        task.cancel()
    for ws in connections:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(ws.close(), 2)
    out.put({"receipts": receipts, "received": sum(received), "resyncs": resyncs})
    done.set()


# -- the run -------------------------------------------------------------------------------------------
def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def _wait_http(url: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    import urllib.request

    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise ConnectionError("ioc serve exited during start-up")
        with contextlib.suppress(Exception), urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310
            if response.status == 200:
                return
        time.sleep(0.2)
    raise ConnectionError(f"{url} did not become ready")


def _operator_token(db: str, port: int) -> str:
    """An operator account in the bench database, logged in through the API: its access token."""
    import urllib.request

    import psycopg

    from ioc.auth import passwords, repository

    password = secrets.token_urlsafe(16)
    with psycopg.connect(db) as conn:
        repository.create_user(conn, username="bench-operator", display_name="Bench", role="operator",
                               unit_id=None, password_hash=passwords.hash_password(password))  # fmt: skip
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/auth/login",
        data=json.dumps({"username": "bench-operator", "password": password}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - our own local server
        return json.load(response)["access_token"]


def run_bench(settings: Any, *, clients: int, rate: float, alerts: int, stalled: int = 1) -> dict[str, Any]:
    from ingest.bench import _broker, _fresh_database, _server, _Stack
    from ingest.testing import seed_devices
    from ioc.embedded.broker import free_port

    ctx = mp.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="ioc-bench-alerts-") as tmpdir, _Stack() as stack:
        tmp = Path(tmpdir)
        admin_url, db_kind = _server(settings, stack, tmp)
        broker_url, broker_kind = _broker(settings, stack, tmp, True)
        db = _fresh_database(admin_url, stack)
        seed_devices(db, UNIT, [(CAMERA, "camera")])
        root = f"bench{secrets.token_hex(2)}/v1"
        topic = f"{root}/{UNIT}/camera/{CAMERA}/event"
        port = free_port()
        env = dict(os.environ, IOC_DATABASE_URL=db, IOC_MQTT_URL=broker_url, IOC_MQTT_TOPIC_ROOT=root,
                   IOC_MQTT_SHARE_GROUP="", IOC_LOG_LEVEL="WARNING", IOC_VAR_DIR=str(tmp / "var"),
                   IOC_HTTP_PORT=str(port), IOC_SECRET_KEY=secrets.token_urlsafe(32))  # fmt: skip
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "ioc.cli.main", "serve", "--port", str(port)], cwd=ROOT_DIR, env=env
            ),  # fmt: skip
            subprocess.Popen(
                [sys.executable, "-m", "ioc.cli.main", "ingest", "--batch-size", "200"], cwd=ROOT_DIR, env=env
            ),  # fmt: skip
        ]

        def stop_all() -> None:
            for proc in procs:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
            for proc in procs:
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    proc.kill()

        stack.callback(stop_all)
        _wait_http(f"http://127.0.0.1:{port}/readyz", procs[0])
        server = psutil.Process(procs[0].pid)
        time.sleep(2)  # the ingest worker subscribes
        rss_before = server.memory_info().rss

        # Baseline: bare MQTT publish -> subscriber latency of the same events at the same rate.
        ready, out, go, sent_q = ctx.Event(), ctx.Queue(), ctx.Event(), ctx.Queue()
        bare = ctx.Process(target=_bare_subscriber_main, args=(broker_url, f"bare/{topic}", alerts, ready, out))
        bare.start()
        ready.wait(30)
        pub = ctx.Process(target=_publisher_main, args=(broker_url, f"bare/{topic}", alerts, rate, go, sent_q))
        pub.start()
        go.set()
        bare_latencies = out.get(timeout=120)
        sent_q.get(timeout=60)
        pub.join(10)
        bare.join(10)

        # The system: N websocket clients (+ stalled ones), events through ingest, alerts, hub.
        ready, done, out = ctx.Event(), ctx.Event(), ctx.Queue()
        ws_url = f"ws://127.0.0.1:{port}/ws?topics=alert&access_token={_operator_token(db, port)}"
        client_proc = ctx.Process(target=_clients_main, args=(ws_url, clients, stalled, alerts, ready, done, out))
        client_proc.start()
        if not ready.wait(120):
            raise ConnectionError("websocket clients did not connect")
        rss_after = server.memory_info().rss
        go, sent_q = ctx.Event(), ctx.Queue()
        pub = ctx.Process(target=_publisher_main, args=(broker_url, topic, alerts, rate, go, sent_q))
        pub.start()
        go.set()
        sent = sent_q.get(timeout=120)
        result = out.get(timeout=180)
        client_proc.join(10)
        pub.join(10)

    latencies = [(received - sent[index]) * 1000 for received, index in result["receipts"]]
    bare_ms = [v * 1000 for v in bare_latencies]
    p99 = _percentile(latencies, 0.99)
    bare_p99 = _percentile(bare_ms, 0.99)
    expected = clients * alerts
    return {
        "bench": "alerts",
        "clients": clients,
        "stalled_clients": stalled,
        "rate_per_s": rate,
        "alerts": alerts,
        "broker": broker_kind,
        "database": db_kind,
        "cpu_count": os.cpu_count(),
        "p50_ms": _round(_percentile(latencies, 0.5)),
        "p99_ms": _round(p99),
        "max_ms": _round(max(latencies) if latencies else None),
        "received": result["received"],
        "lost": expected - result["received"],
        "resyncs": result["resyncs"],
        "hub_rss_per_client_kb": _round((rss_after - rss_before) / 1024 / max(1, clients + stalled)),
        "bare_mqtt_p50_ms": _round(_percentile(bare_ms, 0.5)),
        "bare_mqtt_p99_ms": _round(bare_p99),
        "bare_mqtt_lost": alerts - len(bare_ms),
        "ratio_to_bare_mqtt_p99": _round(p99 / bare_p99 if p99 and bare_p99 else None, 2),
    }


def _round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)
