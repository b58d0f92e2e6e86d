"""``ioc bench detect``: N cameras playing a video through the full detector path, with baselines.

The baselines are measured step by step, interleaved with the pipeline, on the same frames, so a
loaded machine slows both alike and the ratios hold (issue #18: a bare-inference phase run after the
pipeline swung its ratio from 0.36 to 1.13 between runs):
- each step first decodes one frame per camera (timed: the decode-only baseline);
- then runs the pipeline on them (gate, plan, one batched inference, tracker, rules);
- then runs bare ``session.run`` on exactly the images the pipeline's model saw in that step,
  preprocessed beforehand (untimed), so ``ratio_to_bare_inference`` = bare time / pipeline time is the
  share of the pipeline that is inference, and cannot exceed 1 but by noise.
Camera 0 plays the labelled clip from its first frame; the labelled frames it passes get a forced
model run and are scored per box (``detectors.evaluate``), so recall and precision stand beside speed.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import psutil

from detectors.evaluate import LABELS, Score, load_labels, persons
from detectors.interface import Detection
from detectors.onnx_yolo import OnnxYoloDetector, choose_providers
from detectors.pipeline import CameraPipeline, run_batch


def _percentile(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)) * 1000, 1) if values else None


def _default_rules(width: int, height: int) -> list[dict]:
    """A line across the middle and a crowd zone over the whole frame: enough to produce events."""
    return [
        {"type": "line_crossing", "name": "mid-line", "line": [[width / 2, 0], [width / 2, height]]},
        {"type": "crowd", "name": "crowd", "min_count": 6, "cooldown": 5},
    ]


class _Recording:
    """The detector, remembering the images it was given in the last call (for the bare baseline)."""

    def __init__(self, detector: OnnxYoloDetector) -> None:
        self.detector, self.type_key, self.images = detector, detector.type_key, []

    def detect(self, frames: Sequence[np.ndarray]) -> list[list[Detection]]:
        self.images = list(frames)
        return self.detector.detect(frames)


def gpu_note(detector: OnnxYoloDetector) -> str:
    """Whether the GPU path was measured: only when onnxruntime ran on CUDA."""
    if detector.provider == "CUDAExecutionProvider":
        return "measured"
    have = "CUDAExecutionProvider" in choose_providers()
    return "unmeasured (no GPU on this machine)" if not have else "unmeasured (CUDA present but not used)"


def run(video: Path, cameras: int = 2, frames: int = 200, detector: OnnxYoloDetector | None = None,
        input_size: int = 416, stride: int = 1, regions: bool = False,
        labels: Path | None = LABELS) -> dict[str, float | int | str | None]:
    """Play ``frames`` frames per camera (each camera its own decoder on ``video``, starting at a different
    offset) through gate -> batched detector -> tracker -> rules; ``stride`` skips frames like an fps cap."""
    if detector is None:
        from detectors.regions import REGION_CONF

        detector = OnnxYoloDetector(input_size=input_size, **({"conf": REGION_CONF} if regions else {}))
    recording = _Recording(detector)
    caps = []
    for i in range(cameras):
        cap = cv2.VideoCapture(str(video))
        cap.set(cv2.CAP_PROP_POS_FRAMES, (i * 97) % 500)
        caps.append(cap)
    width, height = int(caps[0].get(cv2.CAP_PROP_FRAME_WIDTH)), int(caps[0].get(cv2.CAP_PROP_FRAME_HEIGHT))
    pipes = [CameraPipeline.from_specs(f"cam{i}", _default_rules(width, height), regions=regions,
                                       input_size=detector.input_size) for i in range(cameras)]  # fmt: skip
    wanted = {}
    if labels is not None and labels.exists():
        clips, labelled = load_labels(labels)
        if clips.get("vtest", {}).get("fetch") == "vtest" and video.name == "vtest.avi":
            wanted = {f.frame: f for f in labelled if f.clip == "vtest"}
    score = Score()
    positions = [(i * 97) % 500 for i in range(cameras)]
    latencies: list[float] = []
    events = total = 0
    t_decode = t_pipe = t_bare = 0.0
    bare_inputs = 0
    detector.infer(detector.prepare([np.zeros((height, width, 3), np.uint8)])[0])  # warm-up, untimed
    proc = psutil.Process()
    cpu0, start = proc.cpu_times(), time.perf_counter()
    fake_clock = 0.0
    for _ in range(frames):
        t0 = time.perf_counter()
        items = []
        for i, cap in enumerate(caps):
            for _ in range(stride):
                ok, frame = cap.read()
                positions[i] += 1
                if not ok:
                    cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                    ok, frame = cap.read()
                    positions[i] = 1
            items.append((pipes[i], frame, fake_clock, time.perf_counter()))
        index0 = positions[0] - 1
        pipes[0].force = index0 in wanted
        t1 = time.perf_counter()
        recording.images = []
        out = run_batch(recording, items)
        t2 = time.perf_counter()
        if recording.images:
            blob = detector.prepare(recording.images)[0]
            t3 = time.perf_counter()
            detector.infer(blob)
            t_bare += time.perf_counter() - t3
            bare_inputs += len(recording.images)
        t_decode += t1 - t0
        t_pipe += t2 - t1
        total += len(items)
        fake_clock += stride / 25.0  # video time, so rule timings follow the footage, not the CPU
        if index0 in wanted:
            score.add(wanted[index0], persons(pipes[0].detections))
        for ev in out:
            events += 1
            latencies.append(t2 - ev.frame_time)
    wall = time.perf_counter() - start
    cpu1 = proc.cpu_times()
    inferences = sum(p.inferences for p in pipes)
    model_inputs = sum(p.model_inputs for p in pipes)
    result: dict[str, float | int | str | None] = {
        "bench": "detect",
        "provider": detector.provider,
        "gpu_path": gpu_note(detector),
        "input_size": detector.input_size,
        "mode": "regions" if regions else "full_frame",
        "cameras": cameras,
        "frames_per_camera": frames,
        "fps_total": round(total / (t_decode + t_pipe), 2),
        "fps_per_camera": round(total / (t_decode + t_pipe) / cameras, 2),
        "pipeline_fps": round(total / t_pipe, 2),
        "inferences_per_s": round(inferences / t_pipe, 2),
        "model_inputs_per_s": round(model_inputs / t_pipe, 2),
        "gated_out_share": round(1 - inferences / total, 3),
        "events": events,
        "latency_p50_ms": _percentile(latencies, 50),
        "latency_p99_ms": _percentile(latencies, 99),
        "cpu_percent": round(100 * ((cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)) / wall, 1),
        "cpu_cores": psutil.cpu_count(),
        "decode_only_fps": round(total / t_decode, 2),
        "bare_inference_per_s": round(bare_inputs / t_bare, 2) if t_bare else None,
        "ratio_to_decode_only": round(t_decode / (t_decode + t_pipe), 3),
        "ratio_to_bare_inference": round(t_bare / t_pipe, 3) if t_pipe else None,
        "labelled_frames_scored": score.frames,
        **score.figures(),
    }
    return result
