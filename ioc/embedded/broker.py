"""An embedded MQTT broker (rumqttd, through the ``iotcore`` wheel) on free local ports.

rumqttd serves MQTT 5 and MQTT 3.1.1 on separate listeners sharing one router: our own clients
use the MQTT 5 port (persistent sessions with expiry, shared subscriptions, response topics); the
3.1.1 port is there for devices and tools that only speak 3.1.1 (``mosquitto_pub`` defaults to it).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from ioc.net import free_port

log = logging.getLogger(__name__)

# Large enough for a camera snapshot and for the ingest worker to see (and dead-letter) an
# oversized payload itself instead of the broker silently dropping the publisher's connection.
MAX_PAYLOAD_BYTES = 16 * 1024 * 1024


@dataclass
class EmbeddedBroker:
    """rumqttd in a child process; ``stop()`` (or our exit) ends it."""

    data_dir: Path
    host: str = "127.0.0.1"
    v5_port: int = 0
    v4_port: int = 0
    max_inflight: int = 1000

    def __post_init__(self) -> None:
        self._broker = None
        self.v5_port = self.v5_port or free_port(self.host)
        self.v4_port = self.v4_port or free_port(self.host)

    def config_text(self) -> str:
        connections = (
            "connection_timeout_ms = 60000\n"
            f"max_payload_size = {MAX_PAYLOAD_BYTES}\n"
            f"max_inflight_count = {self.max_inflight}\n"
        )
        return (
            "id = 0\n\n[router]\nid = 0\nmax_connections = 10010\n"
            # Deep per-connection queues: a lagging persistent QoS 1 subscriber must not lose messages.
            "max_outgoing_packet_count = 10000\nmax_segment_size = 104857600\nmax_segment_count = 10\n\n"
            f'[v4.1]\nname = "v4-1"\nlisten = "{self.host}:{self.v4_port}"\nnext_connection_delay_ms = 1\n'
            f"[v4.1.connections]\n{connections}dynamic_filters = true\n\n"
            f'[v5.1]\nname = "v5-1"\nlisten = "{self.host}:{self.v5_port}"\nnext_connection_delay_ms = 1\n'
            f"[v5.1.connections]\n{connections}"
        )

    @property
    def url(self) -> str:
        """URL of the MQTT 5 listener, the one ioc's own clients use."""
        return f"mqtt://{self.host}:{self.v5_port}"

    @property
    def url_v311(self) -> str:
        return f"mqtt://{self.host}:{self.v4_port}"

    def start(self) -> EmbeddedBroker:
        from iotcore import Broker

        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = self.data_dir / "rumqttd.toml"
        config.write_text(self.config_text())
        self._broker = Broker(config_path=str(config))
        self._broker.start()
        log.info("embedded MQTT broker: MQTT 5 on %s, MQTT 3.1.1 on %s", self.url, self.url_v311)
        return self

    @property
    def pid(self) -> int | None:
        process = getattr(self._broker, "_process", None)
        return process.pid if process is not None else None

    def stop(self) -> None:
        if self._broker is not None:
            self._broker.stop()
            self._broker = None
