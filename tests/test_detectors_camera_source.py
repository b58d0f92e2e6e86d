"""Camera sources: the newest frame wins and is handed out once; a missing stream retries without blocking stop."""

from __future__ import annotations

import time

from detectors.media import vtest_video
from feeds.cameras.source import CameraSource


def test_file_source_hands_out_the_latest_frame_once() -> None:
    statuses: list[bool] = []
    src = CameraSource("cam", str(vtest_video()), max_fps=10, on_status=lambda _c, s: statuses.append(s)).start()
    try:
        deadline = time.monotonic() + 5
        frame = None
        while frame is None and time.monotonic() < deadline:
            time.sleep(0.05)
            frame = src.latest()
        assert frame is not None and frame.image.shape == (576, 768, 3)
        assert src.latest() is None  # taken: not handed out twice
        time.sleep(0.5)
        later = src.latest()
        assert later is not None and later.index > frame.index
        assert statuses == [True]
    finally:
        src.stop()


def test_unreachable_stream_gives_no_frames_and_stops_promptly() -> None:
    src = CameraSource("gone", "/nonexistent/camera.mp4", backoff_initial=0.1).start()
    time.sleep(0.3)
    assert src.latest() is None and not src.online
    started = time.monotonic()
    src.stop()
    assert time.monotonic() - started < 2
