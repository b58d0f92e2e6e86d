"""The detector worker speaks the MQTT contract: its events validate as CameraEventV1 and carry
their evidence by reference."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from detectors.evidence import make_evidence
from detectors.interface import Detection
from detectors.pipeline import CameraEvent
from detectors.rules import Event
from detectors.tracking import Track
from ioc.cli.detect_cmd import event_payload, rule_specs, store_evidence
from ioc.contract.schemas import CameraEventV1
from ioc.district.loader import load_district

ROOT = Path(__file__).resolve().parent.parent


def test_detector_event_is_a_valid_contract_payload_with_stored_evidence(tmp_path: Path) -> None:
    frame = np.full((576, 768, 3), 90, np.uint8)
    box = (100.0, 120.0, 180.0, 330.0)
    track = Track(track_id=7, detection=Detection("person", 0.88, box), first_seen=0.0, last_seen=0.0)
    event = Event(rule="yard-after-hours", kind="intrusion", at=1_772_400_000.25, track_ids=(7,),
                  class_name="person", score=0.88, box=box, zone=[(0, 0), (400, 0), (400, 500), (0, 500)])  # fmt: skip
    camera_event = CameraEvent("cam-tra-my-school-01", event, frame, [track], 0.0)
    ref = store_evidence(tmp_path, camera_event.camera_id, make_evidence(frame, [track], event))
    assert (tmp_path / ref).read_bytes()[:2] == b"\xff\xd8"
    clip = ref.removesuffix(".jpg") + "-clip.webm"
    body = event_payload("d1-1", camera_event, {"yard-after-hours": "san-truong"}, ref, {"san-truong": "Sân trường"},
                         clip)  # fmt: skip
    payload = CameraEventV1.model_validate_json(json.dumps(body))
    assert (payload.rule, payload.zone, payload.object_class, payload.track_id) == (
        "intrusion", "san-truong", "person", 7,
    )  # fmt: skip
    assert payload.bbox == (0.1302, 0.2083, 0.2344, 0.5729)
    assert payload.snapshot_ref == ref and len(json.dumps(body)) < 1024
    # the alert's title names the zone by its label, not its slug (issue #18)
    from ioc.alerts.rules import Observation, evaluate, load_rulebook

    fields = {**payload.model_dump(mode="json", exclude={"v", "ts", "data"}), **payload.data}
    obs = Observation(source="camera_event", at=payload.ts, unit_id="tra-my", device_id="cam-1",
                      device_kind="camera", device_name="Trường THPT Bắc Trà My", fields=fields)  # fmt: skip
    [draft], _ = evaluate(load_rulebook(ROOT / "config" / "alert-rules.yaml"), [obs])
    assert draft.title == "Xâm nhập khu vực Sân trường – camera Trường THPT Bắc Trà My"
    # the evidence clip's reference rides in `data` and stays on the alert beside the snapshot
    assert payload.data["clip_ref"] == clip
    assert draft.evidence["snapshot_ref"] == ref and draft.evidence["clip_ref"] == clip


def test_every_sample_camera_rule_translates() -> None:
    district = load_district(ROOT / "config" / "district.yaml")
    for camera in district.cameras:
        for spec in rule_specs(camera):
            assert spec["type"] in {"intrusion", "line_crossing", "loitering", "crowd", "congestion"}


def test_stream_status_and_health_telemetry_follow_the_contract() -> None:
    from ioc.cli.detect_cmd import StreamHealth
    from ioc.contract.schemas import StatusV1, TelemetryV1

    health = StreamHealth(every_s=0.0, expected_fps={"cam-1": 5.0, "cam-2": 5.0}, down_alarm_s=300)
    lost = StatusV1.model_validate_json(json.dumps(health.status("cam-1", False)))
    back = StatusV1.model_validate_json(json.dumps(health.status("cam-1", True)))
    assert (lost.state, lost.reason, back.state) == ("offline", "stream_lost", "online")
    start = time.monotonic()
    health.set_online("cam-1", True, start)
    health.set_online("cam-2", True, start)
    for _ in range(5):
        health.seen("cam-1", np.zeros((576, 768, 3), np.uint8))
    health.seen("cam-2", np.zeros((48, 64, 3), np.uint8))
    health.set_online("cam-2", False, start + 0.5)  # lost half way through the period
    [(camera_id, body)] = health.due(start + 1)  # no telemetry for a lost stream: it would count as alive
    telemetry = TelemetryV1.model_validate_json(json.dumps(body))
    assert camera_id == "cam-1" and telemetry.metrics["width_px"] == 768.0
    assert telemetry.metrics["expected_fps"] == 5.0 and 90 <= telemetry.metrics["fps_pct"] <= 110
    assert telemetry.metrics["uptime_pct"] >= 99
    assert health.down_alarms(start + 200) == []
    [(down_id, alarm)] = health.down_alarms(start + 0.5 + 300.01)  # "camera down 5 minutes", once per outage
    assert down_id == "cam-2" and alarm["rule"] == "stream_down" and alarm["data"]["minutes"] == 5
    assert health.down_alarms(start + 1000) == []
    from ioc.contract.schemas import CameraEventV1

    CameraEventV1.model_validate_json(json.dumps(alarm))


def test_live_frames_are_written_atomically_and_at_most_once_a_second(tmp_path: Path) -> None:
    from ioc.cli.detect_cmd import LiveFrames

    live = LiveFrames(tmp_path / "live", every_s=1.0)
    frame = np.zeros((48, 64, 3), np.uint8)
    assert live.offer("cam-1", frame, []) is True
    assert live.offer("cam-1", frame, []) is False  # too soon
    assert (tmp_path / "live" / "cam-1.jpg").read_bytes()[:2] == b"\xff\xd8"
    assert not list((tmp_path / "live").glob(".*part"))
