"""A confined Mosquitto for the tests: Debian's broker started on free loopback ports with the files
`ioc broker generate` / `ioc broker certs` wrote, and MQTT 5 clients logged in as its accounts."""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as mqtt

from ingest.mosquitto import mosquitto_binary
from ioc.broker.certs import make_certs
from ioc.broker.config import Listeners, generate
from ioc.broker.passwords import password_for
from ioc.district.models import District
from ioc.net import free_port


@dataclass
class ConfinedBroker:
    home: Path
    district: District
    plaintext: bool = True
    client_cert: bool = True
    port: int = field(default_factory=free_port)
    tls_port: int = field(default_factory=free_port)
    cert_port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    @property
    def secrets(self) -> Path:
        return self.home / "secrets"

    @property
    def tls(self) -> Path:
        return self.home / "tls"

    def password(self, account: str) -> str:
        return password_for(account, self.secrets, {})

    def start(self, clients: tuple[str, ...] = ()) -> ConfinedBroker:
        binary = mosquitto_binary()
        assert binary is not None
        if not (self.tls / "server.crt").exists() or clients:
            make_certs(self.tls, ["localhost", "127.0.0.1"], list(clients))
        listeners = Listeners(bind="127.0.0.1", plaintext_port=self.port if self.plaintext else None,
                              tls_port=self.tls_port, client_cert_port=self.cert_port if self.client_cert else None,
                              tls_dir=self.tls)  # fmt: skip
        made = generate(self.district, self.home / "out", self.secrets, listeners=listeners,
                        log_file=self.home / "mosquitto.log", environ={})  # fmt: skip
        conf = made.files["conf"]
        if os.geteuid() == 0:  # as root Mosquitto drops to user "mosquitto", who cannot read our temp dir
            conf.write_text(conf.read_text() + "user root\n")
        self.process = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.process.stderr.read() if self.process.stderr else "exited"
            try:
                with socket.create_connection(("127.0.0.1", self.tls_port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        raise AssertionError("mosquitto did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        if self.process is not None and self.process.stderr is not None:
            self.process.stderr.close()
        self.process = None


class Client:
    """A paho MQTT 5 client that records what it receives."""

    def __init__(self, broker: ConfinedBroker, account: str | None, *, password: str | None = None,
                 port: int | None = None, tls: bool = False, cert: str | None = None) -> None:  # fmt: skip
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"t-{account}-{os.urandom(3).hex()}",
                                  protocol=mqtt.MQTTv5)  # fmt: skip
        if account is not None and cert is None:
            self.client.username_pw_set(account, password if password is not None else broker.password(account))
        if tls or cert:
            kwargs = {"certfile": str(broker.tls / f"clients/{cert}.crt"),
                      "keyfile": str(broker.tls / f"clients/{cert}.key")} if cert else {}  # fmt: skip
            self.client.tls_set(ca_certs=str(broker.tls / "ca.crt"), cert_reqs=ssl.CERT_REQUIRED, **kwargs)
        self.port = port or (broker.cert_port if cert else broker.tls_port if tls else broker.port)
        self.received: list[mqtt.MQTTMessage] = []
        self.connected = threading.Event()
        self.refused: str | None = None
        self.client.on_connect = self._on_connect
        self.client.on_message = lambda c, u, m: self.received.append(m)

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:  # noqa: ANN001
        if reason_code.is_failure:
            self.refused = str(reason_code)
        else:
            self.connected.set()

    def connect(self, timeout_s: float = 10.0) -> Client:
        self.client.connect("127.0.0.1", self.port, keepalive=30)
        self.client.loop_start()
        deadline = time.monotonic() + timeout_s
        while not self.connected.is_set() and self.refused is None and time.monotonic() < deadline:
            time.sleep(0.02)
        return self

    def subscribe(self, topic: str) -> None:
        done = threading.Event()
        self.client.on_subscribe = lambda *a: done.set()
        self.client.subscribe(topic, qos=1)
        assert done.wait(5)

    def publish(self, topic: str, payload: bytes | str, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
