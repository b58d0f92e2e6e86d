"""The ingest worker: MQTT in, PostgreSQL out, acknowledged only after the commit.

How one message flows (read top to bottom, it is the order things happen):

1. paho's network thread receives a QoS 1 PUBLISH on the worker's subscription
   (``$share/<group>/<root>/#``: N workers with the same group split the load) and appends it to a
   bounded :class:`Buffer`. Nothing is acknowledged yet.
2. The writer loop (:meth:`Worker.run`, the calling thread) takes a batch (``batch_size`` messages
   or ``batch_wait_s`` after the first one; at once, with whatever is queued, when an ``event`` or
   ``status`` message is among them), validates every message
   (:class:`ingest.validate.Validator`), and writes rows, dead letters and presence changes in one
   transaction (:class:`ingest.writer.BatchWriter`).
3. After the commit, and only then, it acknowledges the batch's messages (PUBACK) and publishes
   the presence changes.

Faults:

* **Database unreachable**: the batch is kept and retried with exponential backoff; nothing is
  acknowledged, so the broker keeps sending at most ``buffer_size`` messages (the MQTT 5 Receive
  Maximum the worker announces) and keeps the rest queued. When the buffer is full the network
  thread blocks, i.e. stops reading. On recovery the batch and the buffer are flushed.
* **Broker restart / network loss**: paho reconnects with backoff, ``clean_start=False`` plus a
  session expiry resume the session, and the broker redelivers what was not acknowledged.
  Acknowledgements are tied to the connection they belong to (a *generation*): a batch received
  on an earlier connection is stored but not acknowledged on the new one (its packet ids mean
  nothing there); its redelivered copies are stored once (``ON CONFLICT DO NOTHING``) and
  acknowledged.
* **Crash (SIGKILL)**: what was committed but not acknowledged is redelivered and skipped by the
  conflict clause; what was not committed is redelivered and stored. Exactly once in the tables.
* **SIGTERM / SIGINT**: finish the current batch (and what is already buffered), acknowledge it,
  disconnect, exit 0.

Presence (see :mod:`ingest.presence`): every valid message is a sign of life; ``status`` messages
(and the Last Will) set online/offline; every ``presence_check_s`` the worker marks offline the
devices silent for longer than their expected interval, using the injected :class:`ioc.clock.Clock`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from ingest import metrics
from ingest.alerting import AlertFeed
from ingest.presence import Change, Signal, apply_signals, expire_silent
from ingest.reports import ReportIntake
from ingest.sectors import SectorFeed
from ingest.validate import (
    Accepted,
    DeviceDirectory,
    Inbound,
    Rejected,
    Validator,
    clean_text,
    dead_letter_payload,
    load_devices,
)
from ingest.writer import BatchWriter, DatabaseUnavailable, DeadLetter, WriteResult
from ioc.clock import Clock, SystemClock
from ioc.contract.topics import subscription
from ioc.kpi.dossiers import refresh as refresh_dossiers
from ioc.mqtt import BrokerAddress

log = logging.getLogger("ingest.worker")

# Messages that end the batch wait (Buffer): what an operator may be waiting to see on the wall.
_URGENT_CHANNELS = (b"/event", b"/status")


@dataclass
class WorkerConfig:
    """Everything a worker needs; :func:`config_from_settings` fills it from ``IOC_*`` settings."""

    database_url: str
    mqtt_url: str
    mqtt_username: str | None = None
    mqtt_password: str | None = None
    topic_root: str = "ioc/v1"
    share_group: str | None = "ioc-ingest"  # None or "": an exclusive subscription
    client_id: str = field(default_factory=lambda: f"ioc-ingest-{socket.gethostname()}-0")
    session_expiry_s: int = 86_400
    keepalive_s: int = 30
    batch_size: int = 1000
    batch_wait_s: float = 0.05
    buffer_size: int = 5000
    db_backoff_min_s: float = 0.2
    db_backoff_max_s: float = 5.0
    stop_grace_s: float = 10.0
    presence_check_s: float = 5.0
    presence_flush_s: float = 1.0
    telemetry_retention_days: int = 90
    events_retention_days: int = 730
    media_root: Path | None = None
    ready_file: Path | None = None  # touched once the subscription is acknowledged (tests, bench)
    commit_trace: Path | None = None  # bench: one line per commit, "<commit epoch> <ts epoch>..." of telemetry
    alert_rules: Path | None = None  # config/alert-rules.yaml: alerts raised in the batch's transaction
    district_config: Path | None = None  # report categories: MQTT reports become report rows
    sector_thresholds: Path | None = None  # config/sector-thresholds.yaml: sector alerts (figures are kept anyway)


def config_from_settings(settings: Any, **overrides: Any) -> WorkerConfig:
    """A :class:`WorkerConfig` from :class:`ioc.settings.Settings` plus explicit overrides."""
    if not settings.database_url or not settings.mqtt_url:
        raise ValueError("IOC_DATABASE_URL and IOC_MQTT_URL must be set")
    values: dict[str, Any] = {
        "database_url": settings.database_url,
        "mqtt_url": settings.mqtt_url,
        "mqtt_username": settings.mqtt_username,
        "mqtt_password": settings.mqtt_password.get_secret_value() if settings.mqtt_password else None,
        "topic_root": settings.mqtt_topic_root,
        "share_group": settings.mqtt_share_group or None,
        "telemetry_retention_days": settings.telemetry_retention_days,
        "events_retention_days": settings.events_retention_days,
        "media_root": Path(settings.var_dir) / "media",
        "alert_rules": Path(settings.alert_rules) if settings.alert_rules else None,
        "district_config": Path(settings.district_config),
        "sector_thresholds": Path(settings.sector_thresholds) if settings.sector_thresholds else None,
    }
    values.update({k: v for k, v in overrides.items() if v is not None})
    return WorkerConfig(**values)


class Buffer:
    """Messages received and not yet committed, at most ``capacity`` of them.

    ``put`` blocks the network thread when full: it stops reading from the socket and the broker
    keeps the rest (normally the Receive Maximum already stops the broker before that).

    Why urgent messages end the wait: the batch window (``batch_wait_s``) buys throughput for
    telemetry, but an alarm waited up to that long before its commit, about half of the 100 ms an
    operator's wall has from a camera's event to the screen (docs/performance.md, "Fan-out"). An
    urgent message (``Inbound.urgent``: events and status changes) is committed with whatever is
    queued at that moment; under load the batches still fill, since messages queue during a commit.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._items: deque[Inbound] = deque()
        self._cond = threading.Condition()
        self.want = 1  # the writer is waiting for this many messages
        self._urgent = 0  # urgent messages among _items

    def __len__(self) -> int:
        return len(self._items)

    def put(self, item: Inbound, stop: threading.Event) -> None:
        with self._cond:
            while len(self._items) >= self.capacity and not stop.is_set():
                self._cond.wait(0.5)
            self._items.append(item)
            n = len(self._items)
            if item.urgent:
                self._urgent += 1
            if n == 1 or n >= self.want or item.urgent:
                self._cond.notify_all()

    def take(self, max_items: int, max_wait_s: float, stop: threading.Event, idle_s: float = 0.2) -> list[Inbound]:
        """Up to ``max_items`` messages, once that many are here or ``max_wait_s`` after the oldest
        arrived; ``[]`` after ``idle_s`` without any message or when ``stop`` is set."""
        items = self._items
        with self._cond:
            if not items:
                self._cond.wait(idle_s)
                if not items:
                    return []
            deadline = items[0].received_mono + max_wait_s
            self.want = max_items
            while len(items) < max_items and not self._urgent and not stop.is_set():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            self.want = 1
            return self._pop(max_items)

    def take_nowait(self, max_items: int) -> list[Inbound]:
        with self._cond:
            return self._pop(max_items)

    def _pop(self, max_items: int) -> list[Inbound]:
        n = min(max_items, len(self._items))
        batch = [self._items.popleft() for _ in range(n)]
        if self._urgent:
            self._urgent -= sum(1 for item in batch if item.urgent)
        self._cond.notify_all()
        return batch


@dataclass
class BatchOutcome:
    accepted: int = 0
    stored: int = 0
    dead_lettered: int = 0
    ignored: int = 0
    duplicates: int = 0
    changes: list[Change] = field(default_factory=list)


class Worker:
    """One ingest worker. ``run()`` blocks until :meth:`stop`; use it in-process (tests) or from
    ``ioc ingest``. ``clock`` drives presence and validation time checks."""

    def __init__(self, config: WorkerConfig, clock: Clock | None = None) -> None:
        self.config = config
        self.clock: Clock = clock or SystemClock()
        self.address = BrokerAddress.from_url(config.mqtt_url, config.mqtt_username, config.mqtt_password)
        self.subscription = subscription(config.topic_root, config.share_group or None)
        self.buffer = Buffer(config.buffer_size)
        self.writer = BatchWriter(self._connect_db)
        self.directory = DeviceDirectory(self._load_directory)
        self.validator = Validator(
            self.directory,
            root=config.topic_root,
            now=self.clock.now,
            telemetry_retention_days=config.telemetry_retention_days,
            events_retention_days=config.events_retention_days,
            media_root=config.media_root,
        )
        self._stop = threading.Event()
        self._subscribed = threading.Event()
        self._ack_lock = threading.Lock()
        self._generation = 0
        self.subscriptions = 0  # SUBACKs received: one per (re)connection
        self._barrier_done = threading.Event()
        self._barrier_mid: int | None = None
        self._online: set[str] = set()  # devices this worker believes online
        self._touched: dict[str, datetime] = {}  # signs of life of those, flushed every presence_flush_s
        self._next_flush = 0.0
        self._next_expiry = 0.0
        self._directory_failed = False
        self._trace = None
        self.stats = Counter()  # stored, duplicates, dead_lettered, ignored, batches, acked
        self.alerts = AlertFeed.from_file(config.alert_rules) if config.alert_rules else None
        self.reports = ReportIntake(config.district_config) if config.district_config else None
        self.sectors = SectorFeed.from_file(config.sector_thresholds, self.alerts.policies if self.alerts else None)
        self.client = self._make_client()

    # -- database ----------------------------------------------------------------------------------
    def _connect_db(self) -> psycopg.Connection:
        conn = psycopg.connect(
            self.config.database_url, connect_timeout=5, application_name=f"ioc-ingest:{self.config.client_id}"
        )
        conn.execute("SET TIME ZONE 'UTC'")
        conn.commit()
        return conn

    def _load_directory(self):  # noqa: ANN202 - see DeviceDirectory
        try:
            result = load_devices(self.writer.ensure_connection())
        except Exception:
            self._directory_failed = True
            self.writer.close()
            raise
        self._directory_failed = False
        return result

    # -- MQTT --------------------------------------------------------------------------------------
    def _make_client(self) -> mqtt.Client:
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=self.config.client_id,
            protocol=mqtt.MQTTv5,
            manual_ack=True,
        )
        if self.address.username:
            client.username_pw_set(self.address.username, self.address.password)
        if self.address.tls:
            import ssl

            client.tls_set(cert_reqs=ssl.CERT_REQUIRED)
        client.reconnect_delay_set(min_delay=1, max_delay=10)
        if log.isEnabledFor(logging.DEBUG):
            client.enable_logger(logging.getLogger("ingest.paho"))
        client.max_inflight_messages_set(100)  # our own presence publications
        client.on_pre_connect = self._on_pre_connect
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        return client

    def _connect_properties(self) -> Properties:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self.config.session_expiry_s
        # The broker sends at most this many unacknowledged messages: our buffer is the flow control.
        props.ReceiveMaximum = max(1, min(65535, self.config.buffer_size))
        return props

    def _new_generation(self) -> None:
        with self._ack_lock:
            self._generation += 1

    def _on_pre_connect(self, client: mqtt.Client, userdata: Any) -> None:
        self._new_generation()

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:  # noqa: ANN001
        if reason_code.is_failure:
            log.error("broker refused the connection: %s", reason_code)
            return
        self._new_generation()
        log.info(
            "connected to %s:%s as %s (session %s); subscribing to %s",
            self.address.host,
            self.address.port,
            self.config.client_id,
            "resumed" if flags.session_present else "new",
            self.subscription,
        )
        metrics.MQTT_UP.set(1)
        client.subscribe(self.subscription, options=SubscribeOptions(qos=1))

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:  # noqa: ANN001
        if self._barrier_mid is not None and self._barrier_mid in (mid, -1):  # -1: mid not known yet
            self._barrier_done.set()
            return
        failures = [rc for rc in reason_codes if rc.is_failure]
        if failures:
            log.error("subscription to %s refused: %s", self.subscription, failures)
            return
        self.subscriptions += 1
        if not self._subscribed.is_set():
            self._subscribed.set()
            if self.config.ready_file is not None:
                self.config.ready_file.write_text(str(os.getpid()))

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:  # noqa: ANN001
        self._new_generation()
        metrics.MQTT_UP.set(0)
        if not self._stop.is_set():
            log.warning("disconnected from the broker (%s); paho reconnects with backoff", reason_code)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        topic: bytes = msg._topic  # bytes: the validator reports a non-UTF-8 topic itself
        props: tuple[tuple[str, str], ...] = ()
        if topic.endswith(b"/snapshot") and msg.properties is not None:
            props = tuple(getattr(msg.properties, "UserProperty", ()) or ())
        inbound = Inbound(
            topic,
            msg.payload,
            msg.mid,
            msg.qos,
            msg.retain,
            self._generation,
            self.clock.now(),
            time.monotonic(),
            props,
            topic.endswith(_URGENT_CHANNELS),
        )
        self.buffer.put(inbound, self._stop)

    @property
    def subscribed(self) -> bool:
        return self._subscribed.is_set()

    # -- lifecycle ---------------------------------------------------------------------------------
    def stop(self, *_: object) -> None:
        """Ask the worker to finish its batch, acknowledge it and return from :meth:`run`."""
        self._stop.set()

    def run(self) -> int:
        cfg = self.config
        if cfg.commit_trace is not None:
            self._trace = open(cfg.commit_trace, "a", buffering=1 << 16)  # noqa: SIM115 - closed below
        if not self._wait_for_database():
            return 0
        self.client.connect_async(
            self.address.host,
            self.address.port,
            keepalive=cfg.keepalive_s,
            clean_start=False,
            properties=self._connect_properties(),
        )
        self.client.loop_start()
        try:
            while not self._stop.is_set():
                batch = self.buffer.take(cfg.batch_size, cfg.batch_wait_s, self._stop)
                metrics.BUFFERED.set(len(self.buffer))
                if batch:
                    self._process(batch)
                self._presence_tick()
            # Stopping: finish what was already received (one batch at most), acknowledge, leave.
            batch = self.buffer.take_nowait(cfg.batch_size)
            if batch:
                self._process(batch)
            return 0
        finally:
            self._shutdown()

    def _shutdown(self) -> None:
        try:
            self._barrier()
            self.client.disconnect()
            self.client.loop_stop()
        except Exception:  # noqa: BLE001 - leaving anyway
            log.exception("error while disconnecting")
        self.writer.close()
        if self._trace is not None:
            self._trace.close()
        log.info(
            "stopped: %d stored, %d duplicates, %d dead-lettered, %d ignored",
            self.stats["stored"],
            self.stats["duplicates"],
            self.stats["dead_lettered"],
            self.stats["ignored"],
        )

    def _barrier(self, timeout_s: float = 5.0) -> None:
        """Wait until the broker has read our last acknowledgements: it answers a SUBSCRIBE (to a
        topic nobody publishes on; a refusal by the ACL is an answer too) only after the packets sent
        before it. Closing the socket while messages are still arriving makes the kernel reset the
        connection, and a reset can discard acknowledgements the broker has not read yet: they would
        come back as duplicates (measured: the whole last batch, about one run in two)."""
        if not self.client.is_connected():
            return
        self._barrier_done.clear()
        self._barrier_mid = -1
        _, mid = self.client.subscribe(f"ioc-ingest-barrier/{self.config.client_id}", qos=0)
        self._barrier_mid = mid
        if not self._barrier_done.wait(timeout_s):
            log.warning("the broker did not confirm our last acknowledgements; it may redeliver them")

    def _sleep(self, seconds: float) -> bool:
        """Sleep unless stopping; True when stop was requested."""
        return self._stop.wait(seconds)

    def _wait_for_database(self) -> bool:
        """Load the device directory before reading anything (an empty directory would dead-letter
        every message as an unknown device). False when stopped while waiting."""
        delay = self.config.db_backoff_min_s
        while True:
            try:
                self.directory.reload()
                metrics.DB_UP.set(1)
                return True
            except Exception as exc:  # noqa: BLE001
                metrics.DB_UP.set(0)
                log.warning("database not available (%s); retrying in %.1f s", exc, delay)
                if self._sleep(delay):
                    return False
                delay = min(self.config.db_backoff_max_s, delay * 2)

    # -- one batch ---------------------------------------------------------------------------------
    def _process(self, batch: list[Inbound]) -> None:
        delay = self.config.db_backoff_min_s
        give_up_at: float | None = None
        while True:
            try:
                outcome = self._write(batch)
                break
            except DatabaseUnavailable as exc:
                metrics.DB_UP.set(0)
                metrics.DB_RETRIES.inc()
                self.writer.close()
                now = time.monotonic()
                if self._stop.is_set():
                    give_up_at = give_up_at or now + self.config.stop_grace_s
                    if now >= give_up_at:
                        log.warning("stopping with %d messages unstored; the broker redelivers them", len(batch))
                        return
                log.warning(
                    "database unavailable (%s); keeping %d messages (+%d buffered), retry in %.1f s",
                    exc,
                    len(batch),
                    len(self.buffer),
                    delay,
                )
                time.sleep(delay)  # not interruptible: a stop still tries to finish this batch
                delay = min(self.config.db_backoff_max_s, delay * 2)
        metrics.DB_UP.set(1)
        self._ack(batch)
        self._publish_changes(outcome.changes)
        done = time.monotonic()
        observe = metrics.LAG_SECONDS.observe
        for msg in batch[:: max(1, len(batch) // 20)]:  # a sample: the histogram needs no more
            observe(done - msg.received_mono)

    def _ack(self, batch: list[Inbound]) -> None:
        acked = stale = 0
        with self._ack_lock:
            generation = self._generation
            ack = self.client.ack
            for msg in batch:
                if not msg.qos:
                    continue
                if msg.generation == generation:
                    ack(msg.mid, msg.qos)
                    acked += 1
                else:
                    stale += 1
        self.stats["acked"] += acked
        if stale:
            log.info("%d messages of an earlier connection stored; their redelivery will be skipped", stale)

    def _write(self, batch: list[Inbound]) -> BatchOutcome:
        outcome = BatchOutcome()
        rows: dict[str, list[tuple[int, tuple]]] = {}
        letters: list[DeadLetter] = []
        signals: dict[str, Signal] = {}
        kinds: Counter[tuple[str, str]] = Counter()
        refusals: Counter[tuple[str, str]] = Counter()
        unknown_devices = 0
        candidates: list[Accepted] = []  # accepted messages an alert rule may care about
        for index, msg in enumerate(batch):
            verdict = self.validator.validate(msg)
            if isinstance(verdict, Accepted):
                rows.setdefault(verdict.table, []).append((index, verdict.values))
                if (
                    (self.alerts is not None and self.alerts.wants(verdict))
                    or (self.reports is not None and self.reports.wants(verdict))
                    or self.sectors.wants(verdict)
                ):
                    candidates.append(verdict)
                kinds[(verdict.kind, verdict.table)] += 1
                outcome.accepted += 1
                if verdict.status_state is not None:
                    signals[verdict.device_id] = Signal(
                        verdict.device_id,
                        msg.received_at,
                        verdict.status_state,
                        verdict.status_reason or f"status {verdict.status_state}",
                        verdict.status_info,
                    )
                elif getattr(verdict.payload, "rule", None) == "stream_down":
                    pass  # the detector saying the camera's stream is lost: no sign of the camera's life
                elif (earlier := signals.get(verdict.device_id)) is not None:
                    # a later sign of life in the same batch: online, keeping the status facts sent
                    reason = earlier.reason if earlier.state == "online" else "message"
                    signals[verdict.device_id] = Signal(
                        verdict.device_id, msg.received_at, "online", reason, earlier.info
                    )
                elif verdict.device_id in self._online:
                    self._touched[verdict.device_id] = msg.received_at
                else:
                    signals[verdict.device_id] = Signal(verdict.device_id, msg.received_at, "online", "message")
                if verdict.snapshot is not None:
                    _write_snapshot(*verdict.snapshot)
            elif isinstance(verdict, Rejected):
                if verdict.code == "unknown_device":
                    unknown_devices += 1
                letters.append(self._dead_letter(msg, verdict.reason, {"code": verdict.code, **verdict.detail}))
                refusals[(verdict.kind, verdict.code)] += 1
            else:
                outcome.ignored += 1
        if unknown_devices and self._directory_failed:
            raise DatabaseUnavailable("the device directory could not be refreshed")

        flush = time.monotonic() >= self._next_flush
        touched = dict(self._touched) if flush else {}

        def presence(conn: psycopg.Connection, result: WriteResult) -> list[Change]:
            pending = list(signals.values())
            pending += [Signal(d, t, "online", "message") for d, t in touched.items() if d not in signals]
            changes = apply_signals(conn, pending)
            self._raise_alerts(conn, candidates, result.stored, changes)
            return changes

        def refused(key: int, reason: str, detail: dict[str, Any]) -> DeadLetter:
            return self._dead_letter(batch[key], reason, {"code": "db_rejected", **detail})

        result, changes = self.writer.write(rows, letters, refused=refused, extra=presence)
        commit_at = time.time()

        # -- committed: bookkeeping only from here ----------------------------------------------------
        for (kind, code), n in refusals.items():
            metrics.MESSAGES_DEAD.labels(kind, code).inc(n)
        if result.rejected:
            metrics.MESSAGES_DEAD.labels("unknown", "db_rejected").inc(len(result.rejected))
        if flush:
            for device_id in touched:
                if self._touched.get(device_id) == touched[device_id]:
                    del self._touched[device_id]
            self._next_flush = time.monotonic() + self.config.presence_flush_s
        for signal in signals.values():
            if signal.state == "online":
                self._online.add(signal.device_id)
            else:
                self._online.discard(signal.device_id)
                self._touched.pop(signal.device_id, None)
        outcome.changes = changes or []
        outcome.stored = sum(result.inserted.values())
        outcome.dead_lettered = len(letters) + len(result.rejected)
        outcome.duplicates = max(0, outcome.accepted - outcome.stored - len(result.rejected))
        self._count(batch, kinds, result.inserted, outcome)
        metrics.COMMIT_SECONDS.observe(result.commit_s)
        if self._trace is not None and "telemetry" in rows:
            stamps = " ".join(f"{values[0].timestamp():.6f}" for _, values in rows["telemetry"])
            self._trace.write(f"{commit_at:.6f} {stamps}\n")
        return outcome

    def _dead_letter(self, msg: Inbound, reason: str, detail: dict[str, Any]) -> DeadLetter:
        payload, extra = dead_letter_payload(msg.payload)
        topic = clean_text(msg.topic.decode("utf-8", "backslashreplace"), 1024)
        # Retained junk comes back at every (re)subscription: record it once (issue #14).
        retained = hashlib.sha256(msg.topic + b"\0" + msg.payload).digest() if msg.retain else None
        return DeadLetter(msg.received_at, topic, payload, clean_text(reason, 2000), {**detail, **extra}, retained)

    def _count(
        self,
        batch: list[Inbound],
        kinds: Counter[tuple[str, str]],
        inserted: dict[str, int],
        outcome: BatchOutcome,
    ) -> None:
        metrics.BATCH_SIZE.observe(len(batch))
        channels = Counter(msg.topic.rsplit(b"/", 1)[-1] for msg in batch)
        for raw, n in channels.items():
            channel = raw.decode("ascii", "replace")
            metrics.MESSAGES_IN.labels(channel if channel in _CHANNEL_LABELS else "other").inc(n)
        by_table: Counter[str] = Counter()
        for (_, table), n in kinds.items():
            by_table[table] += n
        for (kind, table), n in kinds.items():
            duplicates = max(0, by_table[table] - inserted.get(table, 0))
            share = round(duplicates * n / by_table[table]) if by_table[table] else 0
            metrics.MESSAGES_STORED.labels(kind, table).inc(n - share)
            if share:
                metrics.MESSAGES_DUPLICATE.labels(kind, table).inc(share)
        if outcome.ignored:
            metrics.MESSAGES_IGNORED.inc(outcome.ignored)
        self.stats["batches"] += 1
        self.stats["stored"] += outcome.stored
        self.stats["duplicates"] += outcome.duplicates
        self.stats["dead_lettered"] += outcome.dead_lettered
        self.stats["ignored"] += outcome.ignored

    # -- presence ----------------------------------------------------------------------------------
    def _presence_tick(self) -> None:
        now = time.monotonic()
        if now < self._next_expiry:
            return
        self._next_expiry = now + self.config.presence_check_s

        def expire(conn: psycopg.Connection) -> list[Change]:
            changes = expire_silent(conn, self.clock.now())
            self._raise_alerts(conn, [], {}, changes)
            return changes

        try:
            changes = self.writer.run(expire)
        except DatabaseUnavailable as exc:
            log.debug("presence check skipped: %s", exc)
            return
        for change in changes:
            self._online.discard(change.device_id)
            self._touched.pop(change.device_id, None)
        self._publish_changes(changes)

    def _raise_alerts(
        self,
        conn: psycopg.Connection,
        candidates: list[Accepted],
        stored: dict[str, set[tuple[str, str]]],
        changes: list[Change],
    ) -> None:
        """Alerts and report rows for the batch, in its transaction; a failure there never costs the
        batch itself (the messages are stored regardless)."""
        dossiers = {dossier_id for dossier_id, _ in stored.get("dossier_events", ())}
        if not dossiers and not (candidates or changes):
            return
        try:
            with conn.transaction():  # savepoint: a bug here rolls back only the derived records
                if dossiers:
                    refresh_dossiers(conn, dossiers)
                if self.reports is not None and candidates:
                    self.reports.apply(conn, candidates, stored, self.clock.now())
                if candidates:  # school, clinic and mention messages: sector rows and their alerts
                    self.sectors.apply(conn, candidates, stored, self.clock.now())
                if self.alerts is not None:
                    self.alerts.apply(conn, candidates, stored, changes, self.clock.now())
        except psycopg.OperationalError:
            raise  # the database is gone: the whole batch is retried
        except Exception:  # noqa: BLE001 - logged and counted; the data is stored regardless
            metrics.ALERT_FAILURES.inc()
            log.exception("raising alerts for a batch failed; its messages are stored without alerts")

    def _publish_changes(self, changes: list[Change]) -> None:
        for change in changes:
            metrics.PRESENCE_CHANGES.labels(change.state, change.reason[:32]).inc()
            log.info("device %s is %s (%s)", change.device_id, change.state, change.reason)
            topic, payload = change.message(self.config.topic_root)
            self.client.publish(topic, payload, qos=1, retain=True)


_CHANNEL_LABELS = {"telemetry", "event", "status", "snapshot", "ack", "cmd", "presence"}


def _write_snapshot(path: Path, data: bytes) -> None:
    """Content-addressed, so writing the same snapshot again is harmless."""
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def install_signal_handlers(worker: Worker) -> None:
    """SIGTERM and SIGINT: finish the batch, acknowledge, exit."""
    import signal

    signal.signal(signal.SIGTERM, worker.stop)
    signal.signal(signal.SIGINT, worker.stop)


def run_worker(
    config: WorkerConfig, clock: Clock | None = None, *, on_start: Callable[[Worker], None] | None = None
) -> int:
    worker = Worker(config, clock)
    install_signal_handlers(worker)
    if on_start is not None:
        on_start(worker)
    return worker.run()
