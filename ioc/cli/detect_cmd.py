"""``ioc detect``: the detector worker for the district's cameras, publishing events over MQTT.

The district configuration (``ioc.district``) is translated here into the plain rule dicts that
``detectors.rules`` takes, so the detector package never depends on the configuration models.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import signal
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

log = logging.getLogger(__name__)

_DIRECTIONS = {"any": "both", "left_to_right": "in", "right_to_left": "out"}


def rule_specs(camera: Any) -> list[dict[str, Any]]:
    """Plain rule dicts for one ``ioc.district.models.Camera`` (zones resolved to polygons)."""
    zones = {z.name: [tuple(p) for p in z.polygon] for z in camera.zones}
    specs: list[dict[str, Any]] = []
    for rule in camera.rules:
        if not rule.enabled or rule.kind == "tamper":
            continue
        schedule = [{"days": list(w.days), "start": f"{w.start:%H:%M}", "end": f"{w.end:%H:%M}"} for w in rule.schedule]
        spec: dict[str, Any] = {"type": rule.kind, "name": rule.id}
        if rule.kind == "intrusion":
            spec |= {
                "zone": zones[rule.zone],
                "classes": rule.objects,
                "schedule": schedule,
                "seconds": rule.min_duration_s,
            }
        elif rule.kind == "line_crossing":
            spec |= {
                "line": [tuple(p) for p in rule.line],
                "classes": rule.objects,
                "direction": _DIRECTIONS[rule.direction],
            }
        elif rule.kind == "loitering":
            spec |= {"zone": zones[rule.zone], "seconds": rule.dwell_s, "classes": rule.objects}
        elif rule.kind == "crowd":
            spec |= {"zone": zones[rule.zone], "min_count": rule.min_people, "seconds": rule.min_duration_s}
        elif rule.kind == "congestion":
            spec |= {
                "zone": zones[rule.zone],
                "min_count": rule.min_vehicles,
                "seconds": rule.min_duration_s,
                "max_speed": rule.max_speed_px_s,
            }
        specs.append(spec)
    return specs


def camera_pipeline(camera: Any, tz: Any, **options: Any) -> Any:
    """The detector pipeline of one configured camera: its rules, its frame size (zones are rescaled when the
    stream's differs) and its tamper check at the configured sensitivity (none when no tamper rule is on)."""
    from detectors.pipeline import CameraPipeline
    from detectors.tamper import TamperDetector

    tamper = next((r for r in camera.rules if r.kind == "tamper" and r.enabled), None)
    pipe = CameraPipeline.from_specs(camera.id, rule_specs(camera), tz=tz,
                                     frame_size=(camera.frame.width, camera.frame.height), **options)  # fmt: skip
    pipe.tamper = None if tamper is None else TamperDetector.from_sensitivity(tamper.sensitivity,
                                                                              tamper.min_duration_s)
    return pipe


def event_payload(message_id: str, ev: Any, zone_of: dict[str, str], snapshot_ref: str | None,
                  zone_labels: dict[str, str] | None = None, clip_ref: str | None = None) -> dict[str, Any]:
    """The contract's ``CameraEventV1`` body (docs/mqtt.md) for one detector event.

    The box goes out as fractions of the frame, the zone by its configured name (its label, for alert
    titles, in ``data``), the evidence by reference (the JPEG is written under ``IOC_VAR_DIR/media``):
    the payload stays small. ``clip_ref`` names the evidence clip being cut around the event
    (``detectors.clips``): it exists a few seconds after the event, once the frames after it are in.
    """
    from ioc.contract.schemas import OBJECT_CLASSES

    e = ev.event
    height, width = ev.frame.shape[:2]
    bbox = None
    if e.box is not None:
        x1, y1, x2, y2 = (min(1.0, max(0.0, v)) for v in (e.box[0] / width, e.box[1] / height,
                                                          e.box[2] / width, e.box[3] / height))  # fmt: skip
        bbox = [round(x1, 4), round(y1, 4), round(x2, 4), round(y2, 4)] if x1 < x2 and y1 < y2 else None
    details = {k: v for k, v in dict(e.details).items() if isinstance(v, str | int | float | bool)}
    return {
        "v": 1,
        "id": message_id,
        "ts": datetime.fromtimestamp(e.at, UTC).isoformat(timespec="milliseconds"),
        "rule": e.kind,
        "object_class": e.class_name if e.class_name in OBJECT_CLASSES else None,
        "score": None if e.score is None else round(float(e.score), 3),
        "track_id": int(e.track_ids[0]) if e.track_ids else None,
        "zone": zone_of.get(e.rule),
        "bbox": bbox,
        "snapshot_ref": snapshot_ref,
        # the zone's label ("Sân trường") for alert titles; `zone` stays the configured name (a key)
        "data": {"rule_id": e.rule, "tracks": len(e.track_ids), **details,
                 **({"clip_ref": clip_ref} if clip_ref else {}),
                 **({"zone_label": zone_labels[zone_of[e.rule]]}
                    if zone_labels and zone_of.get(e.rule) in zone_labels else {})},  # fmt: skip
    }


def store_evidence(media_root: Path, camera_id: str, evidence: Any) -> str:
    """Write the annotated snapshot (and crop) content-addressed; return the snapshot's reference."""
    digest = hashlib.sha256(evidence.snapshot_jpeg).hexdigest()
    ref = f"evidence/{camera_id}/{digest[:2]}/{digest}.jpg"
    path = media_root / ref
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(evidence.snapshot_jpeg)
    if evidence.crop_jpeg:
        path.with_name(f"{digest}-crop.jpg").write_bytes(evidence.crop_jpeg)
    return ref


def _local_path(stream_url: str) -> Path | None:
    return Path(stream_url.removeprefix("file:")) if stream_url.startswith("file:") else None


def _ensure_sample_video(path: Path) -> bool:
    """The simulator's cameras play ``vtest.avi``: fetch it once when it is missing."""
    if path.exists():
        return True
    if path.name != "vtest.avi":
        return False
    from detectors.media import vtest_video
    from detectors.model_store import ModelUnavailable

    try:
        fetched = vtest_video()
    except ModelUnavailable as exc:
        log.warning("sample video unavailable (%s); its cameras are skipped", exc)
        return False
    if fetched.resolve() != path.resolve():
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(fetched, path)
    return True


class LiveFrames:
    """The latest annotated frame of each camera, for the wall (``/api/cameras/{id}/latest.jpg`` and
    its MJPEG stream): written at most every ``every_s`` per camera, atomically (write, then rename),
    so a reader never sees half a JPEG."""

    def __init__(self, folder: Path, every_s: float = 1.0) -> None:
        self.folder = folder
        self.every_s = every_s
        self._written: dict[str, float] = {}
        folder.mkdir(parents=True, exist_ok=True)

    def offer(self, camera_id: str, image: Any, tracks: Any) -> bool:
        import cv2

        from detectors.evidence import annotate

        now = time.monotonic()
        if now - self._written.get(camera_id, float("-inf")) < self.every_s:
            return False
        ok, jpeg = cv2.imencode(".jpg", annotate(image, tracks), [cv2.IMWRITE_JPEG_QUALITY, 75])
        if not ok:
            return False
        partial = self.folder / f".{camera_id}.jpg.part"
        partial.write_bytes(jpeg.tobytes())
        partial.replace(self.folder / f"{camera_id}.jpg")
        self._written[camera_id] = now
        return True


class StreamHealth:
    """Per-camera stream health: received vs expected frame rate, uptime, resolution, last frame age, sent
    as telemetry every ``every_s``; the status payloads of stream drops and returns; and the "camera down
    N minutes" alarm, once per outage, when a stream stays lost for ``down_alarm_s``.

    A camera whose stream is lost gets no telemetry: ingest counts telemetry as a sign of life, so it
    would mark the camera online again. Called from the camera threads (``set_online``) and the worker
    loop, hence the lock."""

    def __init__(self, every_s: float = 60.0, expected_fps: dict[str, float] | None = None,
                 down_alarm_s: float = 300.0) -> None:
        self.every_s, self.down_alarm_s = every_s, down_alarm_s
        self.expected_fps = dict(expected_fps or {})
        self._frames: dict[str, int] = {}
        self._size: dict[str, tuple[int, int]] = {}
        self._last: dict[str, float] = {}
        self._online: dict[str, bool] = {}
        self._up_s: dict[str, float] = {}  # seconds online in this period
        self._changed: dict[str, float] = {}  # when the state last changed (or was last counted)
        self._down_alarmed: set[str] = set()
        self._lost_at: dict[str, float] = {}  # when each lost stream went away
        self._since = time.monotonic()
        self._lock = threading.Lock()
        self._n = 0

    def _id(self, prefix: str) -> str:
        self._n += 1
        return f"{prefix}-{int(time.time() * 1000)}-{self._n}"

    def seen(self, camera_id: str, image: Any) -> None:
        with self._lock:
            self._frames[camera_id] = self._frames.get(camera_id, 0) + 1
            self._size[camera_id] = (int(image.shape[1]), int(image.shape[0]))
            self._last[camera_id] = time.monotonic()

    def set_online(self, camera_id: str, online: bool, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            self._count_uptime(camera_id, now)
            self._online[camera_id] = online
            if online:
                self._down_alarmed.discard(camera_id)
                self._lost_at.pop(camera_id, None)
            else:
                self._lost_at.setdefault(camera_id, now)

    def _count_uptime(self, camera_id: str, now: float) -> None:
        start = max(self._changed.get(camera_id, self._since), self._since)
        if self._online.get(camera_id):
            self._up_s[camera_id] = self._up_s.get(camera_id, 0.0) + max(0.0, now - start)
        self._changed[camera_id] = now

    def status(self, camera_id: str, online: bool) -> dict[str, Any]:
        body: dict[str, Any] = {"v": 1, "id": self._id("st"), "ts": datetime.now(UTC).isoformat(),
                                "state": "online" if online else "offline",
                                "info": {"source": "detector", "stream": "ok" if online else "lost"}}  # fmt: skip
        if not online:
            body["reason"] = "stream_lost"
        return body

    def due(self, now: float) -> list[tuple[str, dict[str, Any]]]:
        """Telemetry for every camera whose stream is up, when ``every_s`` has passed since the last report."""
        with self._lock:
            elapsed = now - self._since
            if elapsed < self.every_s or elapsed <= 0:
                return []
            out = []
            for camera_id in set(self._frames) | set(self._online):
                self._count_uptime(camera_id, now)
                if not self._online.get(camera_id) or camera_id not in self._size:
                    continue
                fps = self._frames.get(camera_id, 0) / elapsed
                width, height = self._size[camera_id]
                uptime = min(1.0, self._up_s.get(camera_id, 0.0) / elapsed)
                metrics = {"fps": round(fps, 2), "width_px": float(width), "height_px": float(height),
                           "last_frame_age_s": round(now - self._last[camera_id], 2),
                           "uptime_pct": round(100.0 * uptime, 1)}  # fmt: skip
                expected = self.expected_fps.get(camera_id)
                if expected:
                    metrics |= {"expected_fps": float(expected), "fps_pct": round(100.0 * fps / expected, 1)}
                out.append((camera_id, {"v": 1, "id": self._id("hl"), "ts": datetime.now(UTC).isoformat(),
                                        "metrics": metrics}))  # fmt: skip
            self._frames = dict.fromkeys(self._frames, 0)
            self._up_s = {}
            self._since = now
            return out

    def down_alarms(self, now: float) -> list[tuple[str, dict[str, Any]]]:
        """The ``stream_down`` camera event of each camera lost for ``down_alarm_s`` (once per outage)."""
        out = []
        with self._lock:
            for camera_id, lost_at in self._lost_at.items():
                lost_s = now - lost_at
                if camera_id in self._down_alarmed or lost_s < self.down_alarm_s:
                    continue
                self._down_alarmed.add(camera_id)
                minutes = max(1, round(lost_s / 60))
                out.append((camera_id, {"v": 1, "id": self._id("dn"), "ts": datetime.now(UTC).isoformat(),
                                        "rule": "stream_down",
                                        "data": {"minutes": minutes, "lost_s": round(lost_s, 1)}}))  # fmt: skip
        return out


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="The detector worker (no sub-command), and the evaluation of its detections.")
    app.add_typer(group, name="detect")

    @group.command("eval")
    def evaluate_cmd(
        labels: Annotated[Path | None, typer.Option(help="Labelled boxes (default: the shipped set).")] = None,
        input_size: int = typer.Option(416, help="Network input size (multiple of 32)."),
        as_json: bool = typer.Option(False, "--json", help="Print only the JSON lines."),
    ) -> None:
        """Per-box precision, recall and count error on the labelled frames, full-frame and region modes.

        Each labelled clip plays through the real pipeline (gate, tracker, crops); boxes match at IoU >= 0.5.
        Per mode: one line per clip, then the clips pooled (clip=all).
        Example: ioc detect eval --json
        """
        from detectors.evaluate import LABELS, evaluate
        from detectors.model_store import ModelUnavailable
        from detectors.onnx_yolo import OnnxYoloDetector
        from detectors.regions import REGION_CONF
        from ioc.cli import exit_codes

        try:
            detector = OnnxYoloDetector(input_size=input_size)
            full_conf = detector.conf
            for regions in (False, True):
                detector.conf = REGION_CONF if regions else full_conf
                for result in evaluate(detector, regions, labels or LABELS):
                    typer.echo(json.dumps(result) if as_json else "  ".join(f"{k}={v}" for k, v in result.items()))
        except ModelUnavailable as exc:
            typer.echo(f"detect eval: {exc}", err=True)
            raise typer.Exit(exit_codes.UNAVAILABLE) from exc

    @group.callback(invoke_without_command=True)
    def detect(
        ctx: typer.Context,
        camera: Annotated[list[str] | None, typer.Option(help="Only these camera ids (default: all enabled).")] = None,
        local_only: bool = typer.Option(False, help="Only cameras whose stream is a local file (the simulator's)."),
        max_fps: float = typer.Option(0.0, min=0, help="Cap every camera at this frame rate (0: the configured fps)."),
        input_size: int = typer.Option(416, help="Network input size (multiple of 32)."),
        batch_wait: float = typer.Option(0.05, help="Seconds between batches across cameras."),
        health_every: float = typer.Option(60.0, min=0.1, help="Seconds between stream-health telemetry reports."),
        down_alarm_min: float = typer.Option(5.0, min=0, help="Minutes a stream may stay lost before the "
                                                              "'camera down' alarm (a stream_down event)."),
        regions: bool = typer.Option(False, help="Region mode: square crops around motion and tracks at native "
                                                 "resolution, a whole frame every few seconds (docs/detectors)."),
        clips: bool = typer.Option(True, "--clips/--no-clips", help="Cut an evidence clip (WebM) around each event."),
        clip_before: float = typer.Option(3.0, min=0, max=10, help="Seconds of an evidence clip before its event."),
        clip_after: float = typer.Option(3.0, min=0, max=10, help="Seconds of an evidence clip after its event."),
        clip_keep_days: float = typer.Option(30.0, min=0, help="Days a camera's evidence clips are kept."),
    ) -> None:
        """Run the detector worker: camera streams -> motion gate -> batched YOLO -> tracks -> rules -> MQTT.

        Example: IOC_MQTT_URL=mqtt://127.0.0.1:1883 ioc detect --camera cam-tra-my-school-01 --max-fps 2
        """
        if ctx.invoked_subcommand is not None:
            return
        from zoneinfo import ZoneInfo

        from detectors.clips import ClipRecorder
        from detectors.evidence import make_evidence
        from detectors.model_store import ModelUnavailable
        from detectors.onnx_yolo import OnnxYoloDetector
        from detectors.pipeline import run_batch
        from feeds.cameras.source import CameraSource
        from ioc import logs
        from ioc.contract.topics import Channel, build_topic
        from ioc.district.loader import load_district
        from ioc.mqtt import broker_address, make_client
        from ioc.settings import get_settings

        settings = get_settings()
        logs.configure(settings.log_level)
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        district = load_district(settings.district_config)
        tz = ZoneInfo(district.timezone)
        cams = [c for c in district.cameras if c.enabled and (not camera or c.id in camera)]
        if local_only:
            cams = [c for c in cams if (p := _local_path(c.stream_url)) is not None and _ensure_sample_video(p)]
        if not cams:
            log.warning("no camera to watch; the detector worker idles")
            stop.wait()
            return
        from detectors.regions import REGION_CONF

        try:
            detector = OnnxYoloDetector(input_size=input_size, **({"conf": REGION_CONF} if regions else {}))
        except ModelUnavailable as exc:
            log.error("no detection model (%s); the detector worker idles", exc)
            stop.wait()
            return
        client = None
        if settings.mqtt_url:
            address = broker_address(settings.mqtt_url)
            client = make_client(address, client_id=f"ioc-detect-{os.getpid()}")
            client.connect_async(address.host, address.port)
            client.loop_start()
        media_root = Path(settings.var_dir) / "media"
        units = {c.id: c.unit for c in cams}
        health = StreamHealth(health_every, {c.id: min(c.fps, max_fps or c.fps) for c in cams}, down_alarm_min * 60)

        def report_status(camera_id: str, online: bool) -> None:
            """The stream's state is the camera's presence: retained status on its topic (docs/mqtt.md)."""
            health.set_online(camera_id, online)
            if online and camera_id in pipes:
                pipes[camera_id].restart()  # a stream that came back: its first frame goes to the model whole
            if client is None:
                return
            topic = build_topic(units[camera_id], "camera", camera_id, Channel.STATUS, settings.mqtt_topic_root)
            client.publish(topic, json.dumps(health.status(camera_id, online)), qos=1, retain=True)

        pipes: dict[str, Any] = {}
        sources = {
            c.id: CameraSource(
                c.id, c.stream_url.removeprefix("file:"), max_fps=min(c.fps, max_fps or c.fps), on_status=report_status
            ).start()  # fmt: skip
            for c in cams
        }
        pipes = {c.id: camera_pipeline(c, tz, regions=regions, input_size=input_size) for c in cams}
        live = LiveFrames(media_root / "live")
        recorder = ClipRecorder(media_root, before_s=clip_before, after_s=clip_after,
                                keep_days=clip_keep_days) if clips else None  # fmt: skip
        zones = {c.id: {r.id: r.zone for r in c.rules if getattr(r, "zone", None)} for c in cams}
        labels = {c.id: {z.name: z.label for z in c.zones} for c in cams}
        boot = f"d{int(time.time()):x}"
        sent = 0
        log.info("detecting on %d cameras with %s", len(cams), detector.provider)
        try:
            while not stop.is_set():
                items = []
                for cid, src in sources.items():
                    frame = src.latest()
                    if frame is not None:
                        health.seen(cid, frame.image)
                        items.append((pipes[cid], frame.image, time.time(), frame.read_at))
                for cid, metrics in health.due(time.monotonic()):
                    if client is not None:
                        topic = build_topic(units[cid], "camera", cid, Channel.TELEMETRY, settings.mqtt_topic_root)
                        client.publish(topic, json.dumps(metrics), qos=1)
                for cid, body in health.down_alarms(time.monotonic()):
                    log.warning("camera %s: stream lost for %s min", cid, body["data"]["minutes"])
                    if client is not None:
                        topic = build_topic(units[cid], "camera", cid, Channel.EVENT, settings.mqtt_topic_root)
                        client.publish(topic, json.dumps(body), qos=1)
                for pipe, image, *_ in items:
                    live.offer(pipe.camera_id, image, pipe.tracks)
                events = run_batch(detector, items) if items else []
                if recorder is not None:
                    for pipe, image, now, _ in items:
                        recorder.add(pipe.camera_id, image, now, pipe.tracks)
                    recorder.tick(time.time())
                for ev in events:
                    sent += 1
                    ref = store_evidence(media_root, ev.camera_id, make_evidence(ev.frame, ev.tracks, ev.event))
                    clip_ref = recorder.trigger(ev.camera_id, ref, ev.event) if recorder is not None else None
                    body = event_payload(f"{boot}-{sent}", ev, zones[ev.camera_id], ref, labels[ev.camera_id],
                                         clip_ref)  # fmt: skip
                    topic = build_topic(units[ev.camera_id], "camera", ev.camera_id, Channel.EVENT,
                                        settings.mqtt_topic_root)  # fmt: skip
                    if client is not None:
                        client.publish(topic, json.dumps(body), qos=1)
                    log.info("%s: %s (%s)", ev.camera_id, ev.event.kind, ev.event.rule)
                if not items:
                    stop.wait(batch_wait)
        finally:
            for src in sources.values():
                src.stop()
            if recorder is not None:
                recorder.close()
            if client is not None:
                client.loop_stop()
                client.disconnect()
