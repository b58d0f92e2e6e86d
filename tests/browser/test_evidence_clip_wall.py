"""A camera incident's evidence clip plays on the wall: the operator opens the incident, presses
"Xem đoạn ghi", and the wall jumps to the camera and plays the clip in its tile (the video advances).

The clip is cut by the detector's own recorder (``detectors.clips``) from real frames of the sample
video, into the running system's media store, and the camera event that cites it goes over MQTT as
``ioc detect`` sends it; ingest raises the alert and its incident, the API serves the clip.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import cv2
from conftest import SCREENSHOTS, RunningSystem, wait_until

from detectors.clips import ClipRecorder
from detectors.evidence import make_evidence
from detectors.media import vtest_video
from detectors.rules import Event
from ioc.cli.detect_cmd import store_evidence

CAMERA, UNIT = "cam-tra-my-school-01", "tra-my"


def _cut_clip(media_root: Path) -> tuple[str, str]:
    """A 3 s clip (2 s before, 1 s after) around an event on real frames; (snapshot ref, clip ref)."""
    recorder = ClipRecorder(media_root, before_s=2.0, after_s=1.0, fps=5.0)
    capture = cv2.VideoCapture(str(vtest_video()))
    start = time.time()
    event = Event("after-hours", "intrusion", start + 2.0, (1,), "person", 0.9, (300, 200, 360, 380))
    snapshot_ref = clip_ref = None
    for i in range(16):
        ok, frame = capture.read()
        capture.grab()
        assert ok
        recorder.add(CAMERA, frame, start + i / 5)
        if i == 10:
            snapshot_ref = store_evidence(media_root, CAMERA, make_evidence(frame, [], event))
            clip_ref = recorder.trigger(CAMERA, snapshot_ref, event)
    recorder.close()
    assert snapshot_ref and clip_ref and (media_root / clip_ref).is_file(), list(recorder.written)
    return snapshot_ref, clip_ref


def test_a_camera_incident_jumps_to_its_camera_and_plays_the_evidence_clip(
    system: RunningSystem, new_page: Any, login: Any
) -> None:
    snapshot_ref, clip_ref = _cut_clip(Path(system.env["IOC_VAR_DIR"]) / "media")
    page = new_page(1920, 1080)
    login(page, "operator1")
    page.wait_for_selector("body[data-live=online]", timeout=20_000)
    page.wait_for_selector(f".camera-tile[data-camera-id='{CAMERA}']", timeout=20_000)

    message_id = f"bt-clip-{time.time_ns()}"
    system.publish(UNIT, "camera", CAMERA, "event", {
        "id": message_id, "rule": "intrusion", "zone": "school-yard", "object_class": "person", "score": 0.9,
        "snapshot_ref": snapshot_ref, "data": {"rule_id": "after-hours", "zone_label": "Sân trường",
                                               "clip_ref": clip_ref},
    })  # fmt: skip
    found = wait_until(lambda: system.query(
        "SELECT s.incident_id, a.id FROM alerts a JOIN incident_signals s ON s.signal = 'alert' AND s.ref = a.id"
        " WHERE a.evidence ->> 'clip_ref' = %s", (clip_ref,)), 20)  # fmt: skip
    assert found, system.log_tail("ingest")
    [(incident_id, alert_id)] = found

    page.locator(f"#incident-queue li[data-incident-id='{incident_id}'] button").click()
    control = page.locator(f"#incident-clips li[data-alert-id='{alert_id}'] .clip-button")
    control.wait_for(timeout=10_000)
    assert control.inner_text() == "Xem đoạn ghi"
    control.click()

    tile = f".camera-tile.selected[data-camera-id='{CAMERA}'][data-clip=playing]"
    page.wait_for_selector(f"{tile} video.camera-clip", timeout=10_000)
    # It plays: the browser decoded frames (readyState >= HAVE_CURRENT_DATA) and its clock moves on.
    assert page.wait_for_function(
        """(sel) => { const v = document.querySelector(sel);
                      return v && v.readyState >= 2 && v.currentTime > 0.4 && !v.error && v.videoWidth === 640; }""",
        arg=f"{tile} video.camera-clip", timeout=10_000)  # fmt: skip
    assert page.eval_on_selector(f"{tile} video", "v => v.duration") > 2.5
    assert "Về hình trực tiếp" in page.locator(f"{tile} figcaption").inner_text()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "wall-evidence-clip-1920x1080.png"))

    # The alert's own drawer has the control too; back to live removes the player.
    page.locator(f".incident-signals li[data-ref='{alert_id}'] button").click()
    page.wait_for_selector(f"#drawer[data-alert-id='{alert_id}'] #clip-button", timeout=10_000)
    page.locator(f"{tile} .camera-live").click()
    page.wait_for_selector(f".camera-tile[data-camera-id='{CAMERA}']:not([data-clip]) img", state="attached")
    assert page.locator(f".camera-tile[data-camera-id='{CAMERA}'] video").count() == 0
    # (cameras without a detector answer 404 to latest.jpg: those resource errors are expected)
    assert not [e for e in page.errors if "Failed to load resource" not in e], page.errors
