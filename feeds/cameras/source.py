"""One camera stream read on its own thread: reconnect with backoff, fps cap, latest frame wins.

The detector is slower than the camera on a CPU; keeping only the newest frame (instead of a queue)
means a slow detector sees the scene as it is now rather than falling further behind. The reader
also reports online/offline transitions so the IOC can raise a camera-offline fault.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import cv2
import numpy as np

log = logging.getLogger(__name__)

# RTSP over TCP: when a camera or its server goes away the read fails at once (connection reset), where
# over UDP it would wait for packets until the read timeout; UDP also loses slices on a busy link.
os.environ.setdefault("OPENCV_FFMPEG_CAPTURE_OPTIONS", "rtsp_transport;tcp")
OPEN_TIMEOUT_MS = 10_000
READ_TIMEOUT_MS = 5_000


@dataclass
class Frame:
    image: np.ndarray
    read_at: float  # time.monotonic() when decoded
    index: int


@dataclass
class CameraSource:
    camera_id: str
    url: str
    max_fps: float = 5.0
    backoff_initial: float = 1.0
    backoff_max: float = 10.0  # a camera back after an outage is seen within this
    loop_files: bool = True  # replay a file source forever (the simulator's cameras)
    on_status: Callable[[str, bool], None] | None = None
    _latest: Frame | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    online: bool | None = None  # None until the first connection attempt decides it
    frames_read: int = 0  # decoded frames handed out, for the received frame rate
    reconnects: int = 0

    def start(self) -> CameraSource:
        self._thread = threading.Thread(target=self._run, name=f"camera-{self.camera_id}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)

    def latest(self) -> Frame | None:
        """The newest frame not yet taken, or None; taking it clears it so a frame is processed once."""
        with self._lock:
            frame, self._latest = self._latest, None
        return frame

    def _set_online(self, online: bool) -> None:
        if online != self.online:
            self.online = online
            log.info("camera %s %s", self.camera_id, "online" if online else "offline")
            if self.on_status:
                self.on_status(self.camera_id, online)

    def _run(self) -> None:
        backoff, index = self.backoff_initial, 0
        is_file = "://" not in self.url
        while not self._stop.is_set():
            params = [] if is_file else [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, OPEN_TIMEOUT_MS,
                                         cv2.CAP_PROP_READ_TIMEOUT_MSEC, READ_TIMEOUT_MS]  # fmt: skip
            cap = cv2.VideoCapture(self.url, cv2.CAP_FFMPEG, params)
            if not cap.isOpened():
                self._set_online(False)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, self.backoff_max)
                self.reconnects += 1
                continue
            src_fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
            period = 1.0 / self.max_fps if self.max_fps > 0 else 0.0
            next_at = 0.0
            while not self._stop.is_set():
                ok = cap.grab()
                if not ok:
                    break
                now = time.monotonic()
                if is_file:  # play files at their own rate, like a live camera
                    self._stop.wait(1.0 / src_fps)
                if now < next_at:
                    continue  # grabbed but not decoded: the fps cap costs no decode time
                ok, image = cap.retrieve()
                if not ok:
                    break
                next_at = now + period
                index += 1
                self.frames_read += 1
                if not self.online:  # online once a picture arrives, not when the socket opens
                    self._set_online(True)
                    backoff = self.backoff_initial
                with self._lock:
                    self._latest = Frame(image, now, index)
            cap.release()
            if is_file and self.loop_files and not self._stop.is_set():
                continue
            self._set_online(False)
            self.reconnects += 1
            self._stop.wait(backoff)
            backoff = min(backoff * 2, self.backoff_max)
