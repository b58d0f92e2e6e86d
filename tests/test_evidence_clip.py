"""Evidence clips: the detector's real path on real footage (gate -> YOLO -> tracker -> rules) cuts a
few seconds of video around an intrusion, beside its snapshot, and the clip decodes; plus the bounds
of the recorder (frames kept, clips pending, disk) on synthetic frames.

Time is the frames' own (5 fps from the 10 fps sample, every second frame), as ``ioc detect`` passes
each frame's time to the pipeline and to the recorder.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from detectors.clips import ClipRecorder, clip_ref_for, prune
from detectors.evidence import make_evidence
from detectors.media import vtest_video
from detectors.onnx_yolo import OnnxYoloDetector
from detectors.pipeline import CameraPipeline, run_batch
from detectors.rules import Event
from ioc.cli.detect_cmd import event_payload, store_evidence

FPS = 5.0
START = 1_800_000_000.0
ZONE = [(600, 380), (740, 380), (740, 470), (600, 470)]  # a walker enters it near frame 385 (test_detect_still)
CAMERA = "cam-clip"


def _wait_written(recorder: ClipRecorder, n: int, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while len(recorder.written) < n and time.monotonic() < deadline:
        time.sleep(0.05)


def test_an_intrusion_on_real_footage_gets_a_clip_of_the_seconds_around_it(tmp_path: Path) -> None:
    detector = OnnxYoloDetector()
    capture = cv2.VideoCapture(str(vtest_video()))
    capture.set(cv2.CAP_PROP_POS_FRAMES, 360)
    pipe = CameraPipeline.from_specs(CAMERA, [{"type": "intrusion", "name": "yard", "zone": ZONE}],
                                     frame_size=(768, 576))  # fmt: skip
    recorder = ClipRecorder(tmp_path, before_s=2.0, after_s=2.0, fps=FPS)
    payloads = []
    for i in range(24):  # 4.8 s of footage at 5 fps: a walker enters the zone after about 2.4 s
        ok, frame = capture.read()
        capture.grab()
        assert ok
        now = START + i / FPS
        events = run_batch(detector, [(pipe, frame, now, 0.0)])
        recorder.add(CAMERA, frame, now, pipe.tracks)
        for ev in events:
            ref = store_evidence(tmp_path, CAMERA, make_evidence(ev.frame, ev.tracks, ev.event))
            clip_ref = recorder.trigger(CAMERA, ref, ev.event)
            payloads.append(event_payload(f"t-{i}", ev, {"yard": "yard"}, ref, None, clip_ref))
        recorder.tick(now)
    recorder.close()
    assert [p["rule"] for p in payloads][:1] == ["intrusion"], payloads
    payload = payloads[0]
    clip_ref = payload["data"]["clip_ref"]
    assert clip_ref == clip_ref_for(payload["snapshot_ref"]) and clip_ref.endswith("-clip.webm")
    [written] = [w for w in recorder.written if w.ref == clip_ref]
    at = written.event_at
    assert at >= START + 2.0, "the intrusion came too early in the footage for a clip with 2 s before it"
    # The frames from 2 s before to 2 s after the event, at the recorder's rate.
    assert at - 2.0 <= written.first_at <= at - 2.0 + 1 / FPS, (written, at)
    assert at + 2.0 - 1 / FPS <= written.last_at <= at + 2.0 + 1 / FPS, (written, at)
    assert 19 <= written.frames <= 21 and written.fps == pytest.approx(FPS, rel=0.05)
    # Playable: OpenCV decodes every frame of the file the API will serve.
    path = tmp_path / clip_ref
    decoded = cv2.VideoCapture(str(path))
    frames = 0
    while True:
        ok, image = decoded.read()
        if not ok:
            break
        frames += 1
        assert image.shape == (480, 640, 3)
    assert frames == written.frames
    assert decoded.get(cv2.CAP_PROP_FPS) == pytest.approx(FPS, rel=0.05)
    assert path.read_bytes()[:4] == b"\x1a\x45\xdf\xa3"  # EBML: a Matroska/WebM file
    assert 10_000 < path.stat().st_size < 2_000_000
    assert not list(path.parent.glob(".*"))  # no partial file left behind


def _event(at: float) -> Event:
    return Event("yard", "intrusion", at, (1,), "person", 0.9, (10, 10, 40, 60), ZONE)


def test_the_ring_keeps_a_bounded_number_of_small_frames(tmp_path: Path) -> None:
    recorder = ClipRecorder(tmp_path, before_s=2.0, after_s=1.0, fps=4.0, max_width=320)
    frame = np.zeros((1080, 1920, 3), np.uint8)
    kept = sum(recorder.add(CAMERA, frame, START + i / 25) for i in range(25 * 30))  # 30 s at 25 fps
    ring = recorder._rings[CAMERA]
    assert kept == pytest.approx(30 * 4, abs=2)  # decimated to the clip rate
    assert len(ring) <= recorder.ring_frames == 9
    assert ring[-1].at - ring[0].at <= 2.0
    assert ring[0].image.shape == (180, 320, 3)  # downscaled
    recorder.close()


def test_pending_clips_are_bounded_and_a_lost_stream_still_gets_its_clip(tmp_path: Path) -> None:
    recorder = ClipRecorder(tmp_path, before_s=1.0, after_s=2.0, fps=4.0, max_pending=2)
    frame = np.full((96, 128, 3), 90, np.uint8)
    for i in range(8):
        recorder.add(CAMERA, frame, START + i / 4)
    at = START + 7 / 4
    refs = [recorder.trigger(CAMERA, f"evidence/{CAMERA}/ab/{c * 64}.jpg", _event(at)) for c in "abc"]
    assert refs[0] and refs[1] and refs[2] is None  # at most two under way on one camera
    recorder.tick(at + 2.5)  # the stream went away: nothing written before the grace second
    assert not recorder.written
    recorder.tick(at + 3.1)
    _wait_written(recorder, 2)
    assert sorted(w.ref for w in recorder.written) == sorted(refs[:2])
    assert all(w.frames == 5 for w in recorder.written)  # 1 s before (and the event's frame), none after
    recorder.close()


def test_retention_removes_old_clips_and_keeps_the_budget(tmp_path: Path) -> None:
    folder = tmp_path / "evidence" / CAMERA / "ab"
    folder.mkdir(parents=True)
    now = time.time()
    for i, age_days in enumerate((40, 5, 3, 1)):
        path = folder / f"{i:064x}-clip.webm"
        path.write_bytes(b"x" * 1000)
        os.utime(path, (now - age_days * 86400, now - age_days * 86400))
    (folder / f"{0:064x}.jpg").write_bytes(b"snapshot")
    assert prune(tmp_path / "evidence" / CAMERA, keep_days=30, budget_bytes=2000, now=now) == 2
    assert sorted(p.name[63] for p in folder.glob("*-clip.webm")) == ["2", "3"]  # the two newest
    assert (folder / f"{0:064x}.jpg").exists()


def test_the_writer_sweeps_every_cameras_clips_when_it_starts(tmp_path: Path) -> None:
    """A camera with no new events (or no longer configured) does not keep its clips past retention."""
    now = time.time()
    old, recent = (tmp_path / "evidence" / cam / "cd" for cam in ("cam-retired", "cam-quiet"))
    for folder, age_days in ((old, 40), (recent, 2)):
        folder.mkdir(parents=True)
        path = folder / f"{age_days:064x}-clip.webm"
        path.write_bytes(b"x" * 100)
        os.utime(path, (now - age_days * 86400, now - age_days * 86400))
    recorder = ClipRecorder(tmp_path, keep_days=30)
    try:
        deadline = time.monotonic() + 5
        while list(old.glob("*-clip.webm")) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert list(old.glob("*-clip.webm")) == []
        assert len(list(recent.glob("*-clip.webm"))) == 1
    finally:
        recorder.close()
