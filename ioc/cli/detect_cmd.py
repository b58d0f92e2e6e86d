"""``ioc detect``: the detector worker for the district's cameras, publishing events over MQTT.

The district configuration (``ioc.district``) is translated here into the plain rule dicts that
``detectors.rules`` takes, so the detector package never depends on the configuration models.
"""

from __future__ import annotations

import base64
import json
import logging
import time
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
            spec |= {"zone": zones[rule.zone], "min_count": rule.min_vehicles, "seconds": rule.min_duration_s,
                     "max_speed": rule.max_speed_px_s}
        specs.append(spec)
    return specs


def event_payload(camera_id: str, ev: Any, evidence: Any) -> dict[str, Any]:
    """The JSON body of ``ioc/v1/<unit>/camera/<camera_id>/event``."""
    e = ev.event
    return {
        "camera_id": camera_id,
        "ts": e.at,
        "rule": e.rule,
        "kind": e.kind,
        "class": e.class_name,
        "score": None if e.score is None else round(e.score, 3),
        "box": None if e.box is None else [round(v, 1) for v in e.box],
        "track_ids": list(e.track_ids),
        "zone": None if e.zone is None else [list(p) for p in e.zone],
        "details": dict(e.details),
        "snapshot_jpeg_b64": base64.b64encode(evidence.snapshot_jpeg).decode(),
        "crop_jpeg_b64": base64.b64encode(evidence.crop_jpeg).decode() if evidence.crop_jpeg else None,
    }


def register(app: typer.Typer) -> None:
    @app.command("detect")
    def detect(
        camera: Annotated[list[str] | None, typer.Option(help="Only these camera ids (default: all enabled).")] = None,
        input_size: int = typer.Option(416, help="Network input size (multiple of 32)."),
        batch_wait: float = typer.Option(0.05, help="Seconds between batches across cameras."),
    ) -> None:
        """Run the detector worker: camera streams -> motion gate -> batched YOLO -> tracks -> rules -> MQTT."""
        from zoneinfo import ZoneInfo

        from detectors.evidence import make_evidence
        from detectors.onnx_yolo import OnnxYoloDetector
        from detectors.pipeline import CameraPipeline, run_batch
        from feeds.cameras.source import CameraSource
        from ioc.district.loader import load_district
        from ioc.mqtt import broker_address, make_client
        from ioc.settings import get_settings

        settings = get_settings()
        district = load_district(settings.district_config)
        tz = ZoneInfo(district.timezone)
        cams = [c for c in district.cameras if c.enabled and (not camera or c.id in camera)]
        if not cams:
            raise typer.BadParameter("no enabled camera to watch")
        detector = OnnxYoloDetector(input_size=input_size)
        client = None
        if settings.mqtt_url:
            address = broker_address(settings.mqtt_url)
            client = make_client(address, client_id="ioc-detect")
            client.connect_async(address.host, address.port)
            client.loop_start()
        sources = {c.id: CameraSource(c.id, c.stream_url.removeprefix("file:"), max_fps=c.fps).start() for c in cams}
        pipes = {c.id: CameraPipeline.from_specs(c.id, rule_specs(c), tz=tz) for c in cams}
        units = {c.id: c.unit for c in cams}
        log.info("detecting on %d cameras with %s", len(cams), detector.provider)
        try:
            while True:
                items = []
                for cid, src in sources.items():
                    frame = src.latest()
                    if frame is not None:
                        items.append((pipes[cid], frame.image, time.time(), frame.read_at))
                for ev in run_batch(detector, items) if items else []:
                    evidence = make_evidence(ev.frame, ev.tracks, ev.event)
                    topic = f"ioc/v1/{units[ev.camera_id]}/camera/{ev.camera_id}/event"
                    body = json.dumps(event_payload(ev.camera_id, ev, evidence))
                    if client is not None:
                        client.publish(topic, body, qos=1)
                    log.info("%s %s %s", topic, ev.event.kind, ev.event.rule)
                if not items:
                    time.sleep(batch_wait)
        except KeyboardInterrupt:
            pass
        finally:
            for src in sources.values():
                src.stop()
            if client is not None:
                client.loop_stop()
