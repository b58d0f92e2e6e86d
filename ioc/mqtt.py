"""MQTT connection details shared by every ioc process.

One function turns the configured URL into a connected-ready paho-mqtt 2 client speaking MQTT 5,
so that ingest, the API, the hub, feeds and the simulator all authenticate and identify themselves
the same way.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, replace
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int
    username: str | None = None
    password: str | None = None
    tls: bool = False
    ca_file: str | None = None  # the CA that signed the broker's certificate (`ioc broker certs`); None: system CAs

    @classmethod
    def from_url(cls, url: str, username: str | None = None, password: str | None = None) -> BrokerAddress:
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts", "tcp") or not parts.hostname:
            raise ValueError(f"not an MQTT URL: {url!r} (expected mqtt://[user:password@]host:port)")
        tls = parts.scheme == "mqtts"
        return cls(
            host=parts.hostname,
            port=parts.port or (8883 if tls else 1883),
            username=username or (unquote(parts.username) if parts.username else None),
            password=password or (unquote(parts.password) if parts.password else None),
            tls=tls,
        )


def broker_address(url: str) -> BrokerAddress:
    """The address of ``url`` with credentials from IOC_MQTT_USERNAME/PASSWORD when set."""
    from ioc.settings import get_settings

    settings = get_settings()
    password = settings.mqtt_password.get_secret_value() if settings.mqtt_password else None
    address = BrokerAddress.from_url(url, settings.mqtt_username, password)
    ca_file = getattr(settings, "mqtt_ca_file", None)
    return replace(address, ca_file=str(ca_file)) if ca_file else address


def make_client(address: BrokerAddress, client_id: str = "") -> mqtt.Client:
    """A paho-mqtt 2 client for MQTT 5 with credentials and TLS applied; not yet connected."""
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=mqtt.MQTTv5,
    )
    if address.username:
        client.username_pw_set(address.username, address.password)
    if address.tls:
        client.tls_set(ca_certs=address.ca_file, cert_reqs=ssl.CERT_REQUIRED)
    return client


def connect_properties(session_expiry_s: int | None = None) -> Properties:
    """CONNECT properties; a session expiry makes the broker keep our session while we are away."""
    props = Properties(PacketTypes.CONNECT)
    if session_expiry_s is not None:
        props.SessionExpiryInterval = session_expiry_s
    return props


class MqttLink:
    """A long-lived client running paho's network thread, reconnecting by itself.

    The API uses it to publish (commands, alerts) and ``/readyz`` asks it whether the broker is
    reachable: a real MQTT session, not just an open TCP port.
    """

    def __init__(self, address: BrokerAddress, client_id: str) -> None:
        self.address = address
        self.client = make_client(address, client_id)
        self.client.reconnect_delay_set(min_delay=1, max_delay=30)
        self.last_error: str | None = "not connected yet"
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:  # noqa: ANN001
        self.last_error = None if not reason_code.is_failure else f"broker refused: {reason_code}"

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:  # noqa: ANN001
        self.last_error = f"disconnected: {reason_code}"

    def start(self) -> None:
        self.client.connect_async(self.address.host, self.address.port, keepalive=30)
        self.client.loop_start()

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    @property
    def connected(self) -> bool:
        return self.client.is_connected()
