"""One simulated loudspeaker cluster that behaves like the hardware (docs/radio.md).

It connects with MQTT 5 and a Last Will (retained ``status`` offline), publishes its retained status,
obeys the commands on its ``cmd`` topic and answers each on the MQTT 5 Response Topic with the
command's correlation id (a command received twice is answered twice and done once). It plays
audio in scaled real time from the recording's real duration (``time_scale`` simulated seconds per
wall second), reporting ``playback.started`` and ``playback.finished`` or ``playback.interrupted``
with the position. It stores the week sent by ``sync_schedule`` and plays it from its own clock
(an injectable :class:`~ioc.clock.Clock`), with or without a link; what happens while the link is
down is buffered and reported when it comes back.

It trusts nothing on its command topic that the IOC did not sign for it (:mod:`ioc.radio.signing`):
an unsigned, forged, expired, replayed or other-device command is refused with a reason, kept in
:attr:`SimCluster.refusals` and reported as a ``command.refused`` event; it is never acked (a forged
command carrying a real correlation id must not settle the real one) and answers go only to its own
ack topic, whatever Response Topic a message names.

Faults (:class:`Faults`) make it misbehave on purpose: never come online, reject commands with a
reason, never answer, stop half-way through, or lose power part-way (the broker publishes its Last
Will; the interruption is reported when power is back).
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from ioc.clock import Clock, SystemClock
from ioc.contract.radio import (
    PlayCommand,
    RebootCommand,
    ScheduleItem,
    StopCommand,
    SyncScheduleCommand,
    VolumeCommand,
)
from ioc.contract.topics import Channel, build_topic
from ioc.mqtt import BrokerAddress, make_client
from ioc.radio.schedules import starts_between
from ioc.radio.signing import CommandKeys, Refusal

log = logging.getLogger("feeds.radio")


@dataclass
class Faults:
    """What a cluster does wrong; all off by default."""

    offline: bool = False  # never connects (its retained status says offline)
    reject: str | None = None  # answers every command "rejected" with this reason
    no_answer: bool = False  # receives commands and never answers them
    stop_at: float | None = None  # stops playing at this share of the item (0.5: half-way), reason "fault"
    lose_power_at: float | None = None  # loses power at this share of the item; back after power_off_s
    power_off_s: float = 1.0
    received: list[str] = field(default_factory=list)  # correlation ids received, in order (tests)


@dataclass
class _Playing:
    item: str
    broadcast_id: int | None
    schedule_id: int | None
    duration_s: float  # of the whole item, all repeats
    repeat: int
    priority: str
    scheduled_for: datetime | None
    cancel: threading.Event = field(default_factory=threading.Event)
    reason: str = "stopped"


class SimCluster:
    def __init__(
        self,
        cluster_id: str,
        unit_id: str,
        address: BrokerAddress,
        *,
        root: str = "ioc/v1",
        clock: Clock | None = None,
        time_scale: float = 1.0,
        faults: Faults | None = None,
        tick_s: float = 0.05,
        keys: CommandKeys | None = None,
    ) -> None:
        self.id = cluster_id
        self.verifier = (keys or CommandKeys.from_settings()).verifier(cluster_id)
        self.refusals: list[Refusal] = []  # commands refused, with their reason (tests, logs)
        self.unit = unit_id
        self.address = address
        self.root = root
        self.clock = clock or SystemClock()
        self.time_scale = time_scale
        self.faults = faults or Faults()
        self.tick_s = tick_s
        self.volume = 70
        self.boot_s = 2.0
        self.week: list[ScheduleItem] = []
        self.week_version: str | None = None
        self._answers: dict[str, tuple[bool, str | None]] = {}
        self._playing: _Playing | None = None
        self._lock = threading.RLock()
        self._buffer: list[tuple[str, bytes]] = []
        self._link_up = False
        self._powered = True
        self._nonce = secrets.token_hex(3)
        self._counter = 0
        self._stop = threading.Event()
        self._last_tick = self.clock.now()
        self.connected = threading.Event()
        self.client = self._new_client()
        self._ticker = threading.Thread(target=self._run_week, name=f"radio-{cluster_id}", daemon=True)

    @property
    def last_tick(self) -> datetime:
        """The device time up to which its week has been looked at (tests wait on it)."""
        return self._last_tick

    @property
    def buffered(self) -> int:
        """Reports waiting for the link to come back."""
        with self._lock:
            return len(self._buffer)

    # -- link --------------------------------------------------------------------------------------

    def _topic(self, channel: Channel) -> str:
        return build_topic(self.unit, "radio", self.id, channel, self.root)

    def _new_client(self) -> mqtt.Client:
        client = make_client(self.address, f"sim-radio-{self.id}-{self._nonce}")
        will = Properties(PacketTypes.WILLMESSAGE)
        client.will_set(self._topic(Channel.STATUS), self._status_payload("offline", "last_will"), qos=1,
                        retain=True, properties=will)  # fmt: skip
        client.on_connect = self._on_connect
        client.on_message = self._on_message
        client.on_disconnect = lambda *a: self.connected.clear()
        return client

    def start(self) -> None:
        if self.faults.offline:
            threading.Thread(target=self._drop_off, daemon=True).start()
        else:
            self.link_up()
        self._ticker.start()

    def _drop_off(self) -> None:
        """An offline cluster: it was seen once, then its link died (the broker keeps its Last Will)."""
        self.link_up()
        if self.connected.wait(10):
            self.link_down()

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            if self._playing:
                self._playing.cancel.set()
        if self._link_up:
            # Switched off: the broker publishes the Last Will, so the wall shows it offline.
            self.client.disconnect(reasoncode=ReasonCode(PacketTypes.DISCONNECT, identifier=4))
            self.client.loop_stop()
        self._link_up = False

    def link_up(self) -> None:
        """(Re)connect; buffered reports are sent once connected."""
        self._link_up = True
        self.client.connect_async(self.address.host, self.address.port, keepalive=10, clean_start=True)
        self.client.loop_start()

    def link_down(self) -> None:
        """The link drops: the broker publishes the Last Will; the cluster goes on with its week."""
        self._link_up = False
        self.connected.clear()
        # MQTT 5 reason 0x04 "Disconnect with Will Message": what the broker does when a link dies.
        self.client.disconnect(reasoncode=ReasonCode(PacketTypes.DISCONNECT, identifier=4))
        self.client.loop_stop()
        self.client = self._new_client()

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:  # noqa: ANN001
        if reason_code.is_failure:
            return
        client.subscribe(self._topic(Channel.CMD), qos=1)
        self._publish_status()
        with self._lock:
            pending, self._buffer = self._buffer, []
            self.connected.set()
        for topic, payload in pending:  # what happened while the link was down, in order
            client.publish(topic, payload, qos=1)

    # -- what it says --------------------------------------------------------------------------------

    def _envelope(self, **fields: Any) -> dict[str, Any]:
        with self._lock:
            self._counter += 1
            mid = f"{self.id}-{self._nonce}-{self._counter}"
        return {"v": 1, "id": mid, "ts": fields.pop("ts", None) or self.clock.now().isoformat(), **fields}

    def _status_payload(self, state: str, reason: str | None = None) -> bytes:
        body = self._envelope(state=state)
        if reason:
            body["reason"] = reason
        if state == "online":
            playing = self._playing
            body["info"] = {"firmware": "sim-2.4.1", "playing": playing is not None,
                            "item": playing.item if playing else None, "volume": self.volume, "power": "mains",
                            "battery_pct": 100.0, "schedule_version": self.week_version}  # fmt: skip
        return json.dumps(body).encode()

    def _publish_status(self) -> None:
        if self._link_up:
            self.client.publish(self._topic(Channel.STATUS), self._status_payload("online"), qos=1, retain=True)

    def _send(self, channel: Channel, body: dict[str, Any], topic: str | None = None) -> None:
        topic = topic or self._topic(channel)
        with self._lock:
            if not (self._link_up and self.connected.is_set()):
                if channel is Channel.EVENT:
                    body.setdefault("data", {})["buffered"] = True
                    self._buffer.append((topic, json.dumps(body).encode()))
                return
        self.client.publish(topic, json.dumps(body).encode(), qos=1)

    def _ack(self, correlation_id: str, accepted: bool, reason: str | None, response_topic: str | None) -> None:
        body = self._envelope(correlation_id=correlation_id, accepted=accepted)
        if reason:
            body["reason"] = reason
        self._send(Channel.CMD_ACK, body, topic=response_topic)

    def _event(self, kind: str, playing: _Playing, position_s: float, at: datetime, reason: str | None = None) -> None:
        data: dict[str, Any] = {"item": playing.item, "position_s": round(position_s, 3),
                                "duration_s": round(playing.duration_s, 3),
                                "repeats_done": int(position_s // (playing.duration_s / playing.repeat) + 1e-9)
                                if playing.duration_s else 0}  # fmt: skip
        if playing.broadcast_id is not None:
            data["broadcast_id"] = playing.broadcast_id
        if playing.schedule_id is not None:
            data["schedule_id"] = playing.schedule_id
        if playing.scheduled_for is not None:
            data["scheduled_for"] = playing.scheduled_for.isoformat()
        if reason:
            data["reason"] = reason
        self._send(Channel.EVENT, self._envelope(ts=at.isoformat(), type=kind, data=data))

    # -- commands ------------------------------------------------------------------------------------

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            self._command(msg)
        except Exception:  # noqa: BLE001 - one bad message must not kill the device's MQTT thread
            log.exception("%s: failed on a command message", self.id)

    def _command(self, msg: mqtt.MQTTMessage) -> None:
        own_ack = self._topic(Channel.CMD_ACK)  # the only place it answers, whatever the message says
        checked = self.verifier.check(msg.payload, self.clock.now())
        if isinstance(checked, Refusal):
            self._refuse(checked)
            return
        command = checked
        cid = command.correlation_id
        self.faults.received.append(cid)
        if self.faults.no_answer or not self._powered:
            return
        if cid in self._answers:  # sent again: answer again, do it once
            accepted, reason = self._answers[cid]
            self._ack(cid, accepted, reason, own_ack)
            return
        accepted, reason = self._obey(command)
        self._answers[cid] = (accepted, reason)
        self._ack(cid, accepted, reason, own_ack)

    def _refuse(self, refusal: Refusal) -> None:
        log.warning("%s: refused a command: %s", self.id, refusal.reason)
        with self._lock:
            self.refusals.append(refusal)
        data: dict[str, Any] = {"reason": refusal.reason[:200]}
        if refusal.correlation_id:
            data["correlation_id"] = refusal.correlation_id[:64]
        self._send(Channel.EVENT, self._envelope(type="command.refused", data=data))

    def _obey(self, command: Any) -> tuple[bool, str | None]:
        if self.faults.reject:
            return False, self.faults.reject
        if isinstance(command, PlayCommand):
            with self._lock:
                current = self._playing
                if current and current.priority == "urgent" and command.priority != "urgent":
                    return False, f"busy: urgent item {current.item} playing"
            item = _Playing(command.item, command.broadcast_id, None, command.audio.duration_s * command.repeat,
                            command.repeat, command.priority, None)  # fmt: skip
            threading.Thread(target=self._play, args=(item, self.clock.now()), daemon=True).start()
            return True, None
        if isinstance(command, StopCommand):
            with self._lock:
                if self._playing and (command.item is None or self._playing.item == command.item):
                    self._playing.reason = "stopped"
                    self._playing.cancel.set()
            return True, None
        if isinstance(command, VolumeCommand):
            self.volume = command.volume
            self._publish_status()
            return True, None
        if isinstance(command, SyncScheduleCommand):
            with self._lock:
                self.week, self.week_version = list(command.items), command.version
            self._publish_status()
            return True, None
        if isinstance(command, RebootCommand):
            threading.Timer(0.2, self._reboot).start()
            return True, None
        return False, "unknown command"

    def _reboot(self) -> None:
        self.link_down()
        if not self._stop.wait(self.boot_s):  # a restart takes a moment; the Last Will shows it meanwhile
            self.link_up()

    # -- playing -----------------------------------------------------------------------------------

    def _play(self, item: _Playing, started: datetime) -> None:
        """Play ``item`` in scaled real time; preempt what plays (the caller checked priorities)."""
        with self._lock:
            if self._playing is not None:
                self._playing.reason = "preempted"
                self._playing.cancel.set()
            self._playing = item
        self._event("playback.started", item, 0.0, started)
        self._publish_status()
        wall_total = item.duration_s / self.time_scale
        fault_share = self.faults.stop_at if self.faults.stop_at is not None else self.faults.lose_power_at
        wall_until = wall_total * fault_share if fault_share is not None else wall_total
        wall_start = time.monotonic()
        cancelled = item.cancel.wait(wall_until)
        wall_played = min(time.monotonic() - wall_start, wall_until) if cancelled else wall_until
        position = min(wall_played * self.time_scale, item.duration_s)
        at = started + timedelta(seconds=position)
        if cancelled:
            self._event("playback.interrupted", item, position, at, item.reason)
        elif self.faults.lose_power_at is not None:
            self._power_loss(item, position, at)
        elif self.faults.stop_at is not None:
            self._event("playback.interrupted", item, position, at, "fault: amplifier stopped")
        else:
            self._event("playback.finished", item, item.duration_s, at)
        with self._lock:
            if self._playing is item:
                self._playing = None
        self._publish_status()

    def _power_loss(self, item: _Playing, position: float, at: datetime) -> None:
        self._powered = False
        self.link_down()
        self._stop.wait(self.faults.power_off_s)
        self._event("playback.interrupted", item, position, at, "power_lost")  # buffered: the link is down
        self._powered = True
        if not self._stop.is_set():
            self.link_up()

    def _run_week(self) -> None:
        """The device's own clock: start the stored programmes when they are due, link or not."""
        while not self._stop.wait(self.tick_s):
            now = self.clock.now()
            with self._lock:
                week = list(self.week)
            due = starts_between(week, self._last_tick, now) if now > self._last_tick else []
            self._last_tick = max(self._last_tick, now)
            for at, entry in due:
                with self._lock:
                    busy = self._playing is not None and self._playing.priority == "urgent"
                if busy or not self._powered:
                    continue  # an urgent broadcast has the loudspeakers: the programme is skipped
                item = _Playing(entry.item, None, entry.schedule_id, entry.audio.duration_s * entry.repeat,
                                entry.repeat, "normal", at)  # fmt: skip
                threading.Thread(target=self._play, args=(item, at), daemon=True).start()
