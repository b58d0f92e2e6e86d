"""``ioc radio serve``: sends the radio commands and follows what the clusters report.

Two loops share nothing but the database:

* paho's network thread receives the clusters' ``status`` (retained, so an **exclusive**
  subscription: MQTT 5 does not deliver retained messages to shared subscriptions; every radio
  service keeps the same idempotent copy), and their ``cmd/ack`` and ``event`` messages through the
  shared subscription ``$share/<group>/...`` (N services split them). Each message is stored in its
  own transaction before paho acknowledges it, so a crash loses nothing the device sent.
* :meth:`RadioService.tick` (every ``tick_s``) sends the commands that are due, times out those that
  ran out of attempts, finishes the broadcasts whose clusters have all settled (alerts for the ones
  that failed), turns new CAP messages into broadcasts and re-syncs clusters with a stale week.

Commands go out with QoS 1 and the MQTT 5 Response Topic / Correlation Data properties, signed for
their cluster (:mod:`ioc.radio.signing`) with their expiry as MQTT 5 Message Expiry.

Nothing a cluster sends can stop the service (issue #14): each message is handled on its own; one
that fails for any reason but the database being away is refused, written to ``dead_letters``
(source ``radio``, with its reason; a retained one only once) and counted
(``ioc_radio_refused_total``), and the loop goes on. An ack or playback event is taken only from the
cluster the command or broadcast was for: the sender is the device of the topic, which the broker's
ACL confines to its own login (docs/broker.md).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import threading
from collections import Counter
from datetime import datetime
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from prometheus_client import Counter as PromCounter
from psycopg.types.json import Jsonb
from pydantic import ValidationError

from ioc.clock import Clock, SystemClock
from ioc.contract.radio import PLAYBACK_EVENTS, PlaybackData, RadioStatusInfo
from ioc.contract.schemas import CommandAckV1, DeviceEventV1, StatusV1
from ioc.contract.topics import Channel, TopicError, build_topic, parse_topic, root_parts
from ioc.hub.events import LiveEvent, notify
from ioc.mqtt import BrokerAddress, connect_properties, make_client
from ioc.radio import broadcasts, commands
from ioc.radio.broadcasts import RadioPolicy
from ioc.radio.cap import CapPolicy, process_cap
from ioc.radio.signing import CommandKeys
from ioc.radio.sync import stale_clusters, sync_clusters
from ioc.storage.db import connect

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 64 * 1024  # a status, ack or playback event is a few hundred bytes
REFUSED = PromCounter(
    "ioc_radio_refused_total", "Cluster messages the radio service refused (dead-lettered)", ["channel", "code"]
)


class Refused(ValueError):
    """A cluster's message that is not taken: ``code`` is a bounded label, ``str()`` the reason."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code


class RadioService:
    def __init__(
        self,
        database_url: str,
        address: BrokerAddress,
        *,
        policy: RadioPolicy,
        cap: CapPolicy | None = None,
        root: str = "ioc/v1",
        share_group: str | None = "ioc-radio",
        client_id: str = "ioc-radio-0",
        clock: Clock | None = None,
        tick_s: float = 0.2,
        session_expiry_s: int = 3600,
        keys: CommandKeys | None = None,
    ) -> None:
        self.database_url = database_url
        self.address = address
        self.policy = policy
        self.cap = cap or CapPolicy()
        self.root = root
        self.share_group = share_group or None
        self.clock = clock or SystemClock()
        self.tick_s = tick_s
        self.session_expiry_s = session_expiry_s
        self.client = make_client(address, client_id)
        self.client.reconnect_delay_set(min_delay=1, max_delay=15)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.subscribed = threading.Event()
        self.stopping = threading.Event()
        self._msg_conn: psycopg.Connection | None = None
        self._tick_conn: psycopg.Connection | None = None
        self.sent = 0  # commands published (sends and re-sends), for tests and logs
        self.keys = keys or CommandKeys.from_settings()
        self.refused: Counter[str] = Counter()  # refusal code -> messages dead-lettered (tests, logs)

    # -- MQTT --------------------------------------------------------------------------------------

    def _filters(self) -> list[tuple[str, int]]:
        base = "/".join((*root_parts(self.root), "+", "radio", "+"))
        shared = f"$share/{self.share_group}/" if self.share_group else ""
        return [(f"{base}/status", 1), (f"{shared}{base}/cmd/ack", 1), (f"{shared}{base}/event", 1)]

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:  # noqa: ANN001
        if reason_code.is_failure:
            log.warning("broker refused the radio service: %s", reason_code)
            return
        client.subscribe(self._filters())

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:  # noqa: ANN001
        failed = [str(rc) for rc in reason_codes if rc.is_failure]
        if failed:
            log.error("radio subscriptions refused: %s", ", ".join(failed))
        else:
            self.subscribed.set()

    def start(self) -> None:
        # A persistent session: acks and events sent while we are away wait for us at the broker.
        self.client.connect_async(self.address.host, self.address.port, keepalive=30, clean_start=False,
                                  properties=connect_properties(self.session_expiry_s))  # fmt: skip
        self.client.loop_start()

    def stop(self) -> None:
        self.stopping.set()
        self.client.disconnect()
        self.client.loop_stop()
        for conn in (self._msg_conn, self._tick_conn):
            if conn is not None:
                conn.close()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        """One message, isolated: whatever it contains, the network thread goes on (paho would die on an
        exception raised here, and with it every command and ack)."""
        try:
            self._take(msg)
        except Exception as exc:  # noqa: BLE001 - isolation is the point: refuse this message, keep going
            log.exception("radio: unexpected failure on a message of %r", msg._topic[:200])
            self._refuse(msg, Refused("internal_error", f"{type(exc).__name__}: {str(exc)[:300]}"))

    def _take(self, msg: mqtt.MQTTMessage) -> None:
        try:
            topic = parse_topic(msg._topic.decode("utf-8"), self.root)
        except UnicodeDecodeError:
            self._refuse(msg, Refused("bad_topic", "topic is not UTF-8"))
            return
        except TopicError as exc:
            self._refuse(msg, Refused(exc.code, str(exc)))
            return
        if len(msg.payload) > MAX_MESSAGE_BYTES:
            self._refuse(msg, Refused("payload_too_large", f"{len(msg.payload)} bytes exceeds {MAX_MESSAGE_BYTES}"))
            return
        # Stored before paho acknowledges (it sends PUBACK when this returns). While the database is
        # away we keep retrying: if the broker drops us meanwhile, the persistent session redelivers
        # the message after the reconnect, and storing it twice changes nothing (unique message ids).
        attempt = 0
        while not self.stopping.is_set():
            attempt += 1
            try:
                conn = self._message_connection()
                with conn.transaction():
                    self.handle(conn, topic.device_id, topic.channel, msg.payload, unit_id=topic.unit_id)
                return
            except psycopg.OperationalError as exc:
                log.warning("radio: database unavailable (%s), attempt %d", exc, attempt)
                self._msg_conn = None
                self.stopping.wait(min(5.0, 0.2 * attempt))
            except Refused as exc:
                self._refuse(msg, exc)
                return
            except ValidationError as exc:
                first = exc.errors(include_url=False)[0] if exc.errors() else {"loc": (), "msg": str(exc)}
                where = ".".join(map(str, first.get("loc", ()))) or "(payload)"
                self._refuse(msg, Refused("schema_violation", f"{where}: {str(first.get('msg'))[:300]}"))
                return
            except (ValueError, psycopg.Error) as exc:  # a value PostgreSQL refused, an odd payload
                self._refuse(msg, Refused("rejected", f"{type(exc).__name__}: {str(exc)[:300]}"))
                return

    def _message_connection(self) -> psycopg.Connection:
        if self._msg_conn is None or self._msg_conn.closed:
            self._msg_conn = connect(self.database_url, application_name="ioc-radio")
        return self._msg_conn

    def _refuse(self, msg: mqtt.MQTTMessage, why: Refused) -> None:
        """Dead-letter ``msg`` with its reason (a retained one once) and count it; never raises."""
        topic = msg._topic.decode("utf-8", "backslashreplace")[:1024]
        channel = topic.rsplit("/", 1)[-1] if topic.rsplit("/", 1)[-1] in ("status", "ack", "event") else "other"
        self.refused[why.code] += 1
        REFUSED.labels(channel, why.code).inc()
        log.warning("radio: refused %s: %s", topic[:200], str(why)[:300])
        retained = hashlib.sha256(msg._topic + b"\0" + msg.payload).digest() if msg.retain else None
        try:
            conn = self._message_connection()
            with conn.transaction():
                conn.execute(
                    """INSERT INTO dead_letters (source, topic, payload, reason, detail, retained_key)
                       VALUES ('radio', %s, %s, %s, %s, %s)
                       ON CONFLICT (source, retained_key) WHERE retained_key IS NOT NULL DO NOTHING""",
                    (
                        topic.replace("\x00", ""),
                        bytes(msg.payload[:MAX_MESSAGE_BYTES]),
                        str(why).replace("\x00", ""),
                        Jsonb({"code": why.code, "bytes": len(msg.payload), "retained": bool(msg.retain)}),
                        retained,
                    ),  # fmt: skip
                )
        except Exception as exc:  # noqa: BLE001 - counted and logged above; the dead letter is best effort
            log.warning("radio: could not record the dead letter: %s", exc)
            self._msg_conn = None

    # -- what the clusters say -----------------------------------------------------------------------

    def handle(self, conn: psycopg.Connection, device_id: str, channel: Channel, payload: bytes,
               unit_id: str | None = None) -> None:  # fmt: skip
        """Store one message of a cluster (in the caller's transaction); :class:`Refused` when it is not
        taken. ``device_id`` (and ``unit_id``) are the topic's: the sender's identity."""
        known = conn.execute(
            "SELECT unit_id FROM devices WHERE id = %s AND kind = 'radio' AND enabled", (device_id,)
        ).fetchone()
        if known is None:
            raise Refused("unknown_device", f"unknown radio cluster {device_id!r}")
        if unit_id is not None and known[0] != unit_id:
            raise Refused("unit_mismatch", f"topic unit {unit_id!r} but cluster {device_id!r} is in {known[0]!r}")
        now = self.clock.now()
        if channel is Channel.STATUS:
            self._status(conn, device_id, known[0], StatusV1.model_validate_json(payload), now)
        elif channel is Channel.CMD_ACK:
            ack = CommandAckV1.model_validate_json(payload)
            try:
                found = commands.apply_ack(conn, ack.correlation_id, ack.accepted, ack.reason, ack.ts, sender=device_id)
            except commands.ForeignAck as exc:
                raise Refused("foreign_ack", str(exc)) from None
            if found is None:
                log.info("radio: ack for unknown or settled command %s from %s", ack.correlation_id, device_id)
                return
            _, command, broadcast_id = found
            if command == "play" and broadcast_id is not None:
                broadcasts.on_ack(conn, device_id, broadcast_id, ack.accepted, ack.reason, ack.ts, now)
        elif channel is Channel.EVENT:
            event = DeviceEventV1.model_validate_json(payload)
            if event.type in PLAYBACK_EVENTS:
                self._playback(conn, device_id, event, now)
        else:
            raise Refused("unknown_channel", f"{channel.value} is not a channel the radio service reads")

    def _status(self, conn: psycopg.Connection, device_id: str, unit_id: str, status: StatusV1, now: datetime) -> None:
        # Arrival order, not ``ts``, decides: a Last Will carries the time it was registered at connect,
        # before the statuses it follows; the broker keeps one topic's messages in order.
        try:
            info = RadioStatusInfo.model_validate(status.info) if status.state == "online" else RadioStatusInfo()
        except ValidationError as exc:  # odd vendor facts must not hide that the cluster is online
            log.warning("radio: status info of %s ignored: %s", device_id, exc.errors()[0]["msg"])
            info = RadioStatusInfo()
        online = status.state == "online"
        before = conn.execute(
            "SELECT online, playing FROM radio_cluster_state WHERE device_id = %s", (device_id,)
        ).fetchone()
        conn.execute(
            """INSERT INTO radio_cluster_state AS s (device_id, online, playing, item, volume, power, battery_pct,
                                                firmware, schedule_version, reason, last_seen, updated_at)
               VALUES (%(d)s, %(online)s, %(playing)s, %(item)s, %(volume)s, %(power)s, %(battery)s, %(fw)s,
                       %(version)s, %(reason)s, %(ts)s, %(now)s)
               ON CONFLICT (device_id) DO UPDATE SET online = EXCLUDED.online, playing = EXCLUDED.playing,
                   item = EXCLUDED.item, volume = coalesce(EXCLUDED.volume, s.volume),
                   power = coalesce(EXCLUDED.power, s.power),
                   battery_pct = coalesce(EXCLUDED.battery_pct, s.battery_pct),
                   firmware = coalesce(EXCLUDED.firmware, s.firmware),
                   schedule_version = coalesce(EXCLUDED.schedule_version, s.schedule_version),
                   reason = EXCLUDED.reason, last_seen = greatest(s.last_seen, EXCLUDED.last_seen),
                   updated_at = EXCLUDED.updated_at""",
            {
                "d": device_id,
                "online": online,
                "playing": online and info.playing,
                "item": info.item,
                "volume": info.volume,
                "power": info.power,
                "battery": info.battery_pct,
                "fw": info.firmware,
                "version": info.schedule_version,
                "reason": status.reason,
                "ts": status.ts,
                "now": now,
            },  # fmt: skip
        )
        if before is None or (before[0], before[1]) != (online, online and info.playing):
            notify(conn, LiveEvent(topic="radio", type="radio.status", unit_id=unit_id, at=now,
                                   data={"cluster_id": device_id, "online": online,
                                         "playing": online and info.playing, "item": info.item}))  # fmt: skip

    def _playback(self, conn: psycopg.Connection, device_id: str, event: DeviceEventV1, now: datetime) -> None:
        data = PlaybackData.model_validate(event.data, strict=False)
        if (
            data.broadcast_id is not None
            and conn.execute(
                "SELECT 1 FROM radio_playbacks WHERE broadcast_id = %s AND device_id = %s",
                (data.broadcast_id, device_id),
            ).fetchone()
            is None
        ):
            raise Refused("foreign_event", f"{event.type} from {device_id!r} for broadcast {data.broadcast_id}, "
                                           "which was not sent to it")  # fmt: skip
        inserted = conn.execute(
            """INSERT INTO radio_plays (device_id, message_id, event, item, broadcast_id, schedule_id, at,
                                        scheduled_for, position_s, reason, buffered)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
               ON CONFLICT (device_id, message_id) DO NOTHING RETURNING id""",
            (
                device_id,
                event.id,
                event.type,
                data.item,
                data.broadcast_id,
                data.schedule_id,
                event.ts,
                data.scheduled_for,
                data.position_s,
                data.reason,
                data.buffered,
            ),  # fmt: skip
        ).fetchone()
        if inserted is None:
            return  # a redelivery: already counted
        if data.broadcast_id is not None:
            broadcasts.on_playback(conn, device_id, data.broadcast_id, event.type, data, event.ts, now)

    # -- the periodic work ---------------------------------------------------------------------------

    def publish(self, out: commands.Outgoing) -> None:
        topic = build_topic(out.unit_id, "radio", out.device_id, Channel.CMD, self.root)
        props = Properties(PacketTypes.PUBLISH)
        props.ResponseTopic = build_topic(out.unit_id, "radio", out.device_id, Channel.CMD_ACK, self.root)
        props.CorrelationData = out.correlation_id.encode()
        command = json.loads(out.payload)
        expires = command.get("expires_at")
        left = (datetime.fromisoformat(expires) - self.clock.now()).total_seconds() if expires else None
        props.MessageExpiryInterval = max(1, math.ceil(left)) if left is not None else max(
            1, int(self.policy.ack_timeout_s * self.policy.max_attempts))  # fmt: skip
        self.client.publish(topic, self.keys.sign(out.device_id, command), qos=1, properties=props)
        self.sent += 1

    def tick(self) -> None:
        """One round of the periodic work, in one transaction."""
        if self._tick_conn is None or self._tick_conn.closed:
            self._tick_conn = connect(self.database_url, application_name="ioc-radio-tick")
        conn = self._tick_conn
        now = self.clock.now()
        with conn.transaction():
            process_cap(conn, now=now, cap=self.cap, policy=self.policy)
            stale = stale_clusters(conn)
            if stale:
                sync_clusters(conn, stale, now=now, policy=self.policy)
            sends, expired = commands.due(conn, now)
            for gone in expired:
                log.info("radio: %s to %s timed out: %s", gone.command, gone.device_id, gone.reason)
                if gone.command == "play" and gone.broadcast_id is not None:
                    broadcasts.on_timeout(conn, gone.device_id, gone.broadcast_id, gone.reason, now)
            broadcasts.settle(conn, now=now, grace_s=self.policy.playback_grace_s)
        # Sent only once committed: a cluster answers within milliseconds, and its ack or playback event
        # must find the command and the broadcast it belongs to (a broadcast started by this very tick,
        # from CAP, was refused as "not sent to it" otherwise: measured). A crash between the commit and
        # here loses no command: it is sent again when its ack does not come (commands.due).
        for out in sends:
            self.publish(out)

    def run(self) -> int:
        """Tick until :meth:`stop` (or SIGTERM through the CLI)."""
        self.start()
        while not self.stopping.wait(self.tick_s):
            try:
                self.tick()
            except psycopg.OperationalError as exc:
                log.warning("radio: database unavailable: %s", exc)
                self._tick_conn = None
        return 0
