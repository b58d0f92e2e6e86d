"""YOLO on OpenCV DNN straight from the Darknet files: the reference the ONNX conversion is checked against.

It is also a usable fallback provider (no onnxruntime needed), behind the same interface.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from detectors import model_store
from detectors.interface import Detection
from detectors.yolo_decode import letterbox, rows_to_detections, to_blob


class OpenCvYoloDetector:
    """Darknet YOLO via ``cv2.dnn.readNetFromDarknet``, one frame per forward pass."""

    type_key = "opencv-yolo"

    def __init__(self, input_size: int = 416, conf: float = 0.3, nms_iou: float = 0.45) -> None:
        darknet = model_store.yolov4_tiny()
        self.net = cv2.dnn.readNetFromDarknet(str(darknet.cfg), str(darknet.weights))
        self.out_names = self.net.getUnconnectedOutLayersNames()
        self.names = darknet.class_names()
        self.input_size, self.conf, self.nms_iou = input_size, conf, nms_iou

    def infer_rows(self, blob: np.ndarray) -> np.ndarray:
        """Decoded rows (cx, cy, w, h, obj, class scores) for a single-image blob, as OpenCV computes them."""
        self.net.setInput(blob)
        return np.concatenate([o.reshape(-1, o.shape[-1]) for o in self.net.forward(self.out_names)])

    def detect(self, frames: Sequence[np.ndarray]) -> list[list[Detection]]:
        out = []
        for frame in frames:
            boxed, box = letterbox(frame, self.input_size)
            rows = self.infer_rows(to_blob([boxed]))
            out.append(rows_to_detections(rows, box, self.input_size, self.names, self.conf, self.nms_iou))
        return out
