"""``ioc bench detect``: N cameras playing a video through the full detector path, with baselines.

Baselines measured in the same run: decode-only frames/s of the same video, and bare onnxruntime
inferences/s on the same preprocessed (letterboxed) frames. Returns one flat dict for the JSON line.
"""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
import psutil

from detectors.onnx_yolo import OnnxYoloDetector
from detectors.pipeline import CameraPipeline, run_batch
from detectors.yolo_decode import letterbox, to_blob


def _percentile(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)) * 1000, 1) if values else None


def _default_rules(width: int, height: int) -> list[dict]:
    """A line across the middle and a crowd zone over the whole frame: enough to produce events."""
    return [
        {"type": "line_crossing", "name": "mid-line", "line": [[width / 2, 0], [width / 2, height]]},
        {"type": "crowd", "name": "crowd", "min_count": 6, "cooldown": 5},
    ]


def decode_only_fps(video: Path, frames: int) -> float:
    cap, n, start = cv2.VideoCapture(str(video)), 0, time.perf_counter()
    while n < frames:
        ok, _ = cap.read()
        if not ok:
            cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            continue
        n += 1
    return n / (time.perf_counter() - start)


def bare_inference_per_s(detector: OnnxYoloDetector, video: Path, count: int, batch: int = 1) -> float:
    """Frames/s through ``session.run`` alone, on letterboxed blobs prepared beforehand, same batch size."""
    cap, boxed = cv2.VideoCapture(str(video)), []
    while len(boxed) < count:
        ok, frame = cap.read()
        if not ok:
            break
        boxed.append(letterbox(frame, detector.input_size)[0])
    blobs = [to_blob(boxed[i : i + batch]) for i in range(0, len(boxed) - batch + 1, batch)]
    detector.infer(blobs[0])  # warm-up
    start = time.perf_counter()
    for blob in blobs:
        detector.infer(blob)
    return len(blobs) * batch / (time.perf_counter() - start)


def run(video: Path, cameras: int = 2, frames: int = 200, detector: OnnxYoloDetector | None = None,
        input_size: int = 416, stride: int = 1) -> dict[str, float | int | str | None]:
    """Play ``frames`` frames per camera (each camera its own decoder on ``video``, starting at a different
    offset) through gate -> batched detector -> tracker -> rules; ``stride`` skips frames like an fps cap."""
    detector = detector or OnnxYoloDetector(input_size=input_size)
    caps = []
    for i in range(cameras):
        cap = cv2.VideoCapture(str(video))
        cap.set(cv2.CAP_PROP_POS_FRAMES, (i * 97) % 500)
        caps.append(cap)
    width, height = int(caps[0].get(cv2.CAP_PROP_FRAME_WIDTH)), int(caps[0].get(cv2.CAP_PROP_FRAME_HEIGHT))
    pipes = [CameraPipeline.from_specs(f"cam{i}", _default_rules(width, height)) for i in range(cameras)]
    counts, latencies, events = [0] * cameras, [], 0
    proc = psutil.Process()
    cpu0, start = proc.cpu_times(), time.perf_counter()
    fake_clock = 0.0
    for _ in range(frames):
        items = []
        for i, cap in enumerate(caps):
            for _ in range(stride):
                ok, frame = cap.read()
                if not ok:
                    cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                    ok, frame = cap.read()
            counts[i] += 1
            items.append((pipes[i], frame, fake_clock, time.perf_counter()))
        fake_clock += stride / 25.0  # video time, so rule timings follow the footage, not the CPU
        out = run_batch(detector, items)
        done = time.perf_counter()
        for ev in out:
            events += 1
            latencies.append(done - ev.frame_time)
    wall = time.perf_counter() - start
    cpu1 = proc.cpu_times()
    total = sum(counts)
    inferences = sum(p.inferences for p in pipes)
    decode_fps = decode_only_fps(video, min(total, 400))
    bare = bare_inference_per_s(detector, video, 48, batch=cameras)
    result: dict[str, float | int | str | None] = {
        "bench": "detect",
        "provider": detector.provider,
        "input_size": detector.input_size,
        "cameras": cameras,
        "frames_per_camera": frames,
        "fps_total": round(total / wall, 2),
        "fps_per_camera": round(total / wall / cameras, 2),
        "inferences_per_s": round(inferences / wall, 2),
        "gated_out_share": round(1 - inferences / total, 3),
        "events": events,
        "latency_p50_ms": _percentile(latencies, 50),
        "latency_p99_ms": _percentile(latencies, 99),
        "cpu_percent": round(100 * ((cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)) / wall, 1),
        "cpu_cores": psutil.cpu_count(),
        "decode_only_fps": round(decode_fps, 2),
        "bare_inference_per_s": round(bare, 2),
        "ratio_to_decode_only": round(total / wall / decode_fps, 3),
        "ratio_to_bare_inference": round(inferences / wall / bare, 3),
    }
    return result
