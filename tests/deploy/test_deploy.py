"""`make test-deploy`: the production shape, on real engines, through real failures.

One stack for the module (tests/deploy/stack.py): PostgreSQL primary + synchronous standby,
Mosquitto confined by `ioc broker` (TLS only, one account per device and per service), HAProxy with
TLS in front of two `ioc serve`, two `ioc ingest` on the shared subscription, the radio service, each
logged in as itself. The tests run in file order and build on each other: a device's alert through
the proxy, the broker's confinement, an API replica killed, an ingest worker killed, rate limits
across replicas, the primary stopped mid-stream and the standby promoted, the restore drill.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt
import psycopg
import pytest

from tests.deploy import stack
from tests.deploy.stack import CAMERA, OTHER_RADIO, RADIO, SENSOR, UNIT

pytestmark = pytest.mark.deploy

if missing := stack.missing_parts():
    pytest.skip(f"Debian packages missing: {', '.join(missing)} (make test-deploy installs them as root)",
                allow_module_level=True)  # fmt: skip


class Deployment:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        try:
            self._start()
        except BaseException:
            self.close()
            raise

    def _start(self) -> None:
        tmp = self.tmp
        self.db = stack.start_replicated(tmp)
        self.broker = stack.start_broker(tmp)
        self.ca = self.broker.files.ca_pem
        self.env = stack.service_env(self.db.url, self.broker)
        # Migrations and the district on the primary, as an operator does (docs/deploy.md).
        for args in (["db", "migrate"], ["district", "apply", str(stack.DISTRICT_FILE)]):
            subprocess.run([sys.executable, "-m", "ioc.cli.main", *args], cwd=stack.ROOT, env=self.env,
                           check=True, capture_output=True)  # fmt: skip
        self.password = secrets.token_urlsafe(16)
        from ioc.auth import passwords, repository

        with psycopg.connect(self.db.url) as conn:
            repository.create_user(conn, username="deploy-operator", display_name="Deploy", role="operator",
                                   unit_id=None, password_hash=passwords.hash_password(self.password))  # fmt: skip
        self.services = stack.Services(self.env, tmp, [stack.free_port(), stack.free_port()])
        self.services.start_api(0)
        self.services.start_api(1)
        self.services.start_ingest(1)
        self.services.start_ingest(2)
        self.services.start_radio()
        self.proxy = stack.start_proxy(tmp, self.broker.files.haproxy_pem, self.services.api_ports)
        self.base = f"https://127.0.0.1:{self.proxy.port}"
        self.http = httpx.Client(base_url=self.base, verify=stack.tls_context(self.ca), timeout=10)
        self._wait_proxy_ready()
        self.camera = self._device(CAMERA)
        self.sensor = self._device(SENSOR)
        self.zone = 0

    def _wait_proxy_ready(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if self.http.get("/readyz").status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"the proxy never answered /readyz: {self.proxy.log.read_text()[-2000:]}")

    def _device(self, device_id: str) -> mqtt.Client:
        """A device's MQTT 5 session over TLS, logged in with its own account (`ioc broker credentials`)."""
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=device_id, protocol=mqtt.MQTTv5)
        client.username_pw_set(device_id, self.broker.files.password(device_id))
        client.tls_set(ca_certs=str(self.ca))
        client.max_inflight_messages_set(100)
        client.max_queued_messages_set(0)
        client.connect("127.0.0.1", self.broker.port)
        client.loop_start()
        deadline = time.monotonic() + 10
        while not client.is_connected():
            assert time.monotonic() < deadline, "the device could not connect over TLS"
            time.sleep(0.02)
        return client

    def token(self, base: str | None = None) -> str:
        with httpx.Client(base_url=base or self.base, verify=stack.tls_context(self.ca), timeout=10) as http:
            response = http.post("/api/auth/login", json={"username": "deploy-operator", "password": self.password})
        assert response.status_code == 200, response.text
        return response.json()["access_token"]

    def intrusion(self) -> int:
        """A camera intrusion event in a new zone: one new alert. Returns the zone number."""
        self.zone += 1
        body = {"v": 1, "id": f"dz-{self.zone:05d}-{secrets.token_hex(3)}", "ts": datetime.now(UTC).isoformat(),
                "rule": "intrusion", "zone": f"z{self.zone}", "object_class": "person", "score": 0.9}  # fmt: skip
        info = self.camera.publish(f"ioc/v1/{UNIT}/camera/{CAMERA}/event", json.dumps(body), qos=1)
        info.wait_for_publish(10)
        assert info.is_published()
        return self.zone

    def telemetry(self, n: int, rate: float, tag: str) -> int:
        """``n`` QoS 1 readings at ``rate``/s, each acknowledged by the broker (PUBACK) before returning."""
        from ingest.testing import telemetry_payload

        infos = []
        start = time.monotonic()
        for i in range(n):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            payload = telemetry_payload(f"{tag}-{i:06d}", datetime.now(UTC), float(i))
            infos.append(self.sensor.publish(f"ioc/v1/{UNIT}/sensor/{SENSOR}/telemetry", payload, qos=1))
        for info in infos:
            info.wait_for_publish(30)
        return sum(1 for info in infos if info.is_published())

    def stored(self, tag: str) -> int:
        with psycopg.connect(self.db.url, autocommit=True, connect_timeout=3) as conn:
            row = conn.execute("SELECT count(*) FROM telemetry WHERE message_id LIKE %s", (f"{tag}-%",)).fetchone()
        return int(row[0])

    def close(self) -> None:
        for client in (getattr(self, "camera", None), getattr(self, "sensor", None)):
            if client is not None:
                client.loop_stop()
                client.disconnect()
        for part, stop in (("http", "close"), ("proxy", "stop"), ("services", "stop_all"), ("broker", "stop")):
            if getattr(self, part, None) is not None:
                getattr(getattr(self, part), stop)()
        if getattr(self, "db", None) is not None:
            self.db.primary.stop("immediate")
            self.db.standby.stop("immediate")


class WallClient(threading.Thread):
    """A wall screen on /ws: remembers the last alert seq and reconnects with ``since`` when cut."""

    def __init__(self, url: str, ca: Path) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.context = stack.tls_context(ca)
        self.last_seq: int | None = None
        self.zones: set[int] = set()
        self.connections = 0
        self.connected = threading.Event()
        self.stopping = threading.Event()

    def run(self) -> None:
        from websockets.sync.client import connect

        while not self.stopping.is_set():
            since = "" if self.last_seq is None else f"&since={self.last_seq}"
            try:
                with connect(self.url + since, ssl=self.context if self.url.startswith("wss") else None,
                             open_timeout=5, close_timeout=1) as ws:  # fmt: skip
                    self.connections += 1
                    while not self.stopping.is_set():
                        try:
                            text = ws.recv(timeout=0.5)
                        except TimeoutError:
                            continue
                        self._take(json.loads(text))
            except Exception:  # noqa: BLE001 - a cut connection: reconnect, as the wall's page does
                self.connected.clear()
                time.sleep(0.3)

    def _take(self, message: dict) -> None:
        for frame in message["items"] if message.get("type") == "batch" else [message]:
            if frame.get("type") in ("snapshot_end", "replay_end"):
                self.last_seq = max(self.last_seq or 0, frame["last_seq"])
                self.connected.set()
            elif frame.get("type") == "event" and frame["event"]["topic"] == "alert":
                self.last_seq = max(self.last_seq or 0, frame["seq"])
                title = frame["event"]["data"].get("title", "")
                for word in title.split():
                    if word.startswith("z") and word[1:].isdigit():
                        self.zones.add(int(word[1:]))

    def stop(self) -> None:
        self.stopping.set()
        self.join(5)


def wait_until(predicate, timeout: float, interval: float = 0.2) -> bool:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


@pytest.fixture(scope="module")
def deployment() -> Iterator[Deployment]:
    # Not pytest's tmp_path: the postgres user must be able to walk into it.
    with tempfile.TemporaryDirectory(prefix="ioc-deploy-") as name:
        tmp = Path(name)
        tmp.chmod(0o755)
        made = Deployment(tmp)
        try:
            yield made
        finally:
            made.close()


def _walls(d: Deployment, n: int, base: str | None = None) -> list[WallClient]:
    url = (base or d.base).replace("https://", "wss://").replace("http://", "ws://")
    clients = [WallClient(f"{url}/ws?topics=alert&access_token={d.token()}", d.ca) for _ in range(n)]
    for client in clients:
        client.start()
    for client in clients:
        assert client.connected.wait(20), "a wall did not get its snapshot"
    return clients


def test_a_devices_alert_reaches_a_wall_through_the_proxy(deployment: Deployment) -> None:
    d = deployment
    assert d.http.get("/healthz").status_code == 200
    (wall,) = _walls(d, 1)
    try:
        zone = d.intrusion()
        assert wait_until(lambda: zone in wall.zones, 20), "the alert did not reach the wall"
    finally:
        wall.stop()


def test_the_broker_refuses_strangers_and_confines_devices(deployment: Deployment) -> None:
    d = deployment
    anonymous = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    anonymous.tls_set(ca_certs=str(d.ca))
    codes: list = []
    anonymous.on_connect = lambda c, u, f, rc, p: codes.append(rc)
    anonymous.connect("127.0.0.1", d.broker.port)
    anonymous.loop_start()
    assert wait_until(lambda: codes, 10)
    anonymous.loop_stop()
    assert codes[0].is_failure, "an anonymous client was let in"
    # The camera may not publish as the sensor: the broker drops it (ACL), nothing is stored.
    from ingest.testing import telemetry_payload

    forged = telemetry_payload("forged-000001", datetime.now(UTC))
    d.camera.publish(f"ioc/v1/{UNIT}/sensor/{SENSOR}/telemetry", forged, qos=1).wait_for_publish(10)
    d.telemetry(1, 10, "acl-probe")
    assert wait_until(lambda: d.stored("acl-probe") == 1, 20)
    assert d.stored("forged") == 0


class Login:
    """An MQTT 5 session over TLS as one of the generated accounts, recording what it receives."""

    def __init__(self, d: Deployment, account: str) -> None:
        self.received: list[tuple[str, bytes]] = []
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"probe-{account}-{secrets.token_hex(3)}",
                                  protocol=mqtt.MQTTv5)  # fmt: skip
        self.client.username_pw_set(account, d.broker.files.password(account))
        self.client.tls_set(ca_certs=str(d.ca))
        self.client.on_message = lambda c, u, m: self.received.append((m.topic, m.payload))
        self.client.connect("127.0.0.1", d.broker.port)
        self.client.loop_start()
        assert wait_until(self.client.is_connected, 10), f"{account} could not log in"

    def subscribe(self, topic: str) -> None:
        done = threading.Event()
        self.client.on_subscribe = lambda *a: done.set()
        self.client.subscribe(topic, qos=1)
        assert done.wait(10)

    def publish(self, topic: str, payload: bytes) -> None:
        info = self.client.publish(topic, payload, qos=1)
        with contextlib.suppress(RuntimeError, ValueError):  # refused: Mosquitto may drop it and cut the session
            info.wait_for_publish(5)

    def payloads(self, topic: str) -> list[bytes]:
        return [p for t, p in self.received if t == topic]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_each_process_holds_only_its_own_rights(deployment: Deployment) -> None:
    """The hole of the shared `ioc-service` account, closed on the real broker with the generated ACL:
    the API's login cannot make a loudspeaker play, a loudspeaker cannot read another one's commands,
    and the radio service, logged in as `ioc-radio`, still reads the clusters' status."""
    d = deployment
    mine, theirs = f"ioc/v1/{UNIT}/radio/{RADIO}/cmd", f"ioc/v1/{UNIT}/radio/{OTHER_RADIO}/cmd"
    logins = {name: Login(d, name) for name in (RADIO, OTHER_RADIO, "ioc-api", "ioc-radio")}
    try:
        logins[RADIO].subscribe(mine)
        logins[RADIO].subscribe(theirs)  # the broker narrows it to what the ACL allows: nothing
        logins[OTHER_RADIO].subscribe(theirs)
        logins["ioc-api"].publish(mine, b'{"forged": "by the API account"}')
        logins["ioc-radio"].publish(theirs, b'{"probe": "theirs"}')
        logins["ioc-radio"].publish(mine, b'{"probe": "mine"}')
        # Positive controls: the one account allowed to command reaches each cluster.
        assert wait_until(lambda: b'{"probe": "theirs"}' in logins[OTHER_RADIO].payloads(theirs), 10)
        assert wait_until(lambda: b'{"probe": "mine"}' in logins[RADIO].payloads(mine), 10)
        time.sleep(1.0)
        assert logins[RADIO].payloads(mine) == [b'{"probe": "mine"}'], "the ioc-api account published a command"
        assert logins[RADIO].payloads(theirs) == [], "a loudspeaker read another loudspeaker's commands"
        # The radio service (ioc-radio) reads a cluster's status and records it.
        status = {"v": 1, "id": f"st-{secrets.token_hex(4)}", "ts": datetime.now(UTC).isoformat(), "state": "online",
                  "info": {"volume": 42}}  # fmt: skip
        logins[RADIO].publish(f"ioc/v1/{UNIT}/radio/{RADIO}/status", json.dumps(status).encode())

        def recorded() -> bool:
            with psycopg.connect(d.db.url, autocommit=True) as conn:
                row = conn.execute("SELECT online, volume FROM radio_cluster_state WHERE device_id = %s",
                                   (RADIO,)).fetchone()  # fmt: skip
            return row == (True, 42)

        assert wait_until(recorded, 20), (d.tmp / "radio.log").read_text()[-2000:]
    finally:
        for login in logins.values():
            login.close()
    assert "refused" not in (d.tmp / "radio.log").read_text()


def test_killing_an_api_replica_its_walls_reconnect_and_miss_nothing(deployment: Deployment) -> None:
    d = deployment
    walls = _walls(d, 4)
    try:
        before = [w.connections for w in walls]
        d.services.kill("api1")
        zones = [d.intrusion() for _ in range(5)]
        time.sleep(0.5)
        zones += [d.intrusion() for _ in range(3)]
        assert wait_until(lambda: all(set(zones) <= w.zones for w in walls), 40), [
            sorted(set(zones) - w.zones) for w in walls
        ]
        cut = [w for w, n in zip(walls, before, strict=True) if w.connections > n]
        assert cut, "no wall was on the killed replica (round robin over two replicas)"
    finally:
        for wall in walls:
            wall.stop()
    d.services.start_api(0)  # systemd's Restart=always
    assert wait_until(lambda: d.http.get("/readyz").status_code == 200, 20)


def test_killing_an_ingest_worker_loses_nothing(deployment: Deployment) -> None:
    d = deployment
    result: list[int] = []
    publishing = threading.Thread(target=lambda: result.append(d.telemetry(1500, 500, "kill-ingest")))
    publishing.start()
    time.sleep(1.0)
    d.services.kill("ingest1")
    time.sleep(1.0)
    d.services.start_ingest(1)  # systemd's Restart=always, same worker id: the broker hands its session back
    publishing.join(60)
    assert result == [1500], "the broker did not acknowledge every reading"
    assert wait_until(lambda: d.stored("kill-ingest") == 1500, 60), d.stored("kill-ingest")


def test_rate_limits_hold_across_replicas(deployment: Deployment) -> None:
    d = deployment
    codes = []
    for i in range(stack.SUBMIT_BURST + 2):
        # A forged X-Forwarded-For changes nothing: HAProxy replaces it with the real address.
        response = d.http.post("/api/public/reports", data={"category": "no-such-category", "description": "kiểm tra"},
                               headers={"X-Forwarded-For": f"198.51.100.{i}"})  # fmt: skip
        codes.append(response.status_code)
    # Round robin over two replicas: in-process buckets would allow 2 x burst.
    assert codes == [400] * stack.SUBMIT_BURST + [429, 429], codes


def test_x_forwarded_for_is_believed_only_from_the_proxy(deployment: Deployment) -> None:
    """A client that reaches a replica directly (from 127.0.0.2, not a trusted proxy) cannot pick its
    rate-limit bucket with a forged X-Forwarded-For: every attempt counts against 127.0.0.2."""
    d = deployment
    transport = httpx.HTTPTransport(local_address="127.0.0.2")
    port = d.services.api_ports[1]
    codes = []
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", transport=transport, timeout=10) as direct:
        for i in range(stack.SUBMIT_BURST + 1):
            form = {"category": "no-such-category", "description": "kiểm tra"}
            response = direct.post("/api/public/reports", data=form, headers={"X-Forwarded-For": f"203.0.113.{i}"})
            codes.append(response.status_code)
    assert codes == [400] * stack.SUBMIT_BURST + [429], codes


def test_failover_mid_stream_loses_no_acknowledged_message_and_everything_reconnects(deployment: Deployment) -> None:
    d = deployment
    pids = {name: proc.pid for name, proc in d.services.procs.items()}
    result: list[int] = []
    publishing = threading.Thread(target=lambda: result.append(d.telemetry(1000, 200, "failover")))
    publishing.start()
    time.sleep(2.0)
    d.db.primary.stop("immediate")  # the primary dies mid-stream
    d.db.promote_standby()
    publishing.join(60)
    assert result == [1000]
    assert wait_until(lambda: d.stored("failover") == 1000, 90), d.stored("failover")
    # Every process recovered by itself: same pids, each replica ready on the new primary, each hub
    # listening again (a wall on each replica directly gets a new alert), the radio service connected.
    assert {n: p.pid for n, p in d.services.procs.items()} == pids
    assert all(d.services.alive().values()), d.services.alive()
    for port in d.services.api_ports:
        assert wait_until(lambda p=port: httpx.get(f"http://127.0.0.1:{p}/readyz").status_code == 200, 30)
    walls = [w for port in d.services.api_ports for w in _walls(d, 1, f"http://127.0.0.1:{port}")]
    try:
        zone = d.intrusion()
        assert wait_until(lambda: all(zone in w.zones for w in walls), 30), [w.zones for w in walls]
    finally:
        for wall in walls:
            wall.stop()
    with psycopg.connect(d.db.primary.url("ioc"), autocommit=True) as conn:
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (False,)
        names = {r[0] for r in conn.execute("SELECT application_name FROM pg_stat_activity")}
    assert wait_until(lambda: any(n.startswith("ioc-radio") for n in _apps(d)), 30), names


def _apps(d: Deployment) -> set[str]:
    with psycopg.connect(d.db.primary.url("ioc"), autocommit=True) as conn:
        return {r[0] for r in conn.execute("SELECT application_name FROM pg_stat_activity")}


def test_the_restore_drill_gives_the_same_row_counts(deployment: Deployment) -> None:
    d = deployment
    env = d.db.backup_env()
    stack.as_postgres([str(stack.DEPLOY / "backup" / "ioc-basebackup")], env=env)
    assert d.telemetry(100, 200, "after-backup") == 100
    assert wait_until(lambda: d.stored("after-backup") == 100, 30)
    env["IOC_DRILL_DATABASE"] = "ioc"
    drill = stack.as_postgres([sys.executable if not stack.AS_ROOT else "/usr/bin/python3",
                               str(stack.DEPLOY / "backup" / "ioc-restore-drill")], env=env, timeout=300)  # fmt: skip
    report = json.loads(drill.stdout.strip().splitlines()[-1])
    assert report["same"], report
    with psycopg.connect(d.db.url, autocommit=True) as conn:
        (telemetry,) = conn.execute("SELECT count(*) FROM telemetry").fetchone()
    assert report["restored"]["telemetry"] == telemetry >= 100, (telemetry, report["restored"])


def test_ioc_doctor_finds_the_deployment_healthy(deployment: Deployment) -> None:
    d = deployment
    env = dict(
        d.env,
        IOC_BACKUP_DIR=str(d.db.backup_dir),
        IOC_PUBLIC_URL=d.base,
        IOC_MQTT_USERNAME="ioc-api",
        IOC_MQTT_PASSWORD=d.broker.files.password("ioc-api"),
        IOC_BROKER_ACL=str(d.broker.files.acl),
    )
    out = subprocess.run([sys.executable, "-m", "ioc.cli.main", "doctor", "--json"], cwd=stack.ROOT, env=env,
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    report = json.loads(out.stdout)
    assert out.returncode == 0, [c for c in report["checks"] if c["status"] != "OK"]
    assert {c["check"] for c in report["checks"]} >= {"tls", "acl", "secrets", "backups", "jobs"}
    assert any(c["check"] == "acl" and "generated by `ioc broker generate`" in c["detail"] for c in report["checks"])
