"""``ioc bench alerts``: from a camera event published on MQTT to the alert on every wall screen.

One run, one machine, one JSON line. The system runs as in production, each part its own process:
a private Mosquitto (or ``IOC_MQTT_URL``), PostgreSQL (``IOC_DATABASE_URL`` or an embedded one; a
fresh database, dropped at the end), one ``ioc ingest`` worker raising alerts from
``config/alert-rules.yaml``, and ``ioc serve`` with the websocket hub. One client process (or
``--client-processes``) holds N websocket connections (plus ``--stalled`` ones that never read),
each a real websocket client kept as cheap as one can be (see :class:`_WallClient`), so that the
clients measure the hub rather than themselves; a publisher process sends M
camera intrusion events at R per second, each a new cause, so each becomes one new alert.

Reported: publish-to-receipt latency p50/p99/max over every (alert, client) pair, split into the
pipeline (publish to the first client's receipt of each alert: ingest, alert engine, commit, NOTIFY)
and the fan-out (each receipt's delay after the first client's receipt of the same alert), messages lost
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
def _publisher_main(url: str, topic: str, m: int, rate: float, go: Any, out: Any, offset: int = 0) -> None:
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
        client.publish(topic, _event(offset + i), qos=1)
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


def _clients_main(ws_urls: list[str], indexes: list[int], readers: int, m: int, ready: Any, out: Any,
                  cafile: str | None = None, offset: int = 0) -> None:  # fmt: skip
    """One client process: the connections ``indexes`` (global numbers: they pick the URL round robin;
    those from ``readers`` on are the stalled ones)."""
    import uvloop

    uvloop.run(_clients(ws_urls, indexes, readers, m, ready, out, cafile, offset))


#: An alert's live event: the zone number in its title is the bench event's index.
_ZONE_BYTES = re.compile("khu vực z(\\d+) ".encode())


class _WallClient(asyncio.Protocol):
    """One websocket client, as cheap as a real one can be: the websockets library's sans-I/O client
    protocol on a bare asyncio transport (no reader task, no message queue per connection), and no JSON
    parsing of live messages: an alert event is found by its type and its title, and timed on arrival."""

    def __init__(self, url: str, m: int, offset: int, receipts: list[tuple[float, int]], stalled: bool) -> None:
        from websockets.client import ClientProtocol
        from websockets.uri import parse_uri

        self.ws = ClientProtocol(parse_uri(url), max_size=None)
        self.m, self.offset, self.receipts, self.stalled = m, offset, receipts, stalled
        self.received = self.resyncs = 0
        self.synced: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.finished: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.ws.send_request(self.ws.connect())
        transport.write(b"".join(self.ws.data_to_send()))

    def data_received(self, data: bytes) -> None:
        now = time.time()
        self.ws.receive_data(data)
        for event in self.ws.events_received():
            payload = getattr(event, "data", None)
            if getattr(event, "opcode", None) is not None and payload:
                self._message(payload, now)
        if pending := self.ws.data_to_send():  # pongs, the closing handshake
            self.transport.write(b"".join(pending))

    def _message(self, payload: bytes, now: float) -> None:
        if not self.synced.done():
            if b'"type":"snapshot_end"' in payload.replace(b" ", b""):
                self.synced.set_result(None)
                if self.stalled:
                    self.transport.pause_reading()  # never reads again: the hub must not wait for it
            return
        if b'"type":"resync"' in payload:
            self.resyncs += 1
        for item in payload.split(b'{"type":"event"')[1:]:
            if b'"type":"alert.created"' in item and (match := _ZONE_BYTES.search(item)):
                index = int(match.group(1)) - self.offset
                if index >= 0:
                    self.receipts.append((now, index))
                    self.received += 1
        if self.received >= self.m and not self.finished.done():
            self.finished.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.synced.done():
            self.synced.set_exception(exc or ConnectionError("connection closed before the snapshot"))
        if not self.finished.done():
            self.finished.set_result(None)  # nothing more will come: count what arrived


async def _clients(ws_urls: list[str], indexes: list[int], readers: int, m: int, ready: Any, out: Any,
                   cafile: str | None = None, offset: int = 0) -> None:  # fmt: skip
    import gc
    import ssl
    from urllib.parse import urlsplit

    context = ssl.create_default_context(cafile=cafile) if cafile else None
    loop = asyncio.get_running_loop()
    receipts: list[tuple[float, int]] = []  # (receipt time, event index)
    clients: list[_WallClient] = []
    for i in indexes:
        url = ws_urls[i % len(ws_urls)]
        parts = urlsplit(url)
        secure = parts.scheme == "wss"
        client = _WallClient(url, m, offset, receipts, stalled=i >= readers)
        await loop.create_connection(lambda c=client: c, parts.hostname, parts.port,
                                     ssl=context if secure else None)  # fmt: skip
        await asyncio.wait_for(client.synced, 30)
        clients.append(client)
    # The instrument must not pause: no garbage collection while it times arrivals (a full one here
    # took 25-70 ms, every 5 s, with 300,000 receipts held).
    gc.collect()
    gc.freeze()
    gc.disable()
    ready.set()
    reading = [c for c in clients if not c.stalled]
    if reading:  # a starved client process still gets everything it can
        await asyncio.wait([c.finished for c in reading], timeout=120 + m / 2)
    for client in clients:
        if client.transport is not None:
            client.transport.abort()
    out.put({"receipts": receipts, "received": sum(c.received for c in reading),
             "resyncs": sum(c.resyncs for c in reading)})  # fmt: skip


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


def _operator_token(db: str, port: int, tag: int = 0) -> str:
    """An operator account in the bench database, logged in through the API: its access token."""
    import urllib.request

    import psycopg

    from ioc.auth import passwords, repository

    password = secrets.token_urlsafe(16)
    with psycopg.connect(db) as conn:
        repository.create_user(conn, username=f"bench-operator-{tag}", display_name="Bench", role="operator",
                               unit_id=None, password_hash=passwords.hash_password(password))  # fmt: skip
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/auth/login",
        data=json.dumps({"username": f"bench-operator-{tag}", "password": password}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - our own local server
        return json.load(response)["access_token"]


def _self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (the proxy's TLS): (HAProxy's cert+key file, the cert to trust)."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())  # fmt: skip
    (directory / "proxy.pem").write_bytes(cert_pem + key_pem)
    (directory / "proxy.pem").chmod(0o600)
    (directory / "ca.pem").write_bytes(cert_pem)
    return directory / "proxy.pem", directory / "ca.pem"


def _start_proxy(tmp: Path, ports: list[int], stack: Any) -> tuple[int, Path, subprocess.Popen]:
    """deploy/haproxy/ioc.cfg (TLS, /readyz checks) in front of the replicas; returns (port, CA, process)."""
    import shutil

    from ioc.net import free_port

    haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
    if not Path(haproxy).exists():
        raise ConnectionError("--proxy needs HAProxy (apt-get install haproxy)")
    pem, ca = _self_signed(tmp)
    state = tmp / "haproxy"
    state.mkdir(exist_ok=True)
    config = ROOT_DIR / "deploy" / "haproxy" / "ioc.cfg"
    text = config.read_text()
    # deploy's file names api1 and api2; more replicas get more lines, fewer lose one
    lines = "".join(f'    server api{i + 1} "${{IOC_API_{i + 1}}}" check\n' for i in range(len(ports)))
    text = text.replace('    server api1 "${IOC_API_1}" check\n    server api2 "${IOC_API_2}" check\n', lines)
    (state / "ioc.cfg").write_text(text)
    port = free_port()
    env = dict(os.environ, IOC_HTTPS_BIND=f"127.0.0.1:{port}", IOC_HTTP_BIND=f"127.0.0.1:{free_port()}",
               IOC_TLS_PEM=str(pem), IOC_HAPROXY_STATE=str(state),
               **{f"IOC_API_{i + 1}": f"127.0.0.1:{p}" for i, p in enumerate(ports)})  # fmt: skip
    proc = subprocess.Popen([haproxy, "-db", "-f", str(state / "ioc.cfg")], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    stack.callback(lambda: (proc.terminate(), proc.wait(10)))
    import ssl
    import urllib.request

    context = ssl.create_default_context(cafile=str(ca))
    deadline = time.time() + 30
    while time.time() < deadline:
        with (
            contextlib.suppress(Exception),
            urllib.request.urlopen(  # noqa: S310 - our own proxy
                f"https://127.0.0.1:{port}/readyz", timeout=2, context=context
            ) as response,
        ):
            if response.status == 200:
                return port, ca, proc
        time.sleep(0.3)
    raise ConnectionError("HAProxy did not become ready")


def _cpu_s(procs: list[Any]) -> float:
    total = 0.0
    for proc in procs:
        times = proc.cpu_times()
        total += times.user + times.system
    return total


def run_bench(settings: Any, *, clients: int, rate: float, alerts: int, stalled: int = 1, replicas: int = 1,
              proxy: bool = False, deflate_baseline: bool = False, client_processes: int = 1,
              ws_baseline: str | None = None, ingest_wait_ms: float = 50.0) -> dict[str, Any]:  # fmt: skip
    """See the module docstring. ``replicas`` API processes, behind HAProxy when ``proxy``; with
    ``deflate_baseline`` the system phase runs a second time with per-client websocket compression
    (the old default) and its hub CPU is reported next to ours; with ``ws_baseline`` (``websockets``,
    ``wsproto``) it runs a second time on that uvicorn websocket implementation instead of
    websockets-sansio, likewise."""
    from ingest.bench import _broker, _fresh_database, _server, _Stack
    from ingest.testing import seed_devices
    from ioc.net import free_port

    ctx = mp.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="ioc-bench-alerts-") as tmpdir, _Stack() as stack:
        tmp = Path(tmpdir)
        admin_url, db_kind = _server(settings, stack, tmp)
        broker_url, broker_kind = _broker(settings, stack, tmp, True)
        db = _fresh_database(admin_url, stack)
        seed_devices(db, UNIT, [(CAMERA, "camera")])
        root = f"bench{secrets.token_hex(2)}/v1"
        topic = f"{root}/{UNIT}/camera/{CAMERA}/event"
        env = dict(os.environ, IOC_DATABASE_URL=db, IOC_MQTT_URL=broker_url, IOC_MQTT_TOPIC_ROOT=root,
                   IOC_MQTT_SHARE_GROUP="", IOC_LOG_LEVEL="WARNING", IOC_VAR_DIR=str(tmp / "var"),
                   IOC_SECRET_KEY=secrets.token_urlsafe(32))  # fmt: skip
        procs: list[subprocess.Popen] = []

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
        ingest = subprocess.Popen([sys.executable, "-m", "ioc.cli.main", "ingest", "--batch-size", "200",
                                   "--batch-wait-ms", f"{ingest_wait_ms:g}"], cwd=ROOT_DIR, env=env)  # fmt: skip
        procs.append(ingest)
        time.sleep(2)  # the ingest worker subscribes

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

        def system_phase(offset: int, deflate: bool, ws: str = "websockets-sansio") -> dict[str, Any]:
            """Start the API replicas (and proxy), connect the clients, publish, collect; stop the replicas."""
            ports = [free_port() for _ in range(replicas)]
            servers = []
            for port in ports:
                cmd = [sys.executable, "-m", "ioc.cli.main", "serve", "--port", str(port), "--ws", ws]
                servers.append(subprocess.Popen(cmd + (["--ws-deflate"] if deflate else []), cwd=ROOT_DIR,
                                                env=dict(env, IOC_HTTP_PORT=str(port))))  # fmt: skip
            procs.extend(servers)
            for port, server in zip(ports, servers, strict=True):
                _wait_http(f"http://127.0.0.1:{port}/readyz", server)
            watched = [psutil.Process(p.pid) for p in servers]
            rss_before = sum(p.memory_info().rss for p in watched)
            cafile = None
            proxy_proc = None
            if proxy:
                with contextlib.ExitStack() as proxy_stack:
                    proxy_port, ca, proxy_proc = _start_proxy(tmp, ports, proxy_stack)
                    stack.push(proxy_stack.pop_all())
                cafile = str(ca)
                bases = [f"wss://127.0.0.1:{proxy_port}"]
            else:
                bases = [f"ws://127.0.0.1:{port}" for port in ports]
            token = _operator_token(db, ports[0], offset)
            ws_urls = [f"{base}/ws?topics=alert&access_token={token}" for base in bases]
            out = ctx.Queue()
            client_procs, readies = [], []
            for k in range(client_processes):  # each its own process, each a share of the connections
                indexes = list(range(k, clients + stalled, client_processes))
                readies.append(ctx.Event())
                args = (ws_urls, indexes, clients, alerts, readies[-1], out, cafile, offset)
                client_procs.append(ctx.Process(target=_clients_main, args=args))
                client_procs[-1].start()
            if not all(ready.wait(180) for ready in readies):
                raise ConnectionError("websocket clients did not connect")
            rss_after = sum(p.memory_info().rss for p in watched)
            time.sleep(2)  # the walls are connected and idle when alerts come, as in a control room
            proxy_watch = [psutil.Process(proxy_proc.pid)] if proxy_proc else []
            cpu_before, proxy_before = _cpu_s(watched), _cpu_s(proxy_watch)
            go, sent_q = ctx.Event(), ctx.Queue()
            pub = ctx.Process(target=_publisher_main, args=(broker_url, topic, alerts, rate, go, sent_q, offset))
            pub.start()
            go.set()
            sent = sent_q.get(timeout=300)
            parts = [out.get(timeout=300) for _ in client_procs]
            result = {"receipts": [r for part in parts for r in part["receipts"]],
                      "received": sum(part["received"] for part in parts),
                      "resyncs": sum(part["resyncs"] for part in parts)}  # fmt: skip
            cpu_s, proxy_cpu_s = _cpu_s(watched) - cpu_before, _cpu_s(proxy_watch) - proxy_before
            for client_proc in client_procs:
                client_proc.join(10)
            pub.join(10)
            if proxy_proc is not None:
                proxy_proc.terminate()
                proxy_proc.wait(10)
            for server in servers:
                server.send_signal(signal.SIGTERM)
            slow_stops = 0
            for server in servers:
                try:
                    server.wait(20)
                except subprocess.TimeoutExpired:  # counted, not fatal: the figures are already in
                    slow_stops += 1
                    server.kill()
                    server.wait(10)
            latencies = [(received - sent[index]) * 1000 for received, index in result["receipts"]]
            # The fan-out on its own: how long after the first client each client got the same alert.
            first: dict[int, float] = {}
            for received, index in result["receipts"]:
                first[index] = min(received, first.get(index, received))
            spread = [(received - first[index]) * 1000 for received, index in result["receipts"]]
            to_first = [(first[index] - sent[index]) * 1000 for index in first]
            deliveries = max(1, result["received"])
            return {
                "latencies": latencies, "received": result["received"], "resyncs": result["resyncs"],
                "spread": spread, "to_first": to_first, "slow_stops": slow_stops,
                "rss_per_client_kb": (rss_after - rss_before) / 1024 / max(1, clients + stalled),
                "hub_cpu_ms_per_1000": cpu_s * 1000 / deliveries * 1000,
                "proxy_cpu_ms_per_1000": proxy_cpu_s * 1000 / deliveries * 1000 if proxy_proc else None,
            }  # fmt: skip

        ours = system_phase(0, deflate=False)
        deflated = system_phase(1_000_000, deflate=True) if deflate_baseline else None
        other_ws = system_phase(2_000_000, deflate=False, ws=ws_baseline) if ws_baseline else None

    latencies = ours["latencies"]
    bare_ms = [v * 1000 for v in bare_latencies]
    p99 = _percentile(latencies, 0.99)
    bare_p99 = _percentile(bare_ms, 0.99)
    expected = clients * alerts
    result = {
        "bench": "alerts",
        "clients": clients,
        "stalled_clients": stalled,
        "replicas": replicas,
        "client_processes": client_processes,
        "ws": "websockets-sansio",
        "proxy": "haproxy-tls" if proxy else None,
        "rate_per_s": rate,
        "ingest_batch_wait_ms": ingest_wait_ms,
        "alerts": alerts,
        "broker": broker_kind,
        "database": db_kind,
        "cpu_count": os.cpu_count(),
        "p50_ms": _round(_percentile(latencies, 0.5)),
        "p99_ms": _round(p99),
        "max_ms": _round(max(latencies) if latencies else None),
        "first_client_p50_ms": _round(_percentile(ours["to_first"], 0.5)),
        "first_client_p99_ms": _round(_percentile(ours["to_first"], 0.99)),
        "fanout_spread_p50_ms": _round(_percentile(ours["spread"], 0.5)),
        "fanout_spread_p99_ms": _round(_percentile(ours["spread"], 0.99)),
        "received": ours["received"],
        "lost": expected - ours["received"],
        "resyncs": ours["resyncs"],
        "serve_stops_over_20_s": ours["slow_stops"],
        "hub_rss_per_client_kb": _round(ours["rss_per_client_kb"]),
        "hub_cpu_ms_per_1000_deliveries": _round(ours["hub_cpu_ms_per_1000"]),
        "proxy_cpu_ms_per_1000_deliveries": _round(ours["proxy_cpu_ms_per_1000"]),
        "bare_mqtt_p50_ms": _round(_percentile(bare_ms, 0.5)),
        "bare_mqtt_p99_ms": _round(bare_p99),
        "bare_mqtt_lost": alerts - len(bare_ms),
        "ratio_to_bare_mqtt_p99": _round(p99 / bare_p99 if p99 and bare_p99 else None, 2),
    }
    if deflated is not None:
        result.update({
            "deflate_p99_ms": _round(_percentile(deflated["latencies"], 0.99)),
            "deflate_lost": expected - deflated["received"],
            "deflate_hub_cpu_ms_per_1000_deliveries": _round(deflated["hub_cpu_ms_per_1000"]),
            "ratio_to_deflate_hub_cpu": _round(ours["hub_cpu_ms_per_1000"] / deflated["hub_cpu_ms_per_1000"], 2),
        })  # fmt: skip
    if other_ws is not None:
        result.update({
            "ws_baseline": ws_baseline,
            "ws_baseline_p99_ms": _round(_percentile(other_ws["latencies"], 0.99)),
            "ws_baseline_lost": expected - other_ws["received"],
            "ws_baseline_hub_cpu_ms_per_1000_deliveries": _round(other_ws["hub_cpu_ms_per_1000"]),
            "ratio_to_ws_baseline_hub_cpu": _round(ours["hub_cpu_ms_per_1000"] / other_ws["hub_cpu_ms_per_1000"], 2),
        })  # fmt: skip
    return result


def _round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)
