"""``ioc bench ingest``: end-to-end ingest throughput and latency, with its two baselines.

One run, one machine, one JSON line:

* **(b) COPY baseline** - the same N telemetry rows written with binary COPY straight into
  ``telemetry``, no MQTT: what the database can take (``copy_rows_per_s``).
* **(a) bare subscriber baseline** - a separate publisher process sends the N QoS 1 messages
  (~300 bytes) while a bare paho-mqtt subscriber (its own process, MQTT 5, QoS 1, automatic
  PUBACK) only counts them: what the broker and the Python client can move
  (``bare_subscriber_msgs_per_s``).
* **end to end** - the same publisher sends N fresh messages to K ``ioc ingest`` worker processes
  (shared subscription): ``committed_msgs_per_s`` is N over the time from the first publish to the
  last commit; every commit is traced, so ``publish_to_commit_p50_ms`` / ``_p99_ms`` are
  per-message times from the publisher's clock to the commit (same machine, same clock).

Both rates are measured the same way: from the publisher's first message to the last message
counted (a) or committed (end to end). ``ratio_to_bare_subscriber`` and ``ratio_to_copy`` divide
the end-to-end rate by each baseline.

The bench uses a fresh database on the configured server (``IOC_DATABASE_URL``; an embedded
PostgreSQL in a temporary directory when unset), dropped at the end, and a private Mosquitto
(unlimited queues; see docs/broker.md) unless ``IOC_MQTT_URL`` is set.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing as mp
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

DEVICES = 50
WINDOW = 500  # publisher: unacknowledged messages at most
UNIT = "bench-xa"
ROOT_DIR = Path(__file__).resolve().parent.parent


# -- payloads ------------------------------------------------------------------------------------
def payload(i: int, ts: datetime) -> bytes:
    """A ~300-byte telemetry message of a water-level station."""
    body = {
        "v": 1,
        "id": f"b-{i:08d}",
        "ts": ts.isoformat(),
        "seq": i,
        "metrics": {
            "water_level_cm": 182.5 + (i % 100) / 10,
            "rain_mm_1h": 12.0,
            "rain_mm_24h": 88.4,
            "battery_pct": 87.0,
            "solar_v": 13.8,
            "temperature_c": 24.6,
            "humidity_pct": 91.0,
            "signal_dbm": -71.0,
            "flow_m3s": 3.25,
            "gauge_error": 0.0,
        },
    }
    return json.dumps(body, separators=(",", ":")).encode()


def device_of(i: int) -> str:
    return f"bench-s{i % DEVICES:03d}"


def topic_of(root: str, i: int) -> str:
    return f"{root}/{UNIT}/sensor/{device_of(i)}/telemetry"


# -- child processes (spawned: no threads or sockets inherited) -----------------------------------
def _client(url: str, client_id: str = ""):  # noqa: ANN202 - paho client
    import paho.mqtt.client as mqtt

    from ioc.mqtt import BrokerAddress

    address = BrokerAddress.from_url(url)
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    if address.username:
        client.username_pw_set(address.username, address.password)
    return client, address


def _publisher_main(url: str, root: str, n: int, offset: int, rate: float, go: Any, out: Any) -> None:
    client, address = _client(url)
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect(address.host, address.port, keepalive=60)
    client.loop_start()
    while not client.is_connected():
        time.sleep(0.01)
    acked = [0]

    def on_publish(*args: Any) -> None:
        acked[0] += 1

    client.on_publish = on_publish
    go.wait()
    started = time.time()
    infos = []
    for k in range(n):
        # Keep at most WINDOW messages unacknowledged, so that a message's ts (its publish time) is
        # when it is really sent, not when it joined the client's own queue.
        while k - acked[0] >= WINDOW:
            time.sleep(0.0005)
        i = offset + k
        infos.append(client.publish(topic_of(root, i), payload(i, datetime.now(UTC)), qos=1))
        if rate and k % 50 == 0:
            ahead = started + k / rate - time.time()
            if ahead > 0:
                time.sleep(ahead)
    for info in infos:
        info.wait_for_publish(300)
    finished = time.time()
    client.disconnect()
    client.loop_stop()
    out.put({"started": started, "finished": finished})


def _bare_subscriber_main(
    url: str, root: str, n: int, ready: Any, out: Any, client_id: str = "", subscribe_only: bool = False
) -> None:
    """Count n messages (automatic PUBACK). With ``client_id``: a persistent session, so that a
    first run with ``subscribe_only`` leaves a session that queues what is published meanwhile."""
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    client, address = _client(url, client_id or f"bench-bare-{os.getpid()}")
    state = {"count": 0, "first": 0.0, "last": 0.0}

    def on_message(client, userdata, msg) -> None:  # noqa: ANN001
        state["count"] += 1
        if state["count"] == 1:
            state["first"] = time.time()
        if state["count"] >= n:
            state["last"] = time.time()

    def on_subscribe(*args: Any) -> None:
        ready.set()

    client.on_message = on_message
    client.on_subscribe = on_subscribe
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 300 if client_id else 0
    client.connect(address.host, address.port, keepalive=60, clean_start=not client_id, properties=props)
    client.subscribe(f"{root}/#", qos=1)
    deadline = time.time() + 600
    while (not ready.is_set() if subscribe_only else state["count"] < n) and time.time() < deadline:
        client.loop(0.1)
    client.disconnect()
    out.put(state)


# -- the parts of a run --------------------------------------------------------------------------
class _Stack(contextlib.ExitStack):
    pass


def _server(settings: Any, stack: _Stack, tmp: Path) -> tuple[str, str]:
    if settings.database_url:
        return settings.database_url, "configured"
    from ioc.embedded.postgres import EmbeddedPostgres

    server = EmbeddedPostgres(tmp / "pg" / "data").start()
    stack.callback(server.stop)
    return server.url("postgres"), "embedded"


def _broker(settings: Any, stack: _Stack, tmp: Path, prefer_mosquitto: bool) -> tuple[str, str]:
    if settings.mqtt_url:
        return settings.mqtt_url, "configured"
    from ingest.mosquitto import MosquittoProcess, mosquitto_binary

    if prefer_mosquitto and mosquitto_binary() is not None:
        broker = MosquittoProcess(tmp / "mosquitto").start()
        stack.callback(broker.stop)
        version = subprocess.run([mosquitto_binary() or "mosquitto", "-h"], capture_output=True, text=True).stdout
        return broker.url, (version.splitlines() or ["mosquitto"])[0].replace("mosquitto version", "mosquitto").strip()
    from ioc.embedded.broker import EmbeddedBroker

    embedded = EmbeddedBroker(tmp / "rumqttd").start()
    stack.callback(embedded.stop)
    return embedded.url, "rumqttd (embedded)"


def _fresh_database(admin_url: str, stack: _Stack) -> str:
    from ioc.storage.db import with_database
    from ioc.storage.migrate import migrate

    name = f"ioc_bench_{secrets.token_hex(4)}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))

    def drop() -> None:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    stack.callback(drop)
    url = with_database(admin_url, name)
    migrate(url)
    from ingest.testing import seed_devices

    seed_devices(url, UNIT, [(device_of(i), "sensor") for i in range(DEVICES)], expected_interval_s=3600)
    return url


def _copy_baseline(url: str, n: int) -> float:
    """Binary COPY of the rows the worker would write for n messages, in one transaction; rows/s."""
    from ingest.writer import TABLES

    spec = TABLES["telemetry"]
    now = datetime.now(UTC)
    # built before the clock starts: the baseline is the database, not Python
    rows = [
        (now, device_of(i), UNIT, "sensor", f"b-{i:08d}", Jsonb(payload(i, now).decode(), dumps=_same), now)
        for i in range(n)
    ]
    with psycopg.connect(url) as conn:
        conn.execute("SET TIME ZONE 'UTC'")
        started = time.perf_counter()
        with conn.cursor() as cur:
            names = ", ".join(name for name, _ in spec.columns)
            with cur.copy(f"COPY telemetry ({names}) FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(["timestamptz", "text", "text", "text", "text", "jsonb", "timestamptz"])
                for row in rows:
                    copy.write_row(row)
        conn.commit()
        elapsed = time.perf_counter() - started
        # One statement, no error swallowed: a failed TRUNCATE of the rollup once aborted the
        # transaction and silently rolled back the raw TRUNCATE, so the end-to-end run counted the
        # baseline's rows as its own (negative lost_messages). Both backends have the rollup table.
        conn.execute("TRUNCATE telemetry, telemetry_hourly")
        conn.commit()
        left = conn.execute("SELECT count(*) FROM telemetry").fetchone()[0]
        if left:
            raise RuntimeError(f"the COPY baseline left {left} rows in telemetry")
    return n / elapsed


def _same(text: str) -> str:
    return text


def _start_publisher(ctx: Any, url: str, root: str, n: int, offset: int, rate: float) -> tuple[Any, Any, Any]:
    go, out = ctx.Event(), ctx.Queue()
    proc = ctx.Process(target=_publisher_main, args=(url, root, n, offset, rate, go, out), daemon=True)
    proc.start()
    return proc, go, out


def _bare_baseline(ctx: Any, url: str, root: str, n: int, rate: float) -> tuple[float, dict[str, float]]:
    ready, out = ctx.Event(), ctx.Queue()
    sub = ctx.Process(target=_bare_subscriber_main, args=(url, root, n, ready, out), daemon=True)
    sub.start()
    if not ready.wait(30):
        raise ConnectionError("the bare subscriber could not subscribe")
    pub, go, pub_out = _start_publisher(ctx, url, root, n, 0, rate)
    go.set()
    published = pub_out.get(timeout=600)
    state = out.get(timeout=600)
    pub.join(10)
    sub.join(10)
    if state["count"] < n:
        raise RuntimeError(f"bare subscriber counted {state['count']} of {n} messages: the broker dropped some")
    return n / (state["last"] - published["started"]), published


def _stored(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        return int(conn.execute("SELECT count(*) FROM telemetry").fetchone()[0])


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    index = min(len(values) - 1, max(0, round(q * (len(values) - 1))))
    return values[index]


class _Workers:
    """K ``python -m ingest`` processes with stable client ids, commit traces and ready files."""

    def __init__(self, db: str, url: str, root: str, k: int, batch_size: int, tmp: Path, shared: bool) -> None:
        self.env = dict(
            os.environ,
            IOC_DATABASE_URL=db,
            IOC_MQTT_URL=url,
            IOC_MQTT_TOPIC_ROOT=root,
            IOC_MQTT_SHARE_GROUP="ioc-bench" if shared else "",
            IOC_LOG_LEVEL="WARNING",
            IOC_VAR_DIR=str(tmp / "var"),
        )
        tag = secrets.token_hex(3)
        self.ids = [f"ioc-bench-{tag}-{i}" for i in range(k)]
        self.batch_size = batch_size
        self.tmp = tmp
        self.procs: list[subprocess.Popen] = []
        self.traces: list[Path] = []
        self.runs = 0

    def start(self) -> None:
        self.runs += 1
        for i, client_id in enumerate(self.ids):
            ready = self.tmp / f"ready-{client_id}-{self.runs}"
            trace = self.tmp / f"trace-{client_id}-{self.runs}.txt"
            self.traces.append(trace)
            cmd = [
                sys.executable, "-m", "ingest", "--client-id", client_id, "--batch-size", str(self.batch_size),
                "--session-expiry", "300", "--ready-file", str(ready), "--commit-trace", str(trace),
            ]  # fmt: skip
            self.procs.append(subprocess.Popen(cmd, cwd=ROOT_DIR, env=self.env))
            deadline = time.time() + 60
            while not ready.exists():
                if self.procs[-1].poll() is not None or time.time() > deadline:
                    raise ConnectionError(f"ingest worker {i} did not start (see its log above)")
                time.sleep(0.02)

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.procs = []

    def commits(self) -> list[tuple[float, list[float]]]:
        """(commit time, [ts of each telemetry row]) of every traced commit so far."""
        out = []
        for trace in self.traces:
            if trace.exists():
                for line in trace.read_text().splitlines():
                    parts = line.split()
                    out.append((float(parts[0]), [float(t) for t in parts[1:]]))
        self.traces = []
        return sorted(out)


def _wait_stored(db: str, target: int) -> int:
    last_count, last_change = -1, time.time()
    while True:
        stored = _stored(db)
        if stored >= target:
            return stored
        if stored != last_count:
            last_count, last_change = stored, time.time()
        elif time.time() - last_change > 15:
            return stored  # no progress: report what was stored
        time.sleep(0.02)


def _end_to_end(ctx: Any, db: str, url: str, workers: _Workers, root: str, n: int, rate: float) -> dict[str, Any]:
    """Workers running, publisher sending: rate from first publish to last commit, per-message latency."""
    workers.start()
    try:
        pub, go, pub_out = _start_publisher(ctx, url, root, n, 10**7, rate)
        go.set()
        published = pub_out.get(timeout=600)
        pub.join(10)
        stored = _wait_stored(db, n)
    finally:
        workers.stop()
    commits = workers.commits()
    latencies = [(commit - ts) * 1000.0 for commit, stamps in commits for ts in stamps]
    last_commit = commits[-1][0] if commits else time.time()
    return {"published": published, "stored": stored, "last_commit": last_commit, "latencies_ms": latencies}


def _drain(ctx: Any, db: str, url: str, workers: _Workers, root: str, n: int, before: int) -> tuple[float, int]:
    """N messages queued for the workers' sessions while they are stopped, then drained: msg/s from
    the first commit to the last (the consumer's limit, without a publisher competing for CPU)."""
    pub, go, pub_out = _start_publisher(ctx, url, root, n, 2 * 10**7, 0.0)
    go.set()
    pub_out.get(timeout=600)
    pub.join(10)
    workers.start()
    try:
        stored = _wait_stored(db, before + n) - before
    finally:
        workers.stop()
    commits = workers.commits()
    if len(commits) < 2:
        return float("nan"), stored
    first_time, first_rows = commits[0]
    return (stored - len(first_rows)) / max(1e-9, commits[-1][0] - first_time), stored


def _bare_drain(ctx: Any, url: str, root: str, n: int) -> float:
    client_id = f"bench-bare-drain-{secrets.token_hex(3)}"
    ready, out = ctx.Event(), ctx.Queue()
    sub = ctx.Process(target=_bare_subscriber_main, args=(url, root, n, ready, out, client_id, True), daemon=True)
    sub.start()
    out.get(timeout=60)
    sub.join(10)
    pub, go, pub_out = _start_publisher(ctx, url, root, n, 0, 0.0)
    go.set()
    pub_out.get(timeout=600)
    pub.join(10)
    ready2, out2 = ctx.Event(), ctx.Queue()
    sub = ctx.Process(target=_bare_subscriber_main, args=(url, root, n, ready2, out2, client_id), daemon=True)
    sub.start()
    state = out2.get(timeout=600)
    sub.join(10)
    if state["count"] < n:
        raise RuntimeError(f"bare subscriber drained {state['count']} of {n} messages: the broker dropped some")
    return (n - 1) / max(1e-9, state["last"] - state["first"])


def run_bench(
    settings: Any,
    *,
    messages: int,
    workers: int = 1,
    batch_size: int = 1000,
    rate: float = 0.0,
    prefer_mosquitto: bool = True,
    drain: bool = True,
) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    # The directory outlives the stack: the embedded servers in it stop before it is removed.
    with tempfile.TemporaryDirectory(prefix="ioc-bench-") as tmpdir, _Stack() as stack:
        tmp = Path(tmpdir)
        try:
            admin_url, db_kind = _server(settings, stack, tmp)
            broker_url, broker_kind = _broker(settings, stack, tmp, prefer_mosquitto)
            db = _fresh_database(admin_url, stack)
        except (psycopg.OperationalError, OSError) as exc:
            raise ConnectionError(str(exc)) from exc
        with psycopg.connect(db) as conn:
            from ioc.storage import timeseries

            backend = timeseries.active_backend(conn)
            server_version = conn.info.server_version
        tag = secrets.token_hex(3)
        copy_rate = _copy_baseline(db, messages)
        bare_rate, bare_pub = _bare_baseline(ctx, broker_url, f"bench{tag}a/v1", messages, rate)
        shared = workers > 1 or "rumqttd" not in broker_kind
        root = f"bench{tag}e/v1"
        pool = _Workers(db, broker_url, root, workers, batch_size, tmp, shared)
        e2e = _end_to_end(ctx, db, broker_url, pool, root, messages, rate)
        drain_rate = drain_stored = None
        bare_drain_rate = None
        if drain:
            bare_drain_rate = _bare_drain(ctx, broker_url, f"bench{tag}b/v1", messages)
            drain_rate, drain_stored = _drain(ctx, db, broker_url, pool, root, messages, e2e["stored"])
    published = e2e["published"]
    elapsed = (e2e["last_commit"] or time.time()) - published["started"]
    committed_rate = e2e["stored"] / elapsed if elapsed > 0 else 0.0
    latencies = e2e["latencies_ms"]
    sample = payload(0, datetime.now(UTC))
    return {
        "bench": "ingest",
        "messages": messages,
        "workers": workers,
        "batch_size": batch_size,
        "payload_bytes": len(sample),
        "broker": broker_kind,
        "database": f"postgresql {server_version // 10000} ({backend}, {db_kind})",
        "cpu_count": os.cpu_count(),
        "publish_msgs_per_s": round(messages / max(1e-9, published["finished"] - published["started"]), 1),
        "committed_msgs_per_s": round(committed_rate, 1),
        "publish_to_commit_p50_ms": round(_percentile(latencies, 0.50), 2),
        "publish_to_commit_p99_ms": round(_percentile(latencies, 0.99), 2),
        "bare_subscriber_msgs_per_s": round(bare_rate, 1),
        "bare_publish_msgs_per_s": round(messages / max(1e-9, bare_pub["finished"] - bare_pub["started"]), 1),
        "copy_rows_per_s": round(copy_rate, 1),
        "ratio_to_bare_subscriber": round(committed_rate / bare_rate, 3) if bare_rate else None,
        "ratio_to_copy": round(committed_rate / copy_rate, 4) if copy_rate else None,
        "stored_messages": e2e["stored"],
        "lost_messages": messages - e2e["stored"] + (messages - drain_stored if drain_stored is not None else 0),
        "end_to_end_s": round(elapsed, 3),
        # Drain: the same N messages queued while the consumers are stopped, then consumed with no
        # publisher running (the consumers' own limit on this machine).
        "drain_committed_msgs_per_s": _round(drain_rate, 1),
        "drain_bare_subscriber_msgs_per_s": _round(bare_drain_rate, 1),
        "drain_ratio_to_bare_subscriber": _round(drain_rate / bare_drain_rate, 3)
        if drain_rate and bare_drain_rate
        else None,
    }


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None or value != value else round(value, digits)


def main() -> None:  # pragma: no cover - `python -m ingest.bench N K`
    from ioc.settings import get_settings

    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    k = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    print(json.dumps(run_bench(get_settings(), messages=n, workers=k)))


if __name__ == "__main__":  # pragma: no cover
    main()
