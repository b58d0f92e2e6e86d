"""Pre- and post-processing shared by every YOLO provider: letterbox, head decoding, NMS, class mapping.

Both the onnxruntime path and the OpenCV DNN reference path end in the same row format
(cx, cy, w, h normalised to the network input, objectness, per-class scores), so the only
difference between providers is the raw inference, which is what the tests compare.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from detectors.darknet_onnx import YoloHead
from detectors.interface import CLASSES, Detection

#: COCO names the IOC keeps, mapped to its own class names.
COCO_TO_IOC: dict[str, str] = {
    "person": "person", "bicycle": "bicycle", "motorbike": "motorbike", "motorcycle": "motorbike",
    "car": "car", "bus": "bus", "truck": "truck",
}
PAD_VALUE = 114


@dataclass(frozen=True)
class Letterbox:
    """How a frame was placed into the square network input, to map boxes back."""

    scale: float
    pad_x: float
    pad_y: float
    width: int
    height: int


def letterbox(frame: np.ndarray, size: int) -> tuple[np.ndarray, Letterbox]:
    """Resize keeping the aspect ratio and pad to ``size`` x ``size`` (no distortion of people's shapes)."""
    h, w = frame.shape[:2]
    scale = min(size / w, size / h)
    nw, nh = round(w * scale), round(h * scale)
    resized = cv2.resize(frame, (nw, nh), interpolation=cv2.INTER_LINEAR)
    px, py = (size - nw) // 2, (size - nh) // 2
    out = cv2.copyMakeBorder(resized, py, size - nh - py, px, size - nw - px, cv2.BORDER_CONSTANT,
                             value=(PAD_VALUE,) * 3)
    return out, Letterbox(scale, px, py, w, h)


def to_blob(boxed: Sequence[np.ndarray]) -> np.ndarray:
    """NCHW float32 RGB in [0, 1], the layout Darknet was trained on."""
    return cv2.dnn.blobFromImages(list(boxed), scalefactor=1 / 255.0, swapRB=True, crop=False)


def decode_heads(raw: Sequence[np.ndarray], heads: Sequence[YoloHead], input_size: int) -> list[np.ndarray]:
    """Raw head tensors (N, A*(5+C), H, W) into rows per image, in OpenCV's order and meaning."""
    per_image: list[list[np.ndarray]] = [[] for _ in range(raw[0].shape[0])]
    for tensor, head in zip(raw, heads, strict=True):
        n, _, gh, gw = tensor.shape
        a = len(head.anchors)
        t = tensor.reshape(n, a, 5 + head.classes, gh, gw).transpose(0, 3, 4, 1, 2)  # N,H,W,A,85
        sig = 1.0 / (1.0 + np.exp(-t))
        gy, gx = np.meshgrid(np.arange(gh, dtype=np.float32), np.arange(gw, dtype=np.float32), indexing="ij")
        s = head.scale_x_y
        anchors = np.asarray(head.anchors, np.float32)
        cx = (sig[..., 0] * s - (s - 1) / 2 + gx[None, :, :, None]) / gw
        cy = (sig[..., 1] * s - (s - 1) / 2 + gy[None, :, :, None]) / gh
        bw = np.exp(t[..., 2]) * anchors[:, 0] / input_size
        bh = np.exp(t[..., 3]) * anchors[:, 1] / input_size
        obj = sig[..., 4]
        cls = sig[..., 5:] * obj[..., None]
        rows = np.concatenate([np.stack([cx, cy, bw, bh, obj], -1), cls], -1).reshape(n, -1, 5 + head.classes)
        for i in range(n):
            per_image[i].append(rows[i])
    return [np.concatenate(parts) for parts in per_image]


def rows_to_detections(rows: np.ndarray, box: Letterbox, input_size: int, names: Sequence[str],
                       conf: float, nms_iou: float) -> list[Detection]:
    """Threshold, keep IOC classes, undo the letterbox and run per-class NMS (OpenCV's NMSBoxesBatched)."""
    scores_all = rows[:, 5:]
    cls_ids = scores_all.argmax(1)
    scores = scores_all[np.arange(len(rows)), cls_ids]
    keep_cls = np.array([COCO_TO_IOC.get(n, "") for n in names])
    mask = (scores >= conf) & (keep_cls[cls_ids] != "")
    if not mask.any():
        return []
    r, cls_ids, scores = rows[mask], cls_ids[mask], scores[mask]
    cx, cy = r[:, 0] * input_size, r[:, 1] * input_size
    bw, bh = r[:, 2] * input_size, r[:, 3] * input_size
    x1 = np.clip((cx - bw / 2 - box.pad_x) / box.scale, 0, box.width)
    y1 = np.clip((cy - bh / 2 - box.pad_y) / box.scale, 0, box.height)
    x2 = np.clip((cx + bw / 2 - box.pad_x) / box.scale, 0, box.width)
    y2 = np.clip((cy + bh / 2 - box.pad_y) / box.scale, 0, box.height)
    xywh = np.stack([x1, y1, x2 - x1, y2 - y1], 1)
    keep = cv2.dnn.NMSBoxesBatched(xywh.tolist(), scores.tolist(), cls_ids.tolist(), conf, nms_iou)
    out = []
    for k in np.asarray(keep, dtype=int).reshape(-1):
        label = str(keep_cls[cls_ids[k]])
        assert label in CLASSES
        out.append(Detection(label, float(scores[k]), (float(x1[k]), float(y1[k]), float(x2[k]), float(y2[k]))))
    out.sort(key=lambda d: -d.score)
    return out
