"""YOLO on onnxruntime: the production detector (CUDA when the provider is there, otherwise CPU).

The Darknet model is converted once to ONNX (cached beside the weights, keyed by the weights'
checksum) so start-up after the first run is a file load.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from detectors import model_store
from detectors.darknet_onnx import ConvertedModel, YoloHead, convert
from detectors.interface import Detection
from detectors.yolo_decode import Letterbox, decode_heads, letterbox, rows_to_detections, to_blob


def choose_providers(prefer_gpu: bool = True) -> list[str]:
    """CUDA first when onnxruntime was built with it (onnxruntime-gpu) and a GPU is wanted, CPU always last."""
    available = ort.get_available_providers()
    wanted = (["CUDAExecutionProvider"] if prefer_gpu else []) + ["CPUExecutionProvider"]
    return [p for p in wanted if p in available]


def converted_yolov4_tiny(cache: Path | None = None) -> ConvertedModel:
    """YOLOv4-tiny as ONNX, converting the cached Darknet files on first use."""
    darknet = model_store.yolov4_tiny(cache)
    converted = convert(darknet.cfg, darknet.weights)
    onnx_path = darknet.weights.with_suffix(".onnx")
    if not onnx_path.exists():
        tmp = onnx_path.with_suffix(".onnx.part")
        onnx.save(converted.model, tmp)
        tmp.replace(onnx_path)
    return converted


class OnnxYoloDetector:
    """Batched YOLO detector on onnxruntime; frames of any size are letterboxed to ``input_size``."""

    type_key = "onnx-yolo"

    def __init__(self, model: ConvertedModel | None = None, names: Sequence[str] | None = None,
                 input_size: int = 416, conf: float = 0.3, nms_iou: float = 0.45,
                 providers: Sequence[str] | None = None, threads: int = 0) -> None:
        if input_size % 32:
            raise ValueError("input_size must be a multiple of 32 (the network's total stride)")
        self.model = model or converted_yolov4_tiny()
        self.names = list(names) if names is not None else model_store.yolov4_tiny().class_names()
        self.heads: list[YoloHead] = self.model.heads
        self.input_size, self.conf, self.nms_iou = input_size, conf, nms_iou
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(self.model.model.SerializeToString(), options,
                                            providers=list(providers or choose_providers()))
        self.output_names = [h.output for h in self.heads]

    @property
    def provider(self) -> str:
        return self.session.get_providers()[0]

    def infer(self, blob: np.ndarray) -> list[np.ndarray]:
        """Bare inference on an already preprocessed NCHW blob: the raw head tensors."""
        return self.session.run(self.output_names, {"images": blob})

    def prepare(self, frames: Sequence[np.ndarray]) -> tuple[np.ndarray, list[Letterbox]]:
        """Letterboxed NCHW blob of the frames and how each was placed (the bench's bare baseline runs
        ``infer`` on exactly this)."""
        boxed, boxes = zip(*(letterbox(f, self.input_size) for f in frames), strict=True)
        return to_blob(boxed), list(boxes)

    def detect(self, frames: Sequence[np.ndarray]) -> list[list[Detection]]:
        if not frames:
            return []
        blob, boxes = self.prepare(frames)
        rows = decode_heads(self.infer(blob), self.heads, self.input_size)
        return [rows_to_detections(r, b, self.input_size, self.names, self.conf, self.nms_iou)
                for r, b in zip(rows, boxes, strict=True)]
